//! Batch progress: shown on a terminal once work takes over a second, never
//! in a pipe.
use crate::common::*;
use std::process::Command;

fn slow_batch(s: &Scratch) -> std::path::PathBuf {
    // SCRAM derivation at 60k iterations makes each line cost milliseconds.
    s.conf(
        "saslpasswd",
        "scram_secret_generate: yes\nscram_iteration_counter: 60000\n",
    );
    let text: String = (0..400).map(|i| format!("user{i}:pw{i}\n")).collect();
    let f = s.path("users.txt");
    std::fs::write(&f, text).unwrap();
    f
}

fn progress_on_a_terminal_only() {
    let s = Scratch::new();
    let f = slow_batch(&s);
    let db = s.db();
    let cmd = format!(
        "{SASLPASSWD} --batch {} -u ex.org -f {}",
        f.display(),
        db.display()
    );
    // script(1) gives the tool a real pty on stdout and stderr.
    need("script", "util-linux");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("SASL_CONF_PATH", s.conf_dir())
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\rsaslpasswd: preparing "),
        "no progress line on a terminal: {text:?}"
    );
    assert!(text.contains("/400 ("), "{text:?}");
    assert!(
        text.contains("batch: 400 operations: 400 created"),
        "{text:?}"
    );

    // Same work into a pipe: no progress, only the summary.
    let s2 = Scratch::new();
    let f2 = slow_batch(&s2);
    let db2 = s2.db();
    let o = s2.run(
        SASLPASSWD,
        &[
            "--batch",
            f2.to_str().unwrap(),
            "-u",
            "ex.org",
            "-f",
            db2.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    assert_eq!(
        stdout(&o),
        "saslpasswd: batch: 400 operations: 400 created, 0 updated, 0 unchanged, 0 deleted, 0 absent\n"
    );
    assert_eq!(mdb_dump(&db2).len(), 800); // userPassword + authPassword each
}

crate::tests!(progress_on_a_terminal_only,);
