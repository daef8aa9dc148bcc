//! The interactive password prompt, driven through a real pty (tmux), as in
//! transcript B of `spec/cyrus-compat-transcripts.txt`: prompts on stdout,
//! echo off while typing (the typed newline still echoed), a newline printed
//! after Ctrl-D, mismatch and empty-password errors, `-p` on a terminal, and
//! the terminal settings restored afterwards, also after Ctrl-C.
//!
//! Each test runs its own tmux server on a socket inside its scratch
//! directory, so tests run in parallel without meeting; the server is killed
//! when the test ends, pass or fail. Every wait is a poll with a deadline.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
const REALM: &str = "example.org";

/// Quote for /bin/sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Poll `f` until it returns `Some`, or panic with `what` and `context()`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// One tool run in a tmux pane. The pane runs a small sh script: record
/// `stty -a`, run the tool, record its exit code and `stty -a` again, then
/// idle so the screen stays for capture.
struct Pane {
    scratch: Scratch,
    socket: PathBuf,
}

impl Pane {
    /// Start `saslpasswd ARGS [REDIRECTIONS]` in a fresh 200x50 pane.
    fn start(scratch: Scratch, args: &[&str], redirections: &str) -> Pane {
        let dir = scratch.dir.path().to_path_buf();
        let q = |p: &Path| sh_quote(p.to_str().expect("utf-8 temp path"));
        let mut tool = format!(
            "SASL_CONF_PATH={} {}",
            q(&scratch.conf_dir()),
            sh_quote(SASLPASSWD)
        );
        for a in args {
            tool.push(' ');
            tool.push_str(&sh_quote(a));
        }
        tool.push_str(redirections);
        // `trap : INT` keeps the script alive after a Ctrl-C (a trapped
        // signal is reset to the default in the tool, unlike an ignored one).
        let script = format!(
            "trap : INT\n\
             stty -a > {before}\n\
             {tool}\n\
             rc=$?\n\
             stty -a > {after}\n\
             echo \"rc=$rc\" > {rc}.tmp && mv {rc}.tmp {rc}\n\
             exec sleep 600\n",
            before = q(&dir.join("stty.before")),
            after = q(&dir.join("stty.after")),
            rc = q(&dir.join("rc")),
        );
        let script_path = dir.join("pane.sh");
        std::fs::write(&script_path, script).expect("write pane script");
        let pane = Pane {
            socket: dir.join("tmux.sock"),
            scratch,
        };
        pane.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            &format!("exec sh {}", q(&script_path)),
        ]);
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        need("tmux", "tmux");
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux ({e}); install the Debian package tmux"));
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen, trailing spaces kept, trailing empty lines dropped.
    fn screen(&self) -> Vec<String> {
        let text = self.tmux(&["capture-pane", "-p", "-N", "-t", "t"]);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines
    }

    fn screen_text(&self) -> String {
        self.screen().join("\n")
    }

    fn context(&self) -> String {
        format!("screen:\n{}", self.screen_text())
    }

    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) {
        wait_for(
            what,
            || pred(&self.screen_text()).then_some(()),
            || self.context(),
        );
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "t", key]);
    }

    fn tty(&self) -> String {
        self.tmux(&["display-message", "-p", "-t", "t", "#{pane_tty}"])
            .trim()
            .to_string()
    }

    /// The local modes (`c_lflag`) of the pane's terminal, read from outside.
    fn lflag(&self) -> libc::tcflag_t {
        let path = CString::new(self.tty()).expect("tty path");
        // SAFETY: plain open/tcgetattr/close on a path we own a copy of.
        unsafe {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            );
            assert!(
                fd >= 0,
                "open {path:?}: {}",
                std::io::Error::last_os_error()
            );
            let mut t: libc::termios = std::mem::zeroed();
            let r = libc::tcgetattr(fd, &mut t);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(r, 0, "tcgetattr {path:?}: {err}");
            t.c_lflag
        }
    }

    /// Wait until the terminal is in the tool's no-echo mode (as Cyrus sets
    /// it: every ECHO* flag cleared, ECHONL and ICANON set). Keys must not be
    /// sent before this, or the terminal would echo them.
    fn wait_echo_off(&self) {
        let off = libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHOCTL | libc::ECHOKE;
        wait_for(
            "echo off on the pane's terminal",
            || {
                let l = self.lflag();
                (l & off == 0 && l & libc::ECHONL != 0 && l & libc::ICANON != 0).then_some(())
            },
            || format!("c_lflag={:#o}\n{}", self.lflag(), self.context()),
        );
    }

    /// The pid of the tool: the child of the pane's shell.
    fn tool_pid(&self) -> i32 {
        let shell: i32 = self
            .tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid");
        wait_for(
            "the tool process",
            || {
                std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                    let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                    let after = &stat[stat.rfind(')')? + 2..];
                    let ppid: i32 = after.split(' ').nth(1)?.parse().ok()?;
                    (ppid == shell && stat.contains("(saslpasswd)")).then_some(pid)
                })
            },
            || self.context(),
        )
    }

    /// Wait until the tool is blocked in `read(0, ...)`.
    fn wait_reading_stdin(&self) {
        let pid = self.tool_pid();
        let path = format!("/proc/{pid}/syscall");
        wait_for(
            "the tool to block in read(0, ...)",
            || {
                let s = std::fs::read_to_string(&path).ok()?;
                let mut f = s.split_whitespace();
                let nr: i64 = f.next()?.parse().ok()?;
                (nr == libc::SYS_read && f.next()? == "0x0").then_some(())
            },
            || {
                format!(
                    "{path}: {:?}\n{}",
                    std::fs::read_to_string(&path),
                    self.context()
                )
            },
        );
    }

    /// Wait for the tool to end; its exit code as the shell saw it.
    fn exit_code(&self) -> i32 {
        let rc = self.scratch.path("rc");
        let text = wait_for(
            "the tool to exit",
            || std::fs::read_to_string(&rc).ok(),
            || self.context(),
        );
        text.trim()
            .strip_prefix("rc=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad rc file {text:?}"))
    }

    /// `stty -a` before and after the tool ran (call after `exit_code`).
    fn stty(&self) -> (String, String) {
        let read = |n: &str| std::fs::read_to_string(self.scratch.path(n)).expect(n);
        (read("stty.before"), read("stty.after"))
    }

    fn assert_terminal_restored(&self) {
        let (before, after) = self.stty();
        assert!(
            stty_has(&after, "echo"),
            "echo not restored after the tool:\n{after}"
        );
        assert_eq!(before, after, "terminal settings differ after the tool");
    }

    fn db(&self) -> PathBuf {
        self.scratch.db()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
    }
}

