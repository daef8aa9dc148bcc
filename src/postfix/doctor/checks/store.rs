//! `store.*`: the store file, its owner and modes, and whether Postfix's
//! user really opens it.

use std::path::Path;

use super::postfix_facts;
use crate::postfix::doctor::facts::{
    Facts, FileFacts, Kind, MapUsers, PostfixFacts, Probe, ProbeOutcome, StoreFacts, accounts,
};
use crate::postfix::doctor::{Finding, Fix, Level, count, group_name, user_name};
use crate::postfix::perms;
use crate::store::lock_path;

/// `store.file`, `store.perms` and, with Postfix, `store.access`.
pub fn check(f: &Facts) -> Vec<Finding> {
    let s = &f.store;
    let pf = postfix_facts(f);
    let mut out = vec![file(s)];
    out.extend(stale_maps("store.map", &s.path, &s.maps));
    if let Some(d) = &s.data
        && d.kind == Kind::File
    {
        out.push(check_perms(
            "store.perms",
            &s.path,
            d,
            s.lock.as_ref(),
            pf,
            Some(Fix::StorePerms),
        ));
    }
    if let Some(p) = pf
        && let Some(probe) = &p.store_probe
    {
        out.push(check_probe(
            "store.access",
            probe,
            &p.group,
            perms_fixable(&s.data, &s.lock, p),
            Some(Fix::StorePerms),
        ));
    }
    out
}

/// `store.map` / `chroot.map`: processes that map the store with less than
/// the map it records. Only said when there are some.
pub fn stale_maps(id: &'static str, path: &Path, maps: &MapUsers) -> Option<Finding> {
    if maps.short.is_empty() {
        return None;
    }
    let subject = path.display().to_string();
    let who: Vec<String> = maps
        .short
        .iter()
        .map(|m| format!("{} ({}) maps {} bytes", m.pid, m.command, m.bytes))
        .collect();
    Some(Finding::warning(
        id,
        &subject,
        format!(
            "{subject} records a map of {} bytes, but {}: the map grew under {}, so {} next lookup fails with MDB_MAP_RESIZED (Cyrus SASL's LMDB backend then crashes)",
            maps.map_size,
            who.join(", "),
            if who.len() == 1 { "it" } else { "them" },
            if who.len() == 1 { "its" } else { "their" },
        ),
        "restart them (`postfix reload` for Postfix's smtpd, the service for others); the map only grows again when the store outgrows it".into(),
    ))
}

/// `store.file`: the store exists, is no link, and opens as LMDB.
fn file(s: &StoreFacts) -> Finding {
    let subject = s.path.display().to_string();
    match (&s.data, &s.content) {
        (None, _) => Finding::error(
            "store.file",
            &subject,
            format!("{subject}: no such file"),
            format!(
                "create the first account with `saslpasswd -c -f {subject} -u REALM USER` (or point -f / sasldb_path at the store)"
            ),
        ),
        (Some(d), _) if d.kind == Kind::Symlink => Finding::error(
            "store.file",
            &subject,
            format!(
                "{subject}: is a symbolic link: LMDB keeps the lock file beside the name it is given, so two names for one data file mean two lock files"
            ),
            "replace the link by the real file (or use the real path with -f and sasldb_path)"
                .into(),
        ),
        (_, Err(e)) => {
            let hint = match &s.foreign {
                Some(old) => format!(
                    "the file is {} (a sasldb written by a libsasl built for it, e.g. Debian's saslpasswd2): import it into LMDB as migrate.import says",
                    old.format.name()
                ),
                None => "check that the path names a sasldb in LMDB layout and that it is readable"
                    .into(),
            };
            Finding::error("store.file", &subject, e.to_string(), hint)
        }
        (_, Ok(entries)) => Finding::ok(
            "store.file",
            &subject,
            format!(
                "{subject}: LMDB sasldb, {} ({})",
                count(accounts(entries).len(), "account"),
                count(entries.len(), "key")
            ),
        ),
    }
}

