//! [`Credentials`] from a shared store through a [`Cache`]: what the
//! daemon authenticates against when the store is PostgreSQL. The store is
//! reached through [`Fetch`] (blocking calls; [`super::pg_fetch`] is the
//! real one) and time through a clock, so tests drive every rule here with
//! a fake store and a fake clock.
//!
//! A look-up is answered by the cache when it may be trusted, else by the
//! store (and cached); when the store fails, by the cache's stale value of
//! an account that logged in recently, else it fails (a temporary failure
//! for the client). Case-insensitive account look-ups are cached the same
//! way, in a second cache.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::cache::{Cache, Policy};
use super::{Credentials, Secrets};
use crate::store::{Account, StoreError};

/// Blocking look-ups in the store itself.
pub trait Fetch: Send + Sync {
    /// The account's secrets; `None` when it holds none.
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError>;
    /// The stored account whose name and realm equal these without case.
    fn folded(&self, authid: &str, realm: &str) -> Result<Option<Account>, StoreError>;
}

type Folded = (Vec<u8>, Vec<u8>);

/// Both caches, shared with whatever reports the store's changes.
pub struct Caches {
    secrets: Cache<Account, Secrets>,
    folded: Cache<Folded, Account>,
}

impl Caches {
    pub fn new(policy: Policy) -> Caches {
        Caches {
            secrets: Cache::new(policy),
            folded: Cache::new(policy),
        }
    }

    /// Something in the store changed.
    pub fn invalidate(&mut self) {
        self.secrets.invalidate();
        self.folded.invalidate();
    }

    /// Whether changes are being reported (see [`Cache::set_listening`]).
    pub fn set_listening(&mut self, on: bool) {
        self.secrets.set_listening(on);
        self.folded.set_listening(on);
    }
}

pub type Clock = dyn Fn() -> Instant + Send + Sync;

pub struct Cached<F> {
    fetch: F,
    caches: Arc<Mutex<Caches>>,
    clock: Box<Clock>,
}

impl<F: Fetch> Cached<F> {
    pub fn new(fetch: F, policy: Policy, clock: Box<Clock>) -> Cached<F> {
        Cached {
            fetch,
            caches: Arc::new(Mutex::new(Caches::new(policy))),
            clock,
        }
    }

    /// The caches, for the task that reports changes to them.
    pub fn caches(&self) -> Arc<Mutex<Caches>> {
        Arc::clone(&self.caches)
    }

    pub fn fetcher(&self) -> &F {
        &self.fetch
    }

    fn lock(&self) -> MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the store and cache its answer.
    fn refresh(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
        let epoch = self.lock().secrets.epoch();
        let fetched = self.fetch.secrets(account)?;
        let now = (self.clock)();
        self.lock()
            .secrets
            .put(account, fetched.clone(), epoch, now);
        Ok(fetched)
    }

    /// The stored account `authid@realm` names without case (see
    /// `smtp::accounts::Directory`).
    pub fn find_folded(&self, authid: &str, realm: &str) -> Result<Option<Account>, StoreError> {
        let key = (
            authid.as_bytes().to_ascii_lowercase(),
            realm.as_bytes().to_ascii_lowercase(),
        );
        let epoch = {
            let c = self.lock();
            if let Some(hit) = c.folded.get(&key, (self.clock)()) {
                return Ok(hit);
            }
            c.folded.epoch()
        };
        let found = self.fetch.folded(authid, realm)?;
        let now = (self.clock)();
        self.lock().folded.put(&key, found.clone(), epoch, now);
        Ok(found)
    }
}