/// Whether `stty -a` output lists `flag` as set (`echo`, not `-echo`).
fn stty_has(stty: &str, flag: &str) -> bool {
    stty.split(|c: char| c.is_whitespace() || c == ';')
        .any(|w| w == flag)
}

/// Nothing was stored: no file was created, or it holds no key.
fn assert_nothing_stored(db: &Path) {
    if db.exists() {
        assert_eq!(mdb_dump(db), vec![], "the store is not empty");
    }
}

fn start(args: &[&str]) -> Pane {
    let s = Scratch::new();
    let db = s.db().to_str().unwrap().to_string();
    let mut all: Vec<&str> = vec!["-f", &db, "-u", REALM];
    all.extend_from_slice(args);
    Pane::start(s, &all, "")
}

/// Type one line at a prompt once the terminal no longer echoes.
fn answer(p: &Pane, prompt: &str, text: &str) {
    p.wait_screen(&format!("the prompt {prompt:?}"), |s| {
        s.lines().last().is_some_and(|l| l == prompt)
    });
    p.wait_echo_off();
    p.type_text(text);
    p.key("Enter");
}

fn matching_passwords_are_stored_with_echo_off() {
    let p = start(&["-c", "ia"]);
    answer(&p, "Password: ", "Zq7-first-secret");
    answer(&p, "Again (for verification): ", "Zq7-first-secret");
    assert_eq!(p.exit_code(), 0, "{}", p.context());
    // Transcript B: b'Password: \r\nAgain (for verification): \r\n'.
    assert_eq!(p.screen(), ["Password: ", "Again (for verification): "]);
    assert!(!p.screen_text().contains("Zq7"), "password echoed");
    assert_eq!(
        mdb_dump(&p.db()),
        vec![(
            key("ia", REALM, "userPassword"),
            b"Zq7-first-secret".to_vec()
        )]
    );
    p.assert_terminal_restored();
}

fn passwords_that_differ_abort_with_exit_7() {
    let p = start(&["-c", "ib"]);
    answer(&p, "Password: ", "Zq7-one");
    answer(&p, "Again (for verification): ", "Zq7-other");
    assert_eq!(p.exit_code(), 7, "{}", p.context());
    assert_eq!(
        p.screen(),
        [
            "Password: ",
            "Again (for verification): ",
            "saslpasswd: passwords don't match; aborting",
        ]
    );
    assert!(!p.screen_text().contains("Zq7"), "password echoed");
    assert_nothing_stored(&p.db());
    p.assert_terminal_restored();
}

fn empty_password_is_refused_with_exit_7() {
    let p = start(&["-c", "ic"]);
    answer(&p, "Password: ", "");
    answer(&p, "Again (for verification): ", "");
    assert_eq!(p.exit_code(), 7, "{}", p.context());
    assert_eq!(
        p.screen(),
        [
            "Password: ",
            "Again (for verification): ",
            "saslpasswd: invalid parameter supplied",
        ]
    );
    assert_nothing_stored(&p.db());
    p.assert_terminal_restored();
}

