//! Can Postfix's user really open a store? Asked by running this binary
//! as that user (its uid, primary and supplementary groups) with
//! [`PROBE_ARG`]: the child opens the store read-only as an smtpd would.

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::facts::{Probe, ProbeOutcome};
use super::group_name;
use crate::store::{OpenOptions, Store};
use crate::sys;

/// Hidden first argument: open a store read-only and exit (the probe run as
/// Postfix's user). Not part of the documented interface.
pub const PROBE_ARG: &str = "--doctor-probe-open";
/// The binary the probe runs as Postfix's user.
pub const PROBE_EXE_ENV: &str = "SASLDB_DOCTOR_PROBE_EXE";

/// Run this binary as `user` (its uid, primary group and supplementary
/// groups) to open `path` read-only, as Postfix's processes would.
pub fn probe(path: &Path, user: &str) -> Probe {
    use nix::unistd::{User, geteuid, getgrouplist};
    let mut out = Probe {
        path: path.to_path_buf(),
        user: user.to_string(),
        groups: Vec::new(),
        outcome: ProbeOutcome::NotRun(String::new()),
    };
    let Some(u) = User::from_name(user).ok().flatten() else {
        out.outcome = ProbeOutcome::NotRun(format!("no user {user:?}"));
        return out;
    };
    let gids: Vec<libc::gid_t> = CString::new(user)
        .ok()
        .and_then(|c| getgrouplist(&c, u.gid).ok())
        .unwrap_or_else(|| vec![u.gid])
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    out.groups = gids.iter().map(|&g| group_name(g)).collect();
    out.outcome = if !geteuid().is_root() {
        ProbeOutcome::NotRun("switching users needs root".into())
    } else {
        let who = Identity {
            name: user,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            groups: gids,
        };
        match probe_exe() {
            Ok(exe) => run_as(&exe, &who, path),
            Err(e) => ProbeOutcome::NotRun(format!("cannot find this program: {e}")),
        }
    };
    out
}

/// Who the child runs as.
struct Identity<'a> {
    name: &'a str,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// The binary to run as Postfix's user: [`PROBE_EXE_ENV`], else this one.
fn probe_exe() -> io::Result<PathBuf> {
    match std::env::var_os(PROBE_EXE_ENV) {
        Some(e) if !e.is_empty() => Ok(PathBuf::from(e)),
        _ => std::env::current_exe(),
    }
}

/// Run `exe PROBE_ARG path` as `who`, with an empty environment.
fn run_as(exe: &Path, who: &Identity<'_>, path: &Path) -> ProbeOutcome {
    let (uid, gid, gids) = (who.uid, who.gid, who.groups.clone());
    let mut cmd = Command::new(exe);
    cmd.arg(PROBE_ARG)
        .arg(path)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe system calls run between fork and
    // exec; the group list was built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(gids.len() as _, gids.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let user = who.name;
    match cmd.output() {
        Err(e) => ProbeOutcome::NotRun(format!(
            "cannot run {} as {user}: {}",
            exe.display(),
            sys::strerror(&e)
        )),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() {
                ProbeOutcome::Opened {
                    keys: text.parse().unwrap_or(0),
                }
            } else if o.status.code() == Some(1) && !text.is_empty() {
                ProbeOutcome::Refused(text)
            } else {
                ProbeOutcome::NotRun(format!(
                    "{} as {user} failed ({}): {}",
                    exe.display(),
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        }
    }
}

/// The probe's child side: open `path` read-only, read every key in one
/// transaction, print how many (exit 0) or why not (exit 1).
pub fn probe_main(args: &[OsString]) -> i32 {
    let [path] = args else {
        return 2;
    };
    let path = Path::new(path);
    let r = Store::open_read(path, &OpenOptions::default())
        .and_then(|s| s.read(|v| v.raw_entries().map(|e| e.len())));
    let (line, code) = match r {
        Ok(n) => (n.to_string(), 0),
        Err(e) => (e.to_string(), 1),
    };
    let _ = writeln!(io::stdout(), "{line}");
    code
}
