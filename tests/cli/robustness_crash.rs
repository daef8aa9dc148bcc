//! Crash safety: `kill -9` of a 100k-line `--batch` at different moments
//! leaves the store holding all of the batch or none of it, never part;
//! the next run (recovering LMDB's robust writer mutex left locked by the
//! dead process) completes it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::interop::*;
use crate::common::*;

const PRE_USERS: usize = 1000;
const LINES: usize = 100_000;
const DELETED: usize = 100; // pre0..pre99 deleted by the batch
const UPDATED: usize = 100; // pre100..pre199 get a new password

/// The data part of `mdb_dump -n` (hex, after the header, so the map size
/// line does not count): cheap to compare for 100k entries.
fn dump_data(db: &Path) -> Vec<u8> {
    need("mdb_dump", "lmdb-utils");
    let o = Command::new("mdb_dump")
        .arg("-n")
        .arg(db)
        .output()
        .expect("mdb_dump (Debian package lmdb-utils)");
    assert!(
        o.status.success(),
        "mdb_dump after kill: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let at = o
        .stdout
        .windows(11)
        .position(|w| w == b"HEADER=END\n")
        .expect("HEADER=END")
        + 11;
    o.stdout[at..].to_vec()
}

fn data_lines(d: &[u8]) -> usize {
    d.iter().filter(|&&b| b == b'\n').count().saturating_sub(1) / 2
}

/// True once the process has the data file mapped: the environment is open
/// and the write transaction is about to run or running.
fn maps(pid: u32, db: &Path) -> bool {
    let real = db.canonicalize().expect("store path");
    let path = real.to_str().unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().any(|l| l.ends_with(path)))
        .unwrap_or(false)
}

fn spawn_batch(s: &Scratch, db: &Path, batch: &Path) -> Child {
    s.cmd(SASLPASSWD)
        .args(["--batch"])
        .arg(batch)
        .arg("-f")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn saslpasswd")
}

