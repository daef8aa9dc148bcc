//! A cache of look-ups from a shared store (PostgreSQL), sans I/O: the
//! caller passes the time and reports what the store answered.
//!
//! Trust: an entry answers a look-up only while the store's change feed is
//! up ([`Cache::set_listening`]), no change was notified since the look-up
//! that filled it started ([`Cache::invalidate`] moves an epoch; entries
//! remember the epoch their fetch started in, so a change notified while a
//! fetch was on its way makes its result stale at once), and it is younger
//! than its TTL (positive or negative). An entry that is not trusted is
//! kept: it still serves when the store is unreachable, but only for a key
//! whose value led to a successful login within [`Policy::stale_for`]
//! (serve-stale), and only that same value.
//!
//! After a success, the first failed check asks the store again (bypass
//! once; [`Cache::bypass`]): a password changed where no notification
//! reaches us is caught at the next login, not a TTL later.
//!
//! Bounded: past `max_entries`, entries that can no longer serve are
//! dropped first, then negative ones, then any, down to 90%, so the sweep
//! runs once per tenth of the capacity.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// TTLs and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long an account's secrets are trusted (0: never; the store is
    /// asked every time).
    pub positive_ttl: Duration,
    /// How long "no such account" is trusted.
    pub negative_ttl: Duration,
    /// How long after a successful login its value serves while the store
    /// is unreachable.
    pub stale_for: Duration,
    pub max_entries: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            positive_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(3600),
            stale_for: Duration::from_secs(3600),
            max_entries: 100_000,
        }
    }
}

struct Entry<V> {
    /// `None`: the store had nothing for the key.
    value: Option<V>,
    fetched: Instant,
    epoch: u64,
    /// The last successful login with `value`.
    success: Option<Instant>,
    /// The one look-up past the cache after `success` was spent.
    bypassed: bool,
    /// Served by [`Cache::stale`] since the last fetch: a login with it
    /// does not extend the time it serves.
    served_stale: bool,
}

pub struct Cache<K, V> {
    policy: Policy,
    entries: HashMap<K, Entry<V>>,
    epoch: u64,
    listening: bool,
}

