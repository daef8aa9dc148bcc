//! Randomness for the TLS handshakes from a per-thread pool that one
//! getrandom(2) call fills for many sessions: a handshake asks rustls's
//! provider for a few small values (the server random, the ticket nonce
//! and age, the sealed ticket's nonce), each a system call otherwise.
//! Bytes are wiped as they are handed out, and a pool inherited across
//! fork(2) is refilled, never shared with the parent.

use std::cell::RefCell;

use rustls::crypto::{CryptoProvider, GetRandomFailed, SecureRandom};
use zeroize::Zeroize;

const POOL: usize = 4096;

/// Requests past this size go straight to the kernel.
const LARGE: usize = 256;

struct Pool {
    bytes: Box<[u8; POOL]>,
    next: usize,
    pid: u32,
}

impl Pool {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), getrandom::Error> {
        if out.len() > LARGE {
            return getrandom::fill(out);
        }
        let pid = std::process::id();
        if self.pid != pid || POOL - self.next < out.len() {
            getrandom::fill(self.bytes.as_mut_slice())?;
            self.next = 0;
            self.pid = pid;
        }
        let end = self.next + out.len();
        out.copy_from_slice(&self.bytes[self.next..end]);
        self.bytes[self.next..end].zeroize();
        self.next = end;
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

thread_local! {
    // Starts empty (next = POOL): the first request fills it.
    static THREAD_POOL: RefCell<Pool> = RefCell::new(Pool {
        bytes: Box::new([0u8; POOL]),
        next: POOL,
        pid: 0,
    });
}

/// Fill `out` with random bytes from this thread's pool.
pub fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    THREAD_POOL.with(|p| p.borrow_mut().fill(out))
}

#[derive(Debug)]
struct Pooled;

impl SecureRandom for Pooled {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// rustls's ring provider, its randomness from the pool.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        secure_random: &Pooled,
        ..rustls::crypto::ring::default_provider()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ_and_handed_out_bytes_are_wiped() {
        let mut p = Pool {
            bytes: Box::new([0u8; POOL]),
            next: POOL,
            pid: 0,
        };
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        p.fill(&mut a).unwrap();
        p.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(p.next, 64);
        assert!(p.bytes[..64].iter().all(|&x| x == 0), "wiped");
        assert_eq!(p.pid, std::process::id());
    }

    #[test]
    fn an_exhausted_or_inherited_pool_is_refilled() {
        let mut p = Pool {
            bytes: Box::new([7u8; POOL]),
            next: POOL - 8,
            pid: std::process::id(),
        };
        let mut a = [0u8; 16];
        p.fill(&mut a).unwrap();
        assert_eq!(p.next, 16, "refilled before handing out");
        // A pool made in another process (a fork's parent) is not used.
        p.pid = 1;
        p.next = 0;
        *p.bytes = [7u8; POOL];
        p.fill(&mut a).unwrap();
        assert_ne!(a, [7u8; 16]);
        let mut big = [0u8; LARGE + 1];
        p.fill(&mut big).unwrap();
        assert_eq!(p.next, 16, "large requests bypass the pool");
    }

    #[test]
    fn the_provider_uses_the_pool() {
        let p = provider();
        let mut a = [0u8; 32];
        p.secure_random.fill(&mut a).unwrap();
        assert_ne!(a, [0u8; 32]);
    }
}
