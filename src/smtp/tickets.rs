//! Stateless TLS session tickets whose keys outlive the process: a ticket
//! is the session state sealed (ChaCha20-Poly1305) under a key kept in the
//! state directory, so any connection may resume from it, as often as it
//! likes, across restarts and reloads. Postfix's `smtpd_tls_session_cache_timeout`
//! is the ticket lifetime: a key seals new tickets for one lifetime and
//! opens them for one more, then is dropped, so no ticket outlives two.
//!
//! Keys file (0600, written whole under a temporary name, then renamed):
//! `MAGIC`, then per key its creation time (seconds since the epoch, 8
//! bytes big-endian) and the key (32 bytes). Instances sharing a state
//! directory rotate under a lock and adopt each other's newer key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Digest;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"SMTPDTK1";
const KEY_LEN: usize = 32;
const RECORD: usize = 8 + KEY_LEN;
const NAME_LEN: usize = 8;
/// RFC 8446 4.6.1: clients ignore ticket lifetimes past 7 days.
pub const MAX_LIFETIME: u32 = 7 * 24 * 3600;

struct Key {
    created: u64,
    name: [u8; NAME_LEN],
    secret: Zeroizing<[u8; KEY_LEN]>,
    aead: LessSafeKey,
}

impl Key {
    fn new(created: u64, secret: [u8; KEY_LEN]) -> Option<Key> {
        let digest = sha2::Sha256::digest(secret);
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&digest[..NAME_LEN]);
        let aead = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &secret).ok()?);
        Some(Key {
            created,
            name,
            secret: Zeroizing::new(secret),
            aead,
        })
    }
}

/// The ticket sealer rustls calls ([`rustls::server::ProducesTickets`]).
pub struct Tickets {
    dir: PathBuf,
    lifetime: u32,
    /// Newest last.
    keys: Mutex<Vec<Key>>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets")
            .field("dir", &self.dir)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the ticket keys, or another file of the state directory written
/// through [`write_whole`], could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a keys file", .0.display())]
    NotKeys(PathBuf),
    #[error("ticket key: {0}")]
    Key(String),
}

fn at(p: &Path) -> impl Fn(std::io::Error) -> StateFileError + '_ {
    move |source| StateFileError::Io {
        path: p.to_path_buf(),
        source,
    }
}

impl Tickets {
    /// Ticket keys in `dir` (made if missing, 0700), tickets valid for
    /// `lifetime` seconds (at most [`MAX_LIFETIME`]).
    pub fn new(dir: &Path, lifetime: u32) -> Result<Tickets, StateFileError> {
        let t = Tickets {
            dir: dir.to_path_buf(),
            lifetime: lifetime.clamp(1, MAX_LIFETIME),
            keys: Mutex::new(Vec::new()),
        };
        let keys = t.sync(now())?;
        *t.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(t)
    }

    fn file(&self) -> PathBuf {
        self.dir.join("ticket-keys")
    }