/// Would `--fix`'s owner/mode change apply to these files?
pub fn perms_fixable(data: &Option<FileFacts>, lock: &Option<FileFacts>, p: &PostfixFacts) -> bool {
    match data {
        Some(d) if d.kind == Kind::File => perms_problems(d, lock.as_ref(), Some(p)).0 != Level::Ok,
        _ => false,
    }
}

/// Problems found so far, and the worst level among them.
#[derive(Default)]
struct Problems {
    level: Level,
    list: Vec<String>,
}

impl Problems {
    fn add(&mut self, level: Level, msg: String) {
        self.level = self.level.max(level);
        self.list.push(msg);
    }
}

/// Problems with owner and modes: (worst level, descriptions).
fn perms_problems(
    data: &FileFacts,
    lock: Option<&FileFacts>,
    pf: Option<&PostfixFacts>,
) -> (Level, Vec<String>) {
    let mut found = Problems::default();
    other_users(data, lock, &mut found);
    if let Some(p) = pf {
        postfix_data_file(data, p, &mut found);
        postfix_lock_file(lock, p, &mut found);
    }
    (found.level, found.list)
}

/// Whatever the deployment: no access for other users.
fn other_users(data: &FileFacts, lock: Option<&FileFacts>, found: &mut Problems) {
    if data.mode & 0o007 != 0 {
        found.add(
            Level::Error,
            format!(
                "data file mode {:04o} lets every user {} it",
                data.mode,
                if data.mode & 0o004 != 0 {
                    "read"
                } else {
                    "open"
                }
            ),
        );
    }
    if let Some(l) = lock
        && l.kind == Kind::File
        && l.mode & 0o002 != 0
    {
        found.add(
            Level::Warning,
            format!(
                "lock file mode {:04o} lets every user write it (and disturb readers)",
                l.mode
            ),
        );
    }
}

fn owner(f: &FileFacts) -> String {
    format!("{}:{}", user_name(f.uid), group_name(f.gid))
}

fn wanted_owner(p: &PostfixFacts) -> String {
    format!("{}:{}", user_name(p.ownership.uid), p.group)
}

/// With Postfix: the data file is `root:<group>` 0640.
fn postfix_data_file(data: &FileFacts, p: &PostfixFacts, found: &mut Problems) {
    let want = p.ownership;
    if data.uid != want.uid || data.gid != want.gid {
        found.add(
            Level::Warning,
            format!(
                "data file owned by {}, not {}",
                owner(data),
                wanted_owner(p)
            ),
        );
    }
    if data.mode & 0o040 == 0 {
        found.add(
            Level::Error,
            format!(
                "data file mode {:04o}: group {} cannot read it",
                data.mode, p.group
            ),
        );
    } else if data.mode != perms::DATA_MODE && data.mode & 0o007 == 0 {
        found.add(
            Level::Warning,
            format!("data file mode {:04o}, not 0640", data.mode),
        );
    }
}

/// With Postfix: the lock file exists, `root:<group>` 0660, since every
/// LMDB reader opens it read-write.
fn postfix_lock_file(lock: Option<&FileFacts>, p: &PostfixFacts, found: &mut Problems) {
    let want = p.ownership;
    let l = match lock {
        None => {
            return found.add(
                Level::Warning,
                "lock file missing: the first process to open the store creates it, and Postfix's user cannot create it in a directory it does not own".into(),
            );
        }
        Some(l) if l.kind != Kind::File => {
            return found.add(
                Level::Error,
                "lock file is not a regular file (a symbolic link?)".into(),
            );
        }
        Some(l) => l,
    };
    if l.uid != want.uid || l.gid != want.gid {
        found.add(
            Level::Warning,
            format!("lock file owned by {}, not {}", owner(l), wanted_owner(p)),
        );
    }
    if l.mode & 0o060 != 0o060 {
        found.add(
            Level::Error,
            format!(
                "lock file mode {:04o}: group {} cannot open it read-write, which every LMDB reader must",
                l.mode, p.group
            ),
        );
    } else if l.mode != perms::LOCK_MODE && l.mode & 0o002 == 0 {
        found.add(
            Level::Warning,
            format!("lock file mode {:04o}, not 0660", l.mode),
        );
    }
}

