//! The per-client AUTH limits an SMTP session consults: failures within a
//! window (`smtpd_auth_failure_limit`) and AUTH commands per minute
//! (`smtpd_client_auth_rate_limit`). A trait, so the session decides and
//! tests drive the clock; the listener shares one [`Limiters`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::net::FailureLimiter;

/// Per-client AUTH limits, shared by every session of a listener; the
/// clock is passed in so tests drive it.
pub trait AuthLimits: Send + Sync {
    /// False while this client has failed too often lately.
    fn failures_allow(&self, client: IpAddr, now: Instant) -> bool;
    /// One failed (or abandoned) exchange.
    fn failed(&self, client: IpAddr, now: Instant);
    /// Count one AUTH command; false once the client is over its rate.
    fn rate_allow(&self, client: IpAddr, now: Instant) -> bool;
}

/// [`AuthLimits`] from two [`FailureLimiter`]s: failures per window, and
/// AUTH commands per minute.
pub struct Limiters {
    pub failures: Arc<Mutex<FailureLimiter>>,
    pub rate: Arc<Mutex<FailureLimiter>>,
}

impl AuthLimits for Limiters {
    fn failures_allow(&self, client: IpAddr, now: Instant) -> bool {
        let mut l = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        l.allow_at(Some(&client.to_string()), now)
    }

    fn failed(&self, client: IpAddr, now: Instant) {
        let mut l = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        l.failed_at(Some(&client.to_string()), now);
    }

    fn rate_allow(&self, client: IpAddr, now: Instant) -> bool {
        let mut l = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let c = client.to_string();
        let ok = l.allow_at(Some(&c), now);
        l.failed_at(Some(&c), now);
        ok
    }
}
