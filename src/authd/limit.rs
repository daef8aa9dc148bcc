//! Per-client limits on authentication failures: after `limit` failures
//! within `window` a client's requests are refused until the window ends.
//! Only the client address is throttled, never the account, so nobody can
//! lock a user out by guessing at their password. Time is passed in, so
//! tests drive the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most clients remembered at once; beyond, the stalest are forgotten.
const MAX_CLIENTS: usize = 100_000;

/// An address block exempt from limits (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let net: IpAddr = addr.parse().map_err(|_| format!("bad address {s:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
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

#[derive(Debug)]
pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    exempt: Vec<Cidr>,
    clients: HashMap<String, (Instant, u32)>,
}

impl FailureLimiter {
    /// `limit` 0 turns limiting off.
    pub fn new(limit: u32, window: Duration, exempt: Vec<Cidr>) -> Self {
        FailureLimiter {
            limit,
            window,
            exempt,
            clients: HashMap::new(),
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
        match self.clients.get(c) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n < self.limit,
            _ => true,
        }
    }

    pub fn failed_at(&mut self, client: Option<&str>, now: Instant) {
        let Some(c) = client else { return };
        if self.limit == 0 || self.exempt(c) {
            return;
        }
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(c) {
            let window = self.window;
            self.clients
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.clients.len() >= MAX_CLIENTS
                && let Some(oldest) = self
                    .clients
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| k.clone())
            {
                self.clients.remove(&oldest);
            }
        }
        let entry = self.clients.entry(c.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

impl super::dovecot::Limiter for FailureLimiter {
    fn allow(&mut self, client: Option<&str>) -> bool {
        self.allow_at(client, Instant::now())
    }
    fn failed(&mut self, client: Option<&str>) {
        self.failed_at(client, Instant::now())
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
    fn cidrs() {
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