impl<K: Hash + Eq + Clone, V: Clone + PartialEq> Cache<K, V> {
    /// An empty cache that trusts nothing until the change feed is up.
    pub fn new(policy: Policy) -> Self {
        Cache {
            policy,
            entries: HashMap::new(),
            epoch: 0,
            listening: false,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Taken before a fetch starts and given back to [`Cache::put`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Something in the store changed: nothing cached is trusted any more.
    pub fn invalidate(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Whether changes are being notified. A feed that comes back may have
    /// missed some, so any change of state invalidates.
    pub fn set_listening(&mut self, on: bool) {
        if self.listening != on {
            self.listening = on;
            self.invalidate();
        }
    }

    /// The cached answer, when it may be trusted now.
    pub fn get(&self, key: &K, now: Instant) -> Option<Option<V>> {
        let e = self.entries.get(key)?;
        (self.listening && fresh(&self.policy, self.epoch, e, now)).then(|| e.value.clone())
    }

    /// What the store answered to a fetch started at `epoch`. A value that
    /// differs from the cached one forgets the success of the old one.
    pub fn put(&mut self, key: &K, value: Option<V>, epoch: u64, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            // A slower, older fetch must not overwrite a newer answer.
            if e.epoch > epoch {
                return;
            }
            if e.value != value {
                e.success = None;
                e.bypassed = false;
            }
            e.value = value;
            e.fetched = now;
            e.epoch = epoch;
            e.served_stale = false;
            return;
        }
        if self.entries.len() >= self.policy.max_entries {
            self.shrink(now);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                value,
                fetched: now,
                epoch,
                success: None,
                bypassed: false,
                served_stale: false,
            },
        );
    }

    /// The value to serve although the store could not be asked: only one
    /// that logged in within `stale_for` of a fetch (logins with a stale
    /// value do not extend it).
    pub fn stale(&mut self, key: &K, now: Instant) -> Option<V> {
        let stale_for = self.policy.stale_for;
        let e = self.entries.get_mut(key)?;
        let recent = e
            .success
            .is_some_and(|t| now.saturating_duration_since(t) < stale_for);
        if !recent {
            return None;
        }
        e.served_stale = true;
        e.value.clone()
    }

    /// Whether the value last handed out for `key` was a stale one.
    pub fn served_stale(&self, key: &K) -> bool {
        self.entries.get(key).is_some_and(|e| e.served_stale)
    }

    /// The cached value (trusted or not), to compare with a fresh one.
    pub fn peek(&self, key: &K) -> Option<Option<V>> {
        self.entries.get(key).map(|e| e.value.clone())
    }

    /// A check of the key's cached value succeeded.
    pub fn succeeded(&mut self, key: &K, now: Instant) {
        if let Some(e) = self.entries.get_mut(key)
            && e.value.is_some()
        {
            if !e.served_stale {
                e.success = Some(now);
            }
            e.bypassed = false;
        }
    }

    /// A check failed: whether the store should be asked again now (the
    /// first failure after a success; spent by asking).
    pub fn bypass(&mut self, key: &K) -> bool {
        match self.entries.get_mut(key) {
            Some(e) if e.success.is_some() && !e.bypassed => {
                e.bypassed = true;
                true
            }
            _ => false,
        }
    }

    /// Make room for at least a tenth of the capacity.
    fn shrink(&mut self, now: Instant) {
        let target = self.policy.max_entries - self.policy.max_entries / 10 - 1;
        let (policy, epoch) = (self.policy, self.epoch);
        let serves = |e: &Entry<V>| {
            e.success
                .is_some_and(|t| now.saturating_duration_since(t) < policy.stale_for)
        };
        let passes: [&Evict<'_, V>; 4] = [
            // Neither trusted nor serving stale.
            &|e| !serves(e) && !fresh(&policy, epoch, e, now),
            &|e| e.value.is_none(),
            &|e| !serves(e),
            &|_| true,
        ];
        for drop in passes {
            if self.entries.len() <= target {
                return;
            }
            let mut excess = self.entries.len() - target;
            self.entries.retain(|_, e| {
                if excess > 0 && drop(e) {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

/// Which entries one pass of [`Cache::shrink`] may drop.
type Evict<'a, V> = dyn Fn(&Entry<V>) -> bool + 'a;

/// Whether `e` is of the current epoch and within its TTL.
fn fresh<V>(policy: &Policy, epoch: u64, e: &Entry<V>, now: Instant) -> bool {
    let ttl = match e.value {
        Some(_) => policy.positive_ttl,
        None => policy.negative_ttl,
    };
    e.epoch == epoch && now.saturating_duration_since(e.fetched) < ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> Policy {
        Policy {
            positive_ttl: 60 * S,
            negative_ttl: 10 * S,
            stale_for: 3600 * S,
            max_entries: 10,
        }
    }

    fn cache() -> (Cache<&'static str, &'static str>, Instant) {
        let mut c = Cache::new(policy());
        c.set_listening(true);
        (c, Instant::now())
    }

    #[test]
    fn positive_and_negative_ttls() {
        let (mut c, t0) = cache();
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.put(&"ghost", None, c.epoch(), t0);
        assert_eq!(c.get(&"alice", t0 + 59 * S), Some(Some("pw")));
        assert_eq!(c.get(&"alice", t0 + 60 * S), None);
        assert_eq!(c.get(&"ghost", t0 + 9 * S), Some(None));
        assert_eq!(c.get(&"ghost", t0 + 10 * S), None);
        assert_eq!(c.get(&"bob", t0), None);
        // TTL 0: never trusted, still kept (for outages).
        let mut c = Cache::new(Policy {
            positive_ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
            ..policy()
        });
        c.set_listening(true);
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        assert_eq!(c.get(&"alice", t0), None);
        assert_eq!(c.peek(&"alice"), Some(Some("pw")));
    }

    #[test]
    fn notifications_and_a_lost_feed_invalidate() {
        let (mut c, t0) = cache();
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.invalidate();
        assert_eq!(c.get(&"alice", t0), None);
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        assert_eq!(c.get(&"alice", t0), Some(Some("pw")));
        // A change notified while the fetch was on its way: stale at once.
        let started = c.epoch();
        c.invalidate();
        c.put(&"alice", Some("old"), started, t0);
        assert_eq!(c.get(&"alice", t0), None);
        // While the feed is down nothing is trusted, nor after it is back.
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.set_listening(false);
        assert_eq!(c.get(&"alice", t0), None);
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        assert_eq!(c.get(&"alice", t0), None);
        c.set_listening(true);
        assert_eq!(c.get(&"alice", t0), None);
    }

    #[test]
    fn an_older_fetch_does_not_overwrite_a_newer_answer() {
        let (mut c, t0) = cache();
        let old = c.epoch();
        c.invalidate();
        c.put(&"alice", Some("new"), c.epoch(), t0);
        c.put(&"alice", Some("old"), old, t0);
        assert_eq!(c.get(&"alice", t0), Some(Some("new")));
    }

    #[test]
    fn stale_values_serve_only_after_a_recent_success() {
        let (mut c, t0) = cache();
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.put(&"bob", Some("pw"), c.epoch(), t0);
        c.put(&"ghost", None, c.epoch(), t0);
        c.succeeded(&"alice", t0);
        c.succeeded(&"ghost", t0);
        c.invalidate();
        // Past TTL and invalidation, within the hour: served; logins with
        // it do not extend the hour.
        assert_eq!(c.stale(&"alice", t0 + 3599 * S), Some("pw"));
        c.succeeded(&"alice", t0 + 3599 * S);
        assert_eq!(c.stale(&"alice", t0 + 3600 * S), None);
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.succeeded(&"alice", t0);
        assert_eq!(c.stale(&"bob", t0), None);
        assert_eq!(c.stale(&"ghost", t0), None);
        assert_eq!(c.stale(&"carol", t0), None);
        // A changed value forgets the success; the same value keeps it.
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        assert_eq!(c.stale(&"alice", t0), Some("pw"));
        c.put(&"alice", Some("new"), c.epoch(), t0);
        assert_eq!(c.stale(&"alice", t0), None);
        c.succeeded(&"alice", t0);
        c.put(&"alice", None, c.epoch(), t0);
        assert_eq!(c.stale(&"alice", t0), None);
    }

    #[test]
    fn bypass_once_after_each_success() {
        let (mut c, t0) = cache();
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        assert!(!c.bypass(&"alice"), "no success yet");
        c.succeeded(&"alice", t0);
        assert!(c.bypass(&"alice"));
        assert!(!c.bypass(&"alice"), "once");
        c.succeeded(&"alice", t0);
        assert!(c.bypass(&"alice"));
        assert!(!c.bypass(&"nobody"));
    }

    #[test]
    fn bounded_keeping_what_serves_during_an_outage() {
        let (mut c, t0) = cache();
        let keys: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("user{i}").into_boxed_str()))
            .collect();
        c.put(&"alice", Some("pw"), c.epoch(), t0);
        c.succeeded(&"alice", t0);
        for k in &keys {
            c.put(k, None, c.epoch(), t0);
            assert!(c.len() <= 10, "{}", c.len());
        }
        assert_eq!(c.stale(&"alice", t0), Some("pw"));
        assert!(!c.is_empty());
    }
}
