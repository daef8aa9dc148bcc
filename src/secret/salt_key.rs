//! The key SCRAM salts for accounts without a stored verifier (and for
//! unknown names) are made from. It must outlive the process: with a new
//! key on every start or SIGHUP, an unknown name's salt would change while
//! a real verifier's salt stays put, which tells the two apart.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{SecretError, random_bytes};

/// The file in the state directory.
pub const SALT_KEY_FILE: &str = "scram-salt.key";

const KEY_LEN: usize = 32;

fn fail(path: &Path, why: impl ToString) -> SecretError {
    SecretError::SaltKey(path.display().to_string(), why.to_string())
}

/// The salt key kept in `dir` (made 0700 when missing), created on first
/// use: a fresh key is written to a private temporary file (0600, O_EXCL)
/// and hard-linked into place, so two processes starting at once agree on
/// one key and no reader ever sees half a file.
///
/// A key once read is remembered for the process: a daemon reloading its
/// configuration after dropping root (SIGHUP) cannot read the root-owned
/// file again, and needs the same key anyway.
pub fn load_salt_key(dir: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    static LOADED: Mutex<Vec<(PathBuf, [u8; KEY_LEN])>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, key)) = loaded.iter().find(|(d, _)| d == dir) {
        return Ok(*key);
    }
    let key = load(dir)?;
    loaded.push((dir.to_path_buf(), key));
    Ok(key)
}

fn load(dir: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(dir, e))?;
    let path = dir.join(SALT_KEY_FILE);
    if !path.exists() {
        create(dir, &path)?;
    }
    read(&path)
}

fn create(dir: &Path, path: &Path) -> Result<(), SecretError> {
    let key = zeroize::Zeroizing::new(random_bytes::<KEY_LEN>()?);
    let tmp = dir.join(format!(".{SALT_KEY_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key[..]).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    // The link must reach the disk before the key is used: a key lost in a
    // crash would change every derived salt, the very tell this file hides.
    let linked = linked.and_then(|()| std::fs::File::open(dir)?.sync_all());
    match linked {
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map_err(|e| fail(path, e)),
    }
}

fn read(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    let mut f = std::fs::File::open(path).map_err(|e| fail(path, e))?;
    let meta = f.metadata().map_err(|e| fail(path, e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(fail(
            path,
            format!(
                "mode {:o} lets others read the key; chmod 600 it",
                meta.mode() & 0o777
            ),
        ));
    }
    let mut key = [0u8; KEY_LEN];
    let mut rest = Vec::new();
    f.read_exact(&mut key)
        .and_then(|()| f.read_to_end(&mut rest))
        .map_err(|e| fail(path, format!("not a {KEY_LEN}-byte key ({e})")))?;
    if !rest.is_empty() {
        return Err(fail(path, format!("not a {KEY_LEN}-byte key")));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        let a = load(&dir).unwrap();
        let b = load(&dir).unwrap();
        assert_eq!(a, b);
        let path = dir.join(SALT_KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // Nothing else is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::write(&path, b"short").unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("32-byte") && e.contains(SALT_KEY_FILE), "{e}");
        std::fs::remove_file(&path).unwrap();
        let c = load(&dir).unwrap();
        assert_ne!(a, c);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(load(&dir).unwrap_err().to_string().contains("chmod"));
    }

    #[test]
    fn remembered_once_read() {
        let d = tempfile::tempdir().unwrap();
        let a = load_salt_key(d.path()).unwrap();
        std::fs::remove_file(d.path().join(SALT_KEY_FILE)).unwrap();
        assert_eq!(load_salt_key(d.path()).unwrap(), a);
    }
}
