//! Runs every fuzz target in `fuzz/` briefly (cargo-fuzz on stable with
//! `--sanitizer none`), so a decoder that panics on some input fails the
//! suite. Longer campaigns: `cd fuzz && cargo fuzz run --sanitizer none TARGET`.
mod common;
use std::path::Path;
use std::process::Command;

const SECONDS_PER_TARGET: u32 = 4;

fn every_fuzz_target_survives_a_short_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !common::harness::have("cargo-fuzz") {
        common::harness::missing(
            "`cargo-fuzz` (cargo install cargo-fuzz --locked --version 0.13.2)",
        );
    }
    let list = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(root)
        .output()
        .expect("cargo");
    assert!(
        list.status.success(),
        "cargo-fuzz is missing (cargo install cargo-fuzz --locked; .ci/run does): {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let targets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for t in [
        "key_decode",
        "batch_parse",
        "saslconf_parse",
        "scram_verifier",
        "mech_exchange",
        "data_receiver",
        "smtp_command",
        "dovecot_feed",
        "saslauthd_parse",
        "maincf_parse",
        "bdb_read",
        "gdbm_read",
    ] {
        assert!(
            targets.iter().any(|x| x == t),
            "fuzz target {t} missing: {targets:?}"
        );
    }
    let build = Command::new("cargo")
        .args(["fuzz", "build", "--sanitizer", "none"])
        .current_dir(root)
        .status()
        .expect("cargo fuzz build");
    assert!(build.success(), "cargo fuzz build failed");
    for t in &targets {
        let out = Command::new("cargo")
            .args(["fuzz", "run", "--sanitizer", "none", t, "--"])
            .arg(format!("-max_total_time={SECONDS_PER_TARGET}"))
            .arg("-rss_limit_mb=2048")
            .current_dir(root)
            .output()
            .expect("cargo fuzz run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "fuzz target {t} failed:\n{}",
            err.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(err.contains("Done "), "fuzz target {t} did not run: {err}");
    }
}

crate::tests!(every_fuzz_target_survives_a_short_run,);

fn main() {
    common::harness::run(tests())
}
