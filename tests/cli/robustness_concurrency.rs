//! Many writers at once on one store, starting from a missing file: 8 shell
//! loops of single `saslpasswd` calls and 8 workers running `--batch` files,
//! all while `sasldblistusers` keeps listing. Every user must be there
//! afterwards with its exact password (Debian's `mdb_dump`), none lost.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::interop::*;
use crate::common::*;

const WRITERS: usize = 8;
const LOOP_USERS: usize = 125;
const BATCH_USERS: usize = 500;
const SMALL_BATCHES: usize = 5;
const SMALL_BATCH_USERS: usize = 100;

fn long_pw(tag: &str) -> String {
    // 300+ bytes each: the store outgrows the 1 MiB default map while the
    // writers race, so map growth happens under contention too.
    format!("{}-{tag}", "x".repeat(300))
}

fn parallel_single_calls_and_batches_lose_nothing() {
    require_tools();
    let s = Scratch::new();
    let db = s.db();
    let mut expected: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();

    // Shell loops of single calls: password "xxx...-loop-W-I".
    let loop_script = r#"
        bin=$0 db=$1 w=$2 n=$3 pw=$(printf 'x%.0s' $(seq 1 300))
        for i in $(seq 1 "$n"); do
            printf '%s' "$pw-loop-$w-$i" | "$bin" -p -c -f "$db" -u conc.example "loop$w-$i" \
                || { echo "loop writer $w failed at user $i" >&2; exit 1; }
        done"#;
    for w in 0..WRITERS {
        for i in 1..=LOOP_USERS {
            expected.push((
                key(&format!("loop{w}-{i}"), "conc.example", "userPassword"),
                long_pw(&format!("loop-{w}-{i}")).into_bytes(),
            ));
        }
    }
    // Batch workers: one 500-line batch, then 5 more batches of 100 in a loop.
    let batch_script = r#"
        bin=$0 db=$1 dir=$2 w=$3 n=$4
        "$bin" --batch "$dir/b$w-main.txt" -f "$db" >/dev/null \
            || { echo "batch worker $w failed (main)" >&2; exit 1; }
        for j in $(seq 1 "$n"); do
            "$bin" --batch "$dir/b$w-$j.txt" -f "$db" >/dev/null \
                || { echo "batch worker $w failed (batch $j)" >&2; exit 1; }
        done"#;
    let dir = s.path("batches");
    std::fs::create_dir(&dir).unwrap();
    for w in 0..WRITERS {
        let mut files: Vec<(String, usize, &str)> = vec![("main".into(), BATCH_USERS, "m")];
        for j in 1..=SMALL_BATCHES {
            files.push((j.to_string(), SMALL_BATCH_USERS, "s"));
        }
        for (name, n, kind) in files {
            let mut text = String::new();
            for i in 0..n {
                let user = format!("batch{w}-{kind}{name}-{i}");
                let pw = long_pw(&format!("{w}-{name}-{i}"));
                text.push_str(&format!("{user}@conc.example:{pw}\n"));
                expected.push((key(&user, "conc.example", "userPassword"), pw.into_bytes()));
            }
            std::fs::write(dir.join(format!("b{w}-{name}.txt")), text).unwrap();
        }
    }
    expected.sort();
    let total = WRITERS * (LOOP_USERS + BATCH_USERS + SMALL_BATCHES * SMALL_BATCH_USERS);
    assert_eq!(expected.len(), total);

    let start = Instant::now();
    let mut children: Vec<(String, Child)> = Vec::new();
    for w in 0..WRITERS {
        let child = s
            .cmd("bash")
            .arg("-c")
            .arg(loop_script)
            .arg(SASLPASSWD)
            .arg(&db)
            .arg(w.to_string())
            .arg(LOOP_USERS.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        children.push((format!("loop writer {w}"), child));
        let child = s
            .cmd("bash")
            .arg("-c")
            .arg(batch_script)
            .arg(SASLPASSWD)
            .arg(&db)
            .arg(&dir)
            .arg(w.to_string())
            .arg(SMALL_BATCHES.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        children.push((format!("batch worker {w}"), child));
    }

    // List concurrently: every listing succeeds and never shrinks.
    let mut listings = 0;
    let mut last = 0;
    let limit = Duration::from_secs(90);
    while children
        .iter_mut()
        .any(|(_, c)| c.try_wait().unwrap().is_none())
    {
        assert!(
            start.elapsed() < limit,
            "writers did not finish within {limit:?}"
        );
        if !db.exists() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let o = s.run(LISTUSERS, &["-f", db.to_str().unwrap()], None);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.is_empty(), "listing during writes: {err}");
        let n = o.stdout.iter().filter(|&&b| b == b'\n').count();
        assert!(n >= last, "listing went from {last} to {n} users");
        last = n;
        listings += 1;
    }
    let elapsed = start.elapsed();
    for (name, mut c) in children {
        let st = c.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(st.success(), "{name}: {st}: {err}");
        assert!(err.is_empty(), "{name}: {err}");
    }
    eprintln!(
        "{total} users by {} processes in {elapsed:?}, {listings} listings meanwhile",
        2 * WRITERS
    );
    assert!(listings > 0, "no listing overlapped the writers");

    // Nothing lost, nothing extra, every password exact.
    assert_eq!(dump_hex(&db), expected);
    let st = mdb_stat(&db);
    assert_eq!(stat_field(&st, "Entries"), total as u64);
    assert!(stat_field(&st, "Map size") > 1_048_576, "{st:?}");
    let o = s.run(LISTUSERS, &["-f", db.to_str().unwrap()], None);
    let listed: BTreeSet<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(listed.len(), total);
    for w in 0..WRITERS {
        assert!(listed.contains(&format!("loop{w}-{LOOP_USERS}@conc.example: userPassword")));
        assert!(listed.contains(&format!(
            "batch{w}-s{SMALL_BATCHES}-{}@conc.example: userPassword",
            SMALL_BATCH_USERS - 1
        )));
    }
    // Python reads the same.
    let out = python(
        "import sys, lmdb\n\
         e = lmdb.open(sys.argv[1], subdir=False, readonly=True)\n\
         print(e.stat()['entries'])\n",
        &[db.to_str().unwrap()],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        total.to_string()
    );
    // Racing creators made one store: no stray files.
    assert_eq!(
        dir_listing(s.dir.path()),
        ["batches", "conf", "sasldb2", "sasldb2-lock"]
    );
}

crate::tests!(parallel_single_calls_and_batches_lose_nothing,);
