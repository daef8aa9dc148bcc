//! What the SMTP listener and the auth sockets share about clients:
//! address ranges ([`Cidr`]), the key a client is counted under
//! ([`client_key`]), and per-client limits on authentication failures
//! ([`FailureLimiter`]): after `limit` failures within `window` a client's
//! requests are refused until the window ends.
//! Only the client address is throttled, never the account, so nobody can
//! lock a user out by guessing at their password. Time is passed in, so
//! tests drive the clock.
//!
//! An IPv6 client is counted by its network, not its address: one host
//! usually holds a whole /64 and can pick a fresh address for every try.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Most clients remembered at once; beyond, the stalest are forgotten.
const MAX_CLIENTS: usize = 100_000;

/// A bad address range or prefix length; the message names what was given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NetError {
    #[error("bad address {0:?}")]
    BadAddress(String),
    #[error("bad prefix length in {0:?}")]
    BadPrefixLength(String),
    #[error("IPv6 prefix length {0} is not between 0 and 128")]
    BadIpv6Prefix(u32),
}

/// An address block exempt from limits (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, NetError> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let net: IpAddr = addr
            .parse()
            .map_err(|_| NetError::BadAddress(s.to_string()))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| NetError::BadPrefixLength(s.to_string()))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The prefix length IPv6 clients are keyed by unless configured
/// (`smtpd_client_ipv6_prefix_length`).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// What per-client limits count by: an IPv4 address as it is, an IPv6
/// address cut to its first `v6_prefix` bits (an IPv4-mapped one as the
/// IPv4 address it is).
pub fn client_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
        v4 => v4,
    }
}

/// Parse a prefix length for [`client_key`].
pub fn parse_ipv6_prefix(n: u32) -> Result<u8, NetError> {
    u8::try_from(n)
        .ok()
        .filter(|&b| b <= 128)
        .ok_or(NetError::BadIpv6Prefix(n))
}

#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    exempt: Vec<Cidr>,
    v6_prefix: u8,
    clients: HashMap<String, (Instant, u32)>,
}

impl FailureLimiter {
    /// `limit` 0 turns limiting off.
    pub fn new(limit: u32, window: Duration, exempt: Vec<Cidr>) -> Self {
        FailureLimiter {
            limit,
            window,
            exempt,
            v6_prefix: DEFAULT_IPV6_PREFIX,
            clients: HashMap::new(),
        }
    }

    /// Key IPv6 clients by their first `bits` bits (default 64).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.v6_prefix = bits;
        self
    }

    /// The name a client is counted under; a client that is not an
    /// address (no `rip=` from Postfix) by its name as given.
    fn key(&self, client: &str) -> String {
        match client.parse::<IpAddr>() {
            Ok(ip) => client_key(ip, self.v6_prefix).to_string(),
            Err(_) => client.to_string(),
        }
    }

    fn exempt(&self, client: &str) -> bool {
        client
            .parse::<IpAddr>()
            .is_ok_and(|ip| self.exempt.iter().any(|c| c.contains(ip)))
    }

    pub fn allow_at(&mut self, client: Option<&str>, now: Instant) -> bool {
        let Some(c) = client else { return true };
        if self.limit == 0 || self.exempt(c) {
            return true;
        }
        match self.clients.get(&self.key(c)) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n < self.limit,
            _ => true,
        }
    }

    pub fn failed_at(&mut self, client: Option<&str>, now: Instant) {
        let Some(c) = client else { return };
        if self.limit == 0 || self.exempt(c) {
            return;
        }
        let c = &self.key(c);
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(c) {
            let window = self.window;
            self.clients
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.clients.len() >= MAX_CLIENTS {
                // Forget the oldest eighth at once: one pass per many
                // newcomers, not one per newcomer (a client with many
                // addresses fills the table on purpose).
                let mut starts: Vec<Instant> = self.clients.values().map(|(s, _)| *s).collect();
                let nth = starts.len() / 8;
                let (_, cutoff, _) = starts.select_nth_unstable(nth);
                let cutoff = *cutoff;
                self.clients.retain(|_, (start, _)| *start > cutoff);
            }
        }
        let entry = self.clients.entry(c.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_window() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(
            3,
            Duration::from_secs(60),
            vec![Cidr::parse("127.0.0.0/8").unwrap()],
        );
        for _ in 0..3 {
            assert!(l.allow_at(Some("192.0.2.1"), t0));
            l.failed_at(Some("192.0.2.1"), t0);
        }
        assert!(!l.allow_at(Some("192.0.2.1"), t0 + Duration::from_secs(59)));
        assert!(
            l.allow_at(Some("192.0.2.2"), t0),
            "other clients unaffected"
        );
        assert!(
            l.allow_at(Some("192.0.2.1"), t0 + Duration::from_secs(60)),
            "window over"
        );
        for _ in 0..10 {
            l.failed_at(Some("127.0.0.1"), t0);
        }
        assert!(l.allow_at(Some("127.0.0.1"), t0), "exempt");
        assert!(l.allow_at(None, t0));
    }

    #[test]
    fn a_full_table_forgets_its_oldest_eighth_at_once() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(1, Duration::from_secs(3600), Vec::new());
        let ip = |i: usize| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        for i in 0..MAX_CLIENTS {
            l.failed_at(Some(&ip(i)), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(l.clients.len(), MAX_CLIENTS);
        let later = t0 + Duration::from_secs(200);
        l.failed_at(Some("192.0.2.1"), later);
        // The oldest eighth (and one) went in one pass; the newcomer is in.
        assert_eq!(l.clients.len(), MAX_CLIENTS - MAX_CLIENTS / 8);
        assert!(l.allow_at(Some(&ip(0)), later), "oldest forgotten");
        assert!(
            !l.allow_at(Some(&ip(MAX_CLIENTS - 1)), later),
            "newest kept"
        );
        assert!(!l.allow_at(Some("192.0.2.1"), later));
        // The next newcomers fit without another pass.
        for i in 0..100 {
            l.failed_at(Some(&format!("198.51.100.{i}")), later);
        }
        assert_eq!(l.clients.len(), MAX_CLIENTS - MAX_CLIENTS / 8 + 100);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 128),
            ip("2001:db8:1:2:aaaa::1")
        );
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1"), 0), ip("::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 48),
            ip("2001:db8:1::")
        );
        assert_eq!(client_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert!(parse_ipv6_prefix(129).is_err());
        assert_eq!(parse_ipv6_prefix(56), Ok(56));
    }

    #[test]
    fn failures_from_one_ipv6_network_count_together() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(2, Duration::from_secs(60), Vec::new());
        l.failed_at(Some("2001:db8:0:1::a"), t0);
        l.failed_at(Some("2001:db8:0:1::b"), t0);
        assert!(!l.allow_at(Some("2001:db8:0:1::c"), t0), "same /64");
        assert!(l.allow_at(Some("2001:db8:0:2::a"), t0), "other /64");
        let mut l =
            FailureLimiter::new(2, Duration::from_secs(60), Vec::new()).with_ipv6_prefix(128);
        l.failed_at(Some("2001:db8:0:1::a"), t0);
        l.failed_at(Some("2001:db8:0:1::b"), t0);
        assert!(l.allow_at(Some("2001:db8:0:1::c"), t0), "per address");
        assert!(l.allow_at(Some("not-an-address"), t0));
    }

    #[test]
    fn cidrs() {
        // IPv4 clients on an IPv6 socket match IPv4 ranges.
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!lo.contains("::ffff:10.0.0.1".parse().unwrap()));
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("[::1]/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
    }
}