impl<F: Fetch> Credentials for Cached<F> {
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
        if let Some(hit) = self.lock().secrets.get(account, (self.clock)()) {
            return Ok(hit);
        }
        self.refresh(account).or_else(|e| {
            let now = (self.clock)();
            self.lock().secrets.stale(account, now).map(Some).ok_or(e)
        })
    }

    fn succeeded(&self, account: &Account) {
        let now = (self.clock)();
        self.lock().secrets.succeeded(account, now);
    }

    fn failure_is_temporary(&self, account: &Account) -> bool {
        self.lock().secrets.served_stale(account)
    }

    fn failed(&self, account: &Account) -> Option<Secrets> {
        let before = {
            let mut c = self.lock();
            if !c.secrets.bypass(account) {
                return None;
            }
            c.secrets.peek(account).flatten()
        };
        let fresh = self.refresh(account).ok()??;
        (Some(&fresh) != before.as_ref()).then_some(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{FailureCost, check_account, pbkdf2_runs};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    /// A store in memory that counts its look-ups and can be "down".
    #[derive(Default)]
    struct Fake {
        passwords: Mutex<HashMap<Account, &'static str>>,
        down: AtomicBool,
        fetches: AtomicU64,
    }

    impl Fake {
        fn set(&self, user: &str, pw: &'static str) {
            self.passwords
                .lock()
                .unwrap()
                .insert(Account::new(user, "example.org"), pw);
        }
    }

    impl Fetch for Arc<Fake> {
        fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Pg {
                    target: "fake".into(),
                    message: "down".into(),
                });
            }
            Ok(self
                .passwords
                .lock()
                .unwrap()
                .get(account)
                .map(|pw| Secrets::from_properties(&[(b"userPassword", pw.as_bytes())])))
        }

        fn folded(&self, authid: &str, realm: &str) -> Result<Option<Account>, StoreError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(self
                .passwords
                .lock()
                .unwrap()
                .keys()
                .find(|a| {
                    a.authid.eq_ignore_ascii_case(authid.as_bytes())
                        && a.realm.eq_ignore_ascii_case(realm.as_bytes())
                })
                .cloned())
        }
    }

    struct Lab {
        store: Arc<Fake>,
        creds: Cached<Arc<Fake>>,
        clock: Arc<Mutex<Instant>>,
    }

    impl Lab {
        fn new() -> Lab {
            let store = Arc::new(Fake::default());
            store.set("alice", "pw");
            let clock = Arc::new(Mutex::new(Instant::now()));
            let c = Arc::clone(&clock);
            let creds = Cached::new(
                Arc::clone(&store),
                Policy {
                    max_entries: 100,
                    ..Policy::default()
                },
                Box::new(move || *c.lock().unwrap()),
            );
            creds.caches().lock().unwrap().set_listening(true);
            Lab {
                store,
                creds,
                clock,
            }
        }

        fn advance(&self, d: Duration) {
            *self.clock.lock().unwrap() += d;
        }

        fn fetches(&self) -> u64 {
            self.store.fetches.load(Ordering::SeqCst)
        }

        /// A PLAIN-style login: (outcome, store look-ups, PBKDF2 runs).
        fn login(&self, user: &str, pw: &str) -> (Result<bool, String>, u64, u64) {
            let (f, p) = (self.fetches(), pbkdf2_runs());
            let a = Account::new(user, "example.org");
            let out = match self.creds.secrets(&a) {
                Ok(s) => Ok(check_account(
                    &self.creds,
                    &a,
                    s,
                    FailureCost {
                        iterations: 64,
                        ..FailureCost::default()
                    },
                    true,
                    |s| s.plain_check()?.matches(pw.as_bytes()).then_some(()),
                )
                .is_some()),
                Err(e) => Err(e.to_string()),
            };
            (out, self.fetches() - f, pbkdf2_runs() - p)
        }
    }

    #[test]
    fn hits_misses_and_ttls() {
        let lab = Lab::new();
        assert_eq!(lab.login("alice", "pw"), (Ok(true), 1, 0));
        assert_eq!(lab.login("alice", "pw"), (Ok(true), 0, 0));
        assert_eq!(lab.login("ghost", "pw"), (Ok(false), 1, 1));
        assert_eq!(lab.login("ghost", "pw"), (Ok(false), 0, 1));
        lab.advance(Duration::from_secs(3600));
        assert_eq!(lab.login("alice", "pw"), (Ok(true), 1, 0));
        assert_eq!(lab.login("ghost", "pw"), (Ok(false), 1, 1));
    }

    #[test]
    fn a_notified_change_is_seen_at_once() {
        let lab = Lab::new();
        assert_eq!(lab.login("alice", "pw").0, Ok(true));
        lab.store.set("alice", "new");
        lab.creds.caches().lock().unwrap().invalidate();
        assert_eq!(lab.login("alice", "new"), (Ok(true), 1, 0));
        // Without the change feed, every look-up goes to the store.
        lab.creds.caches().lock().unwrap().set_listening(false);
        assert_eq!(lab.login("alice", "new"), (Ok(true), 1, 0));
        assert_eq!(lab.login("alice", "new"), (Ok(true), 1, 0));
    }

    #[test]
    fn a_failure_after_a_success_asks_the_store_once() {
        let lab = Lab::new();
        assert_eq!(lab.login("alice", "pw").0, Ok(true));
        // Changed with no notification: the cache still says "pw".
        lab.store.set("alice", "new");
        assert_eq!(lab.login("alice", "new"), (Ok(true), 1, 0));
        // A wrong password after that success: one look-up, same secrets,
        // one padding run; the next failure stays in the cache.
        assert_eq!(lab.login("alice", "bad"), (Ok(false), 1, 1));
        assert_eq!(lab.login("alice", "bad"), (Ok(false), 0, 1));
        // Unknown names cost the same PBKDF2.
        assert_eq!(lab.login("nobody", "bad").2, 1);
    }

    #[test]
    fn scram_fails_once_and_its_next_attempt_has_the_new_secrets() {
        let lab = Lab::new();
        let alice = Account::new("alice", "example.org");
        let scram = |pw: &str| {
            let (f, p) = (lab.fetches(), pbkdf2_runs());
            let s = lab.creds.secrets(&alice).unwrap();
            let cost = FailureCost {
                iterations: 64,
                ..FailureCost::default()
            };
            let ok = check_account(&lab.creds, &alice, s, cost, false, |s| {
                s.plain_check()?.matches(pw.as_bytes()).then_some(())
            });
            (ok.is_some(), lab.fetches() - f, pbkdf2_runs() - p)
        };
        assert_eq!(scram("pw"), (true, 1, 0));
        lab.store.set("alice", "new");
        // This exchange fails (its salt went out), one padding run...
        assert_eq!(scram("new"), (false, 1, 1));
        // ...the next one has the new secrets, from the cache.
        assert_eq!(scram("new"), (true, 0, 0));
    }

    #[test]
    fn outages_serve_recent_successes_only() {
        let lab = Lab::new();
        lab.store.set("bob", "bob-pw");
        assert_eq!(lab.login("alice", "pw").0, Ok(true));
        assert_eq!(lab.login("bob", "wrong").0, Ok(false));
        let temporary = |user: &str| {
            lab.creds
                .failure_is_temporary(&Account::new(user, "example.org"))
        };
        assert!(!temporary("bob"), "the store answered: bad credentials");
        lab.creds.caches().lock().unwrap().set_listening(false);
        lab.store.down.store(true, Ordering::SeqCst);
        lab.advance(Duration::from_secs(1800));
        // Past invalidation: the same password still logs in...
        assert_eq!(lab.login("alice", "pw").0, Ok(true));
        // ...a wrong one fails, with the usual padding, and temporarily
        // (454, as for the others below: no hint of who logged in lately)...
        assert_eq!(lab.login("alice", "nope").0, Ok(false));
        assert_eq!(lab.login("alice", "nope").2, 1);
        assert!(temporary("alice"));
        // ...accounts that did not log in, or unknown ones, fail temporarily.
        assert!(lab.login("bob", "bob-pw").0.is_err());
        assert!(lab.login("carol", "x").0.is_err());
        // An hour after the success, alice fails temporarily too.
        lab.advance(Duration::from_secs(1800));
        assert!(lab.login("alice", "pw").0.is_err());
        // Back up: everything from the store again.
        lab.store.down.store(false, Ordering::SeqCst);
        lab.creds.caches().lock().unwrap().set_listening(true);
        assert_eq!(lab.login("bob", "bob-pw").0, Ok(true));
    }

    #[test]
    fn folded_look_ups_are_cached() {
        let lab = Lab::new();
        let alice = Some(Account::new("alice", "example.org"));
        assert_eq!(
            lab.creds.find_folded("ALICE", "Example.ORG").unwrap(),
            alice
        );
        let f = lab.fetches();
        assert_eq!(
            lab.creds.find_folded("Alice", "EXAMPLE.org").unwrap(),
            alice
        );
        assert_eq!(
            lab.creds.find_folded("nobody", "example.org").unwrap(),
            None
        );
        assert_eq!(
            lab.creds.find_folded("NOBODY", "example.org").unwrap(),
            None
        );
        assert_eq!(lab.fetches() - f, 1);
    }
}