pub fn check_perms(
    id: &'static str,
    path: &Path,
    data: &FileFacts,
    lock: Option<&FileFacts>,
    pf: Option<&PostfixFacts>,
    fix: Option<Fix>,
) -> Finding {
    let subject = path.display().to_string();
    let (level, problems) = perms_problems(data, lock, pf);
    if level == Level::Ok {
        let msg = match pf {
            Some(p) => format!(
                "{subject}: {} 0640, lock file 0660: readable by group {} only",
                format_args!("{}:{}", user_name(data.uid), group_name(data.gid)),
                p.group
            ),
            None => format!(
                "{subject}: mode {:04o}, not accessible to other users",
                data.mode
            ),
        };
        return Finding::ok(id, &subject, msg);
    }
    let message = format!("{subject}: {}", problems.join("; "));
    match pf {
        Some(p) => Finding::new(id, level, &subject, message)
            .hint(format!(
                "--fix sets {}:{} 0640 on the data file and 0660 on {} (through O_NOFOLLOW descriptors; nothing else is touched)",
                user_name(p.ownership.uid),
                p.group,
                lock_path(path).display()
            ))
            .with_fix(fix),
        None => Finding::new(id, level, &subject, message).hint(format!(
            "chmod o-rwx {subject} {}",
            lock_path(path).display()
        )),
    }
}

pub fn check_probe(
    id: &'static str,
    probe: &Probe,
    group: &str,
    perms_bad: bool,
    fix: Option<Fix>,
) -> Finding {
    let subject = probe.path.display().to_string();
    let who = format!("{} (groups {})", probe.user, probe.groups.join(", "));
    match &probe.outcome {
        ProbeOutcome::Opened { keys } => Finding::ok(
            id,
            &subject,
            format!(
                "{who} opened {subject} read-only and read {}",
                count(*keys, "key")
            ),
        ),
        ProbeOutcome::Refused(why) => {
            let hint = if perms_bad {
                "--fix sets the owner and modes; the test is then run again".to_string()
            } else {
                format!(
                    "every directory above {subject} must be searchable by {user}, the data file readable and {lock} writable through group {group} (`ls -ld` each directory; `adduser {user} {group}` if it is not a member)",
                    user = probe.user,
                    lock = lock_path(&probe.path).display()
                )
            };
            Finding::error(
                id,
                &subject,
                format!("{who} cannot open {subject} read-only: {why}"),
                hint,
            )
            .with_fix(if perms_bad { fix } else { None })
        }
        ProbeOutcome::NotRun(why) => Finding::warning(
            id,
            &subject,
            format!(
                "could not test whether {} can open {subject}: {why}",
                probe.user
            ),
            format!(
                "run saslpasswd --doctor as root, from a path {} can execute",
                probe.user
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postfix::doctor::checks::fixtures::pf;

    #[test]
    fn perms_rules() {
        let p = pf("r");
        let file = |uid, gid, mode| FileFacts {
            kind: Kind::File,
            uid,
            gid,
            mode,
        };
        let good = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 105, 0o640),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            Some(Fix::StorePerms),
        );
        assert_eq!(good.level, Level::Ok);
        assert_eq!(good.fix, None);
        let world = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 105, 0o644),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            Some(Fix::StorePerms),
        );
        assert_eq!(world.level, Level::Error);
        assert_eq!(world.fix, Some(Fix::StorePerms));
        let lock = check_perms(
            "chroot.perms",
            Path::new("/s"),
            &file(0, 105, 0o640),
            Some(&file(0, 105, 0o640)),
            Some(&p),
            Some(Fix::CopyPerms),
        );
        assert_eq!(lock.level, Level::Error);
        assert!(lock.message.contains("read-write"), "{}", lock.message);
        let owner = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 0, 0o640),
            Some(&file(0, 105, 0o660)),
            Some(&p),
            None,
        );
        assert_eq!(owner.level, Level::Warning);
        // Without Postfix only other users' access counts.
        let alone = check_perms(
            "store.perms",
            Path::new("/s"),
            &file(0, 0, 0o600),
            None,
            None,
            None,
        );
        assert_eq!(alone.level, Level::Ok);
    }
}