    /// Under the lock: the keys on disk still in use, plus a new one when
    /// none is fresh enough to seal with (then written back).
    fn sync(&self, now: u64) -> Result<Vec<Key>, StateFileError> {
        let _lock = locked_dir(&self.dir, "ticket-keys.lock")?;
        let file = self.file();
        let mut keys = match std::fs::read(&file) {
            Ok(bytes) => parse(&bytes).ok_or_else(|| StateFileError::NotKeys(file.clone()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(at(&file)(e)),
        };
        let lifetime = u64::from(self.lifetime);
        // A key from the future (the clock was set back) would seal for
        // too long: dropped like an expired one.
        keys.retain(|k| k.created + 2 * lifetime > now && k.created <= now);
        if !keys.last().is_some_and(|k| self.seals(k, now)) {
            let secret = crate::secret::random_bytes::<{ KEY_LEN }>()
                .map_err(|e| StateFileError::Key(e.to_string()))?;
            keys.push(Key::new(now, secret).ok_or(StateFileError::Key("unusable".into()))?);
            write_whole(&file, &serialize(&keys), 0o600)?;
        }
        Ok(keys)
    }

    /// Whether `k` still seals new tickets.
    fn seals(&self, k: &Key, now: u64) -> bool {
        k.created <= now && now < k.created + u64::from(self.lifetime)
    }

    fn seal(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if !keys.last().is_some_and(|k| self.seals(k, now)) {
            // Rotation: shared through the state directory when it can
            // be, else a key of this process alone until the next rotation.
            *keys = match self.sync(now) {
                Ok(k) => k,
                Err(_) => {
                    let secret = crate::secret::random_bytes::<{ KEY_LEN }>().ok()?;
                    let mut k: Vec<Key> = keys
                        .drain(..)
                        .filter(|k| k.created + 2 * u64::from(self.lifetime) > now)
                        .collect();
                    k.push(Key::new(now, secret)?);
                    k
                }
            };
        }
        let key = keys.last()?;
        let mut nonce = [0u8; NONCE_LEN];
        super::random::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut body,
            )
            .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn open(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let key = keys.iter().find(|k| k.name == name)?;
        if key.created + 2 * u64::from(self.lifetime) <= now {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

impl rustls::server::ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(plain, now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open(cipher, now())
    }
}

fn parse(bytes: &[u8]) -> Option<Vec<Key>> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    if body.len() % RECORD != 0 {
        return None;
    }
    body.chunks_exact(RECORD)
        .map(|r| {
            let (created, secret) = r.split_at(8);
            Key::new(
                u64::from_be_bytes(created.try_into().ok()?),
                secret.try_into().ok()?,
            )
        })
        .collect()
}

fn serialize(keys: &[Key]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(MAGIC.to_vec());
    for k in keys {
        out.extend_from_slice(&k.created.to_be_bytes());
        out.extend_from_slice(k.secret.as_slice());
    }
    out
}

/// `dir` (made 0700 if missing), and the lock `name` in it held until the
/// file returned is dropped.
pub(crate) fn locked_dir(dir: &Path, name: &str) -> Result<std::fs::File, StateFileError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(at(dir))?;
    let lock_path = dir.join(name);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(at(&lock_path))?;
    lock.lock().map_err(at(&lock_path))?;
    Ok(lock)
}

/// Whole or not at all: a temporary file synced, renamed, the directory
/// synced (so the rename is on disk before a lock lets others read).
pub(crate) fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(at(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tickets_open_again_and_again_and_across_instances() {
        let d = tempfile::tempdir().unwrap();
        let t = Tickets::new(d.path(), 3600).unwrap();
        let n = now();
        let ticket = t.seal(b"session state", n).unwrap();
        assert_ne!(&ticket[NAME_LEN + NONCE_LEN..], b"session state");
        assert_eq!(t.open(&ticket, n).unwrap(), b"session state");
        assert_eq!(t.open(&ticket, n).unwrap(), b"session state");
        // A restart (or a reload that rebuilt TLS) reads the same key.
        let again = Tickets::new(d.path(), 3600).unwrap();
        assert_eq!(again.open(&ticket, n).unwrap(), b"session state");
        let mode = std::fs::metadata(d.path().join("ticket-keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn forged_truncated_and_foreign_tickets_do_not_open() {
        let d = tempfile::tempdir().unwrap();
        let t = Tickets::new(d.path(), 3600).unwrap();
        let n = now();
        let mut ticket = t.seal(b"state", n).unwrap();
        assert!(t.open(&ticket[..10], n).is_none());
        assert!(t.open(b"", n).is_none());
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(t.open(&ticket, n).is_none());
        let other = tempfile::tempdir().unwrap();
        let foreign = Tickets::new(other.path(), 3600).unwrap();
        let ticket = foreign.seal(b"state", n).unwrap();
        assert!(t.open(&ticket, n).is_none());
    }

    #[test]
    fn keys_rotate_after_a_lifetime_and_expire_after_two() {
        let d = tempfile::tempdir().unwrap();
        let t = Tickets::new(d.path(), 100).unwrap();
        let n = now();
        let old = t.seal(b"old", n).unwrap();
        let newer = t.seal(b"new", n + 150).unwrap();
        assert_ne!(old[..NAME_LEN], newer[..NAME_LEN], "rotated");
        assert_eq!(t.open(&old, n + 150).unwrap(), b"old");
        assert!(t.open(&old, n + 200).is_none(), "expired");
        assert_eq!(t.open(&newer, n + 200).unwrap(), b"new");
        // The rotated key was written back for the next start.
        let bytes = std::fs::read(d.path().join("ticket-keys")).unwrap();
        assert_eq!(parse(&bytes).unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_keys_file_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ticket-keys"), b"garbage").unwrap();
        let e = Tickets::new(d.path(), 3600).unwrap_err();
        assert!(
            e.to_string().contains("ticket-keys: not a keys file"),
            "{e}"
        );
    }
}