fn pipe_flag_on_a_terminal_reads_once_without_prompt_and_with_echo() {
    let p = start(&["-c", "-p", "id"]);
    p.wait_reading_stdin();
    let l = p.lflag();
    assert!(
        l & libc::ECHO != 0,
        "-p must leave echo on (c_lflag={l:#o})"
    );
    assert_eq!(p.screen(), Vec::<String>::new(), "-p printed something");
    p.type_text("pipepw");
    p.key("Enter");
    // One read: the tool ends after one line, no second prompt or read.
    assert_eq!(p.exit_code(), 0, "{}", p.context());
    // Transcript B: b'pipepw\r\n' (the terminal's own echo).
    assert_eq!(p.screen(), ["pipepw"]);
    assert_eq!(
        mdb_dump(&p.db()),
        vec![(key("id", REALM, "userPassword"), b"pipepw".to_vec())]
    );
    p.assert_terminal_restored();
}

fn ctrl_d_ends_a_line_and_the_tool_prints_the_newline() {
    let p = start(&["-c", "ie"]);
    for prompt in ["Password: ", "Again (for verification): "] {
        p.wait_screen(&format!("the prompt {prompt:?}"), |s| {
            s.lines().last().is_some_and(|l| l == prompt)
        });
        p.wait_echo_off();
        p.type_text("abc");
        p.key("C-d");
    }
    assert_eq!(p.exit_code(), 0, "{}", p.context());
    // The newline after each prompt comes from the tool, not the terminal.
    assert_eq!(p.screen(), ["Password: ", "Again (for verification): "]);
    assert_eq!(
        mdb_dump(&p.db()),
        vec![(key("ie", REALM, "userPassword"), b"abc".to_vec())]
    );
    p.assert_terminal_restored();
}

fn ctrl_c_at_the_prompt_restores_the_terminal() {
    let p = start(&["-c", "if"]);
    p.wait_screen("the first prompt", |s| s.ends_with("Password: "));
    p.wait_echo_off();
    p.type_text("Zq7-half");
    p.key("C-c");
    // Killed by SIGINT after putting the terminal back: the shell sees 130.
    assert_eq!(p.exit_code(), 128 + libc::SIGINT, "{}", p.context());
    assert!(!p.screen_text().contains("Zq7"), "password echoed");
    assert!(!p.screen_text().contains("Again"), "{}", p.context());
    p.assert_terminal_restored();
    assert_nothing_stored(&p.db());
}

fn prompts_go_to_stdout() {
    let s = Scratch::new();
    let out = s.path("stdout");
    let err = s.path("stderr");
    let db = s.db().to_str().unwrap().to_string();
    let redirect = format!(
        " > {} 2> {}",
        sh_quote(out.to_str().unwrap()),
        sh_quote(err.to_str().unwrap())
    );
    let p = Pane::start(s, &["-c", "-f", &db, "-u", REALM, "ig"], &redirect);
    let read = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
    for prompt in ["Password: ", "Again (for verification): "] {
        wait_for(
            &format!("{prompt:?} on stdout"),
            || read(&out).ends_with(prompt).then_some(()),
            || format!("stdout: {:?}\n{}", read(&out), p.context()),
        );
        p.wait_echo_off();
        p.type_text("Zq7-out");
        p.key("Enter");
    }
    assert_eq!(p.exit_code(), 0, "{}", p.context());
    assert_eq!(read(&out), "Password: Again (for verification): ");
    assert_eq!(read(&err), "");
    // On the terminal: only the two newlines the terminal echoes (ECHONL).
    assert_eq!(p.screen(), Vec::<String>::new());
    assert_eq!(
        mdb_dump(&p.db()),
        vec![(key("ig", REALM, "userPassword"), b"Zq7-out".to_vec())]
    );
    p.assert_terminal_restored();
}

fn check_prompts_once() {
    for (typed, rc, last) in [
        (
            "Zq7-right",
            0,
            "saslpasswd: ih@example.org: password matches",
        ),
        ("Zq7-wrong", 1, "saslpasswd: ih@example.org: wrong password"),
    ] {
        let s = Scratch::new();
        let db = s.db().to_str().unwrap().to_string();
        let o = s.run(
            SASLPASSWD,
            &["-p", "-c", "-u", REALM, "-f", &db, "ih"],
            Some(b"Zq7-right"),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let p = Pane::start(s, &["--check", "-f", &db, "ih@example.org"], "");
        answer(&p, "Password: ", typed);
        assert_eq!(p.exit_code(), rc, "{}", p.context());
        assert_eq!(p.screen(), ["Password: ", last]);
        assert!(!p.screen_text().contains("Zq7"), "password echoed");
        p.assert_terminal_restored();
    }
}

crate::tests!(
    matching_passwords_are_stored_with_echo_off,
    passwords_that_differ_abort_with_exit_7,
    empty_password_is_refused_with_exit_7,
    pipe_flag_on_a_terminal_reads_once_without_prompt_and_with_echo,
    ctrl_d_ends_a_line_and_the_tool_prints_the_newline,
    ctrl_c_at_the_prompt_restores_the_terminal,
    prompts_go_to_stdout,
    check_prompts_once,
);
