//! The Debian package under test: `cargo deb` from the debug binaries the
//! test build made, once per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::need;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Build the package once per test binary.
pub fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    need("cargo-deb", "cargo-deb (cargo install cargo-deb --locked)");
    need("dpkg-deb", "dpkg");
    DEB.get_or_init(|| {
        // The binaries cargo test has just built (debug): the package's
        // layout is under test here, not the release build, which would
        // add minutes of LTO to every run (`cargo deb` alone builds that).
        let out = Command::new("cargo")
            .args(["deb", "--locked", "--profile", "dev", "--no-build", "-o"])
            .arg(std::env::temp_dir().join(format!("sasldb-deb-{}", std::process::id())))
            .current_dir(root())
            .output()
            .expect("cargo deb (cargo install cargo-deb --locked)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo deb failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = stdout
            .lines()
            .rev()
            .find(|l| l.ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb named in cargo deb's output: {stdout}"));
        PathBuf::from(path.trim())
    })
}

pub fn dpkg_deb(args: &[&str]) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb())
        .output()
        .expect("dpkg-deb");
    assert!(out.status.success(), "{}", super::stderr(&out));
    super::stdout(&out)
}

/// The package's files (not directories), as absolute paths.
pub fn files() -> Vec<String> {
    dpkg_deb(&["-c"])
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}
