//! The runner of the integration test binaries (`harness = false`, libtest-mimic): the
//! same command line and output as cargo's default harness, plus a test that finds a
//! system tool missing at run time (see [`need`]) is counted as ignored, with the tool, its
//! Debian package and how to get it as the reason. Under CI (`CI=true`) a missing tool is a
//! failure instead: CI installs everything (`bash .ci/run`), so a skip there would hide a
//! broken install.
//!
//! Test binaries without this runner (the default harness) can call [`need`] too: there a
//! missing tool fails the test with the same message, as no runtime skip exists.

use std::collections::HashMap;
use std::panic;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use libtest_mimic::{Arguments, Completion, Trial};

/// One test: its name as filters and reports show it, and its body.
pub struct Test {
    pub name: String,
    pub run: fn(),
}

/// The tests of a file (module), named like the default harness names them: the module
/// path below the crate root, then the function.
#[macro_export]
macro_rules! tests {
    ($($f:ident),+ $(,)?) => {
        pub fn tests() -> Vec<$crate::common::harness::Test> {
            let module = module_path!().split_once("::").map_or("", |(_, m)| m);
            vec![$($crate::common::harness::Test {
                name: if module.is_empty() {
                    stringify!($f).to_string()
                } else {
                    format!("{module}::{}", stringify!($f))
                },
                run: $f,
            }),+]
        }
    };
}

/// Set by [`run`]: a missing tool skips rather than fails.
static SKIPS: AtomicBool = AtomicBool::new(false);

/// The panic payload of a skipped test.
struct Skip(String);

/// Whether this is a CI run, where a missing tool must fail.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Run `tests` as cargo's harness would (same arguments, same report) and exit.
pub fn run(tests: Vec<Test>) -> ! {
    SKIPS.store(!ci(), Ordering::SeqCst);
    // Every smtpd-auth a test starts without -c reads no configuration
    // file, whatever the machine has in /etc/smtpd-auth (a test that wants
    // one sets the variable for its own command).
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("SMTPD_AUTH_CONFIG", "") };
    // A skip is an expected unwind, not a crash: no "panicked at" noise for it.
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Skip>().is_none() {
            report(info);
        }
    }));
    let trials = tests
        .into_iter()
        .map(|t| {
            Trial::ignorable_test(t.name, move || match panic::catch_unwind(t.run) {
                Ok(()) => Ok(Completion::Completed),
                Err(p) => match p.downcast::<Skip>() {
                    Ok(skip) => Ok(Completion::ignored_with(skip.0)),
                    // The runner reports the panic's message as the failure.
                    Err(p) => panic::resume_unwind(p),
                },
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}

/// Stop the current test because `what` is missing: skipped under [`run`] outside CI,
/// failed otherwise.
pub fn missing(what: &str) -> ! {
    let how = "run `bash .ci/run` as root to install every tool the tests use";
    if SKIPS.load(Ordering::SeqCst) {
        panic::panic_any(Skip(format!("needs {what}; {how}")));
    }
    if ci() {
        panic!("needs {what}, missing under CI (CI=true), where nothing may be skipped; {how}");
    }
    panic!("needs {what}; {how}");
}

/// Found-or-not of every program looked up so far (tests share a binary's process).
fn cache() -> &'static Mutex<HashMap<String, bool>> {
    static C: std::sync::OnceLock<Mutex<HashMap<String, bool>>> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `program` (a path, or a name looked up on PATH) can be run.
pub fn have(program: &str) -> bool {
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    *cache.entry(program.to_string()).or_insert_with(|| {
        if program.contains('/') {
            return executable(Path::new(program));
        }
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| executable(&dir.join(program)))
        })
    })
}

/// The test drives `program`, which Debian's package `package` installs.
pub fn need(program: &str, package: &str) {
    if !have(program) {
        missing(&format!(
            "`{program}` (Debian package {package}: apt-get install {package})"
        ));
    }
}

/// The test reads `path`, which Debian's package `package` installs.
pub fn need_file(path: &str, package: &str) {
    if !Path::new(path).exists() {
        missing(&format!(
            "{path} (Debian package {package}: apt-get install {package})"
        ));
    }
}

/// The test drives Debian's `/usr/bin/python3` with its `lmdb` module (python3-lmdb), an
/// LMDB implementation independent of ours.
pub fn need_python_lmdb() {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *OK.get_or_init(|| {
        Command::new("/usr/bin/python3")
            .args(["-c", "import lmdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        missing(
            "/usr/bin/python3 with its lmdb module (Debian package python3-lmdb: \
             apt-get install python3-lmdb)",
        );
    }
}

/// The test changes file ownership or runs as other users, which only root may.
pub fn need_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing("root (it changes file ownership or runs as another user)");
    }
}
