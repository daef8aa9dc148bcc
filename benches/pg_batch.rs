//! `saslpasswd --batch` into a PostgreSQL store (the target: 10 000 lines in under
//! 3 s; 100 000 reported too), against a throwaway cluster of Debian's `postgresql` package
//! started as in the tests (tests/common/pg.rs; needs root). Each size runs into an empty
//! table, then again (every line unchanged: the read side alone), then with every password
//! changed. Wall time of the whole command: connect, read, COPY, MERGE, commit. The
//! cluster runs with fsync=off (as in the tests), so commits cost no disk flush.
//!
//! `cargo bench --bench pg_batch`; `cargo bench --profile dev --bench pg_batch` reuses the
//! test build (the figures are then the dev profile's).

use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::pg::Postgres;

/// Run one batch; its wall time, after checking its summary says `expect`.
fn batch(pg: &Postgres, lines: &[u8], expect: &str) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(common::SASLPASSWD)
        .args(["--batch", "-", "-u", "bench.example", "-f", &pg.url()])
        .env("SASL_CONF_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn saslpasswd");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(lines).expect("write batch");
    }
    let out = child.wait_with_output().expect("wait");
    let secs = start.elapsed().as_secs_f64();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(expect),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn lines(n: usize, tag: &str) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("user{i}:{tag}-password-{i}\n").into_bytes())
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo's bench discovery
    }
    for n in [10_000, 100_000] {
        let pg = Postgres::start();
        let init = Command::new(common::SASLPASSWD)
            .args(["--init-schema", "-f", &pg.url()])
            .output()
            .expect("init-schema");
        assert!(init.status.success());
        let first = batch(&pg, &lines(n, "a"), &format!("{n} created"));
        let same = batch(&pg, &lines(n, "a"), &format!("{n} unchanged"));
        let changed = batch(&pg, &lines(n, "b"), &format!("{n} updated"));
        let rows = pg.query("SELECT count(*) FROM sasldb WHERE value LIKE 'b-password-%'");
        assert_eq!(rows.trim(), n.to_string());
        println!(
            "pg_batch {n:>6} lines: create {first:.2} s, unchanged {same:.2} s, change {changed:.2} s"
        );
    }
}
