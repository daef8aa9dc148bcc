//! Operating-system details every layer may need. The lowest module: it
//! imports nothing from the crate.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Are two paths the same file (device and inode)? False when either is
/// missing.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// An OS error as strerror(3) words it, without Rust's " (os error N)"
/// suffix, so messages read like those of the C tools they stand in for.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A process that has a file mapped, and how many bytes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub pid: u32,
    /// `/proc/PID/comm`: the command name.
    pub command: String,
    pub bytes: u64,
}

/// The processes that map `path` (matched by device and inode, so a
/// chrooted process that sees it under another name counts), from
/// `/proc/*/maps`. Processes we may not inspect are left out (run as root
/// to see every user's).
pub fn mappings_of(path: &Path) -> Vec<Mapping> {
    let Ok(meta) = fs::metadata(path) else {
        return Vec::new();
    };
    let dev = meta.dev();
    let want = (libc::major(dev) as u64, libc::minor(dev) as u64, meta.ino());
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(maps) = fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        let bytes: u64 = maps.lines().filter_map(|l| mapped_bytes(l, want)).sum();
        if bytes > 0 {
            let command = fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
            out.push(Mapping {
                pid,
                command,
                bytes,
            });
        }
    }
    out.sort_by_key(|m| m.pid);
    out
}

/// The length of one `/proc/PID/maps` line's mapping when it maps the file
/// `(major, minor, inode)`.
fn mapped_bytes(line: &str, (major, minor, inode): (u64, u64, u64)) -> Option<u64> {
    let mut f = line.split_ascii_whitespace();
    let (range, _perms, _offset, dev, ino) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let (ma, mi) = dev.split_once(':')?;
    let same = u64::from_str_radix(ma, 16).ok()? == major
        && u64::from_str_radix(mi, 16).ok()? == minor
        && ino.parse::<u64>().ok()? == inode;
    if !same {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let (start, end) = (
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    );
    end.checked_sub(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_are_matched_by_device_and_inode() {
        let line =
            "7f0000000000-7f0000100000 r--s 00000000 fd:01 1234    /var/spool/postfix/etc/sasldb2";
        assert_eq!(mapped_bytes(line, (0xfd, 1, 1234)), Some(1 << 20));
        assert_eq!(mapped_bytes(line, (0xfd, 1, 1235)), None);
        assert_eq!(mapped_bytes(line, (0xfe, 1, 1234)), None);
        assert_eq!(mapped_bytes("garbage", (0, 0, 0)), None);
        // This process maps its own executable.
        let exe = std::env::current_exe().expect("exe");
        let me = mappings_of(&exe);
        assert!(
            me.iter()
                .any(|m| m.pid == std::process::id() && m.bytes > 0),
            "{me:?}"
        );
    }

    #[test]
    fn no_rust_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(strerror(&e), "No such file or directory");
        assert_eq!(strerror(&io::Error::other("plain")), "plain");
    }
}