/// Poll until the child maps the store; None if it exited first.
fn wait_mapped(child: &mut Child, db: &Path) -> Option<Instant> {
    let start = Instant::now();
    loop {
        if maps(child.id(), db) {
            return Some(Instant::now());
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "batch never opened the store"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    All,
}

fn kill_9_during_a_100k_batch_leaves_all_or_nothing() {
    require_tools();
    let test_start = Instant::now();
    let s = Scratch::new();

    // The pre-populated store every run starts from.
    let base = s.path("base");
    let mut pre = String::new();
    for i in 0..PRE_USERS {
        pre.push_str(&format!("pre{i}@crash.example:prepw{i}\n"));
    }
    let o = s.run(
        SASLPASSWD,
        &["--batch", "-", "-f", base.to_str().unwrap()],
        Some(pre.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let base_bytes = std::fs::read(&base).unwrap();
    let base_data = dump_data(&base);
    assert_eq!(data_lines(&base_data), PRE_USERS);

    // 100k lines: deletes, updates and new users.
    let mut text = String::with_capacity(LINES * 40);
    for i in 0..DELETED {
        text.push_str(&format!("-pre{i}@crash.example\n"));
    }
    for i in DELETED..DELETED + UPDATED {
        text.push_str(&format!("pre{i}@crash.example:changed{i}\n"));
    }
    let new_users = LINES - DELETED - UPDATED;
    for i in 0..new_users {
        text.push_str(&format!("new{i}@crash.example:newpw-{i}\n"));
    }
    let batch = s.path("batch.txt");
    std::fs::write(&batch, &text).unwrap();
    let full_count = PRE_USERS - DELETED + new_users;

    // Reference run to completion; also times the write phase.
    let reference = s.path("reference");
    std::fs::write(&reference, &base_bytes).unwrap();
    let mut child = spawn_batch(&s, &reference, &batch);
    let mapped = wait_mapped(&mut child, &reference).expect("reference run mapped the store");
    let st = wait_timeout(&mut child, Duration::from_secs(60), "reference batch");
    let write_phase = mapped.elapsed();
    let out = child.wait_with_output().unwrap();
    assert!(st.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full_data = dump_data(&reference);
    assert_eq!(data_lines(&full_data), full_count);
    assert_eq!(entries(&reference) as usize, full_count);
    let has = |data: &[u8], k: &[u8], v: &[u8]| {
        let needle = format!(" {}\n {}\n", hex(k), hex(v));
        data.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    let pre150 = key("pre150", "crash.example", "userPassword");
    let pre5 = key("pre5", "crash.example", "userPassword");
    assert!(has(&base_data, &pre5, b"prepw5") && has(&base_data, &pre150, b"prepw150"));
    assert!(has(&full_data, &pre150, b"changed150"));
    assert!(!has(&full_data, &pre5, b"prepw5"));
    let last = key(
        &format!("new{}", new_users - 1),
        "crash.example",
        "userPassword",
    );
    assert!(has(
        &full_data,
        &last,
        format!("newpw-{}", new_users - 1).as_bytes()
    ));

    // Kill moments: before the store is opened, then at fractions of the
    // measured write phase (which ends with the commit), then well after.
    let mut kills: Vec<Option<Duration>> = vec![None];
    for f in [0.0, 0.4, 0.8, 0.9, 0.95, 0.98, 1.0, 1.5] {
        kills.push(Some(write_phase.mul_f64(f)));
    }
    let mut outcomes = Vec::new();
    for (n, delay) in kills.iter().enumerate() {
        let db = s.path(&format!("run{n}"));
        std::fs::write(&db, &base_bytes).unwrap();
        let mut child = spawn_batch(&s, &db, &batch);
        match delay {
            None => std::thread::sleep(Duration::from_millis(2)),
            Some(d) => {
                if wait_mapped(&mut child, &db).is_some() {
                    std::thread::sleep(*d);
                }
            }
        }
        child.kill().expect("SIGKILL"); // SIGKILL; harmless if it already exited
        let status = child.wait().unwrap();

        let after = dump_data(&db);
        let state = if after == base_data {
            State::None
        } else if after == full_data {
            State::All
        } else {
            panic!(
                "kill #{n} ({delay:?}, {status}) left a partial store: {} entries (before {}, complete {full_count})",
                data_lines(&after),
                PRE_USERS
            );
        };
        outcomes.push((*delay, state));

        // Run again to completion: the dead writer's lock is recovered.
        let mut child = spawn_batch(&s, &db, &batch);
        let st = wait_timeout(&mut child, Duration::from_secs(60), "batch after kill -9");
        let out = child.wait_with_output().unwrap();
        assert!(
            st.success(),
            "re-run after kill #{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout).into_owned();
        let want = match state {
            State::None => format!(
                "{new_users} created, {UPDATED} updated, 0 unchanged, {DELETED} deleted, 0 absent"
            ),
            State::All => format!(
                "0 created, 0 updated, {} unchanged, 0 deleted, {DELETED} absent",
                new_users + UPDATED
            ),
        };
        assert!(summary.contains(&want), "kill #{n} {state:?}: {summary}");
        assert_eq!(dump_data(&db), full_data, "re-run after kill #{n}");
        assert_eq!(entries(&db) as usize, full_count);
    }
    eprintln!(
        "write phase {write_phase:?}; outcomes {outcomes:?}; total {:?}",
        test_start.elapsed()
    );
    // The test means something only if some kills landed inside the write.
    assert!(
        outcomes
            .iter()
            .any(|(d, st)| d.is_some() && *st == State::None),
        "no kill hit the running write transaction: {outcomes:?}"
    );
    assert_eq!(outcomes[0].1, State::None, "kill before open");
}

crate::tests!(kill_9_during_a_100k_batch_leaves_all_or_nothing,);
