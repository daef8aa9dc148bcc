//! Compatibility suite against Cyrus SASL 2.1.28.
//!
//! Three sources of truth, all used side by side:
//!
//! * the recorded transcripts (`tests/data/cyrus-compat-transcripts.txt`, sections A, C,
//!   D, E and F): every scenario of those sections is replayed against our binaries, in file
//!   order, through the same shell command line, and its stdout, stderr, exit code and stored
//!   records are compared (section B, the terminal prompts, is covered by the prompt tests;
//!   section G, saslauthd, is out of scope);
//! * Debian's real `saslpasswd2` / `sasldblistusers2` (package sasl2-bin, Berkeley DB backend),
//!   run on the same scenarios in a sibling scratch directory: same exit code, stdout and
//!   stderr (program name substituted, Berkeley DB's own lines dropped), same stored keys and
//!   values (theirs read with `db5.3_dump -p`, ours with `mdb_dump`);
//! * `tests/data/probe-cli.sh`, run for both tool sets and diffed.
//!
//! Every place where we differ from Cyrus on purpose says so in a comment starting with
//! "DELIBERATE" and asserts our behaviour. Nothing here touches /etc/sasldb2, /etc/sasl2 or
//! /etc/postfix: every run gets SASL_CONF_PATH pointing into a scratch directory and `-f` (or a
//! positional path) inside it, except runs that stop before opening a store (usage, `-v`, bad
//! `-a`), which `Side::sh` checks by title.
//!
//! This file is the machinery (the transcripts' parser, the two tool sets side by side, the
//! comparisons); the tests are in one file per section: `transcripts` (A, C, D/E, F),
//! `saslpasswd` (spec §3), `listusers` (spec §4), `extensions` (ours only), `probe` and
//! `realm` (spec §3.2).

use crate::common::*;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const CY_PW: &str = "/usr/sbin/saslpasswd2";
const CY_LU: &str = "/usr/sbin/sasldblistusers2";
/// Debian's Python (the `python3` on PATH may be another one, e.g. pyenv's).
const PY: &str = "/usr/bin/python3";
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CYRUS_VERSION_LINE: &str = "LibSasl version 2.1.28 by \"Cyrus SASL\"";

// ------------------------------------------------------------------------------------------
// Test data
// ------------------------------------------------------------------------------------------

/// A file of `tests/data/` (the recorded Cyrus transcripts, the CLI probe).
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn realm() -> &'static str {
    static R: OnceLock<String> = OnceLock::new();
    R.get_or_init(default_realm)
}

fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Umask:"))
        .expect("Umask line");
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).expect("umask")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).expect("chmod");
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

// ------------------------------------------------------------------------------------------
// Transcripts
// ------------------------------------------------------------------------------------------

/// One recorded run: `### title`, `$ command`, stdout, stderr, exit status, and whatever the
/// transcript shows after it (dumps, `ls`, `mdb_stat`) up to the next scenario.
#[derive(Debug, Clone)]
struct Scenario {
    section: char,
    title: String,
    cmd: String,
    out: String,
    err: String,
    rc: i32,
    after: Vec<String>,
}

/// Undo `cat -A` for the only escapes the transcripts use: `$` = end of line, `^I` = TAB.
fn uncat(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        match l.strip_suffix('$') {
            Some(body) => {
                s.push_str(&body.replace("^I", "\t"));
                s.push('\n');
            }
            None => s.push_str(&l.replace("^I", "\t")),
        }
    }
    s
}

fn parse_transcripts(text: &str) -> Vec<Scenario> {
    let lines: Vec<&str> = text.lines().collect();
    let mut section = ' ';
    let mut out: Vec<Scenario> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(rest) = l.strip_prefix("################ ") {
            section = rest.chars().next().expect("section letter");
            i += 1;
            continue;
        }
        if !matches!(section, 'A' | 'C' | 'D' | 'E' | 'F') {
            i += 1;
            continue;
        }
        if let Some(title) = l.strip_prefix("### ") {
            let cmd = lines[i + 1]
                .strip_prefix("$ ")
                .unwrap_or_else(|| panic!("transcript: no command after ### {title}"));
            assert_eq!(lines[i + 2], "--- stdout:", "transcript: {title}");
            let mut j = i + 3;
            let start = j;
            while lines[j] != "--- stderr:" {
                j += 1;
            }
            let so = uncat(&lines[start..j]);
            j += 1;
            let start = j;
            while !lines[j].starts_with("--- rc=") {
                j += 1;
            }
            let se = uncat(&lines[start..j]);
            let rc = lines[j]["--- rc=".len()..].trim().parse().expect("rc");
            out.push(Scenario {
                section,
                title: title.to_string(),
                cmd: cmd.to_string(),
                out: so,
                err: se,
                rc,
                after: Vec::new(),
            });
            i = j + 1;
            continue;
        }
        if let Some(last) = out.last_mut().filter(|s| s.section == section) {
            last.after.push(l.to_string());
        }
        i += 1;
    }
    out
}

fn transcripts() -> &'static [Scenario] {
    static T: OnceLock<Vec<Scenario>> = OnceLock::new();
    T.get_or_init(|| {
        let path = data("cyrus-compat-transcripts.txt");
        let text = fs::read_to_string(&path).expect("transcripts");
        parse_transcripts(&text)
    })
}

/// Walks one section's scenarios in file order; `finish` proves every one was replayed.
struct Section {
    letter: char,
    list: Vec<Scenario>,
    pos: usize,
}

impl Section {
    fn new(letter: char) -> Section {
        let list: Vec<Scenario> = transcripts()
            .iter()
            .filter(|s| s.section == letter)
            .cloned()
            .collect();
        assert!(!list.is_empty(), "transcript section {letter} not found");
        Section {
            letter,
            list,
            pos: 0,
        }
    }

    fn next(&mut self) -> Scenario {
        let s = self.list.get(self.pos).cloned().unwrap_or_else(|| {
            panic!("section {}: no scenario left", self.letter);
        });
        self.pos += 1;
        s
    }

    fn finish(self) {
        assert_eq!(
            self.pos,
            self.list.len(),
            "section {}: scenarios not replayed: {:?}",
            self.letter,
            self.list[self.pos..]
                .iter()
                .map(|s| &s.title)
                .collect::<Vec<_>>()
        );
    }
}

/// A transcript's result in our naming and for this host's default realm.
fn expected(sc: &Scenario) -> Run {
    Run {
        rc: sc.rc,
        out: cyrus_names(&sc.out).replace("@vm: ", &format!("@{}: ", realm())),
        err: cyrus_names(&sc.err),
    }
}

/// The records of a `HEADER=END … DATA=END` dump in a transcript's trailing text, with the
/// transcript host's realm `vm` replaced by ours.
fn transcript_dump(after: &[String], nth: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<Vec<u8>>> = None;
    for l in after {
        let l = l.strip_suffix('$').unwrap_or(l);
        match (l, cur.as_mut()) {
            ("HEADER=END", _) => cur = Some(Vec::new()),
            ("DATA=END", Some(_)) => blocks.push(cur.take().expect("block")),
            (l, Some(items)) => items.push(unprint(&l.as_bytes()[1..])),
            _ => {}
        }
    }
    let block = blocks
        .get(nth)
        .unwrap_or_else(|| panic!("no dump #{nth} in {after:?}"));
    block
        .chunks(2)
        .map(|kv| (subst_realm(&kv[0]), kv[1].clone()))
        .collect()
}

fn subst_realm(key: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = key.split(|&b| b == 0).collect();
    if parts.len() == 3 && parts[1] == b"vm" {
        let mut k = parts[0].to_vec();
        k.push(0);
        k.extend_from_slice(realm().as_bytes());
        k.push(0);
        k.extend_from_slice(parts[2]);
        k
    } else {
        key.to_vec()
    }
}

// ------------------------------------------------------------------------------------------
// Running the tools
// ------------------------------------------------------------------------------------------

/// Exit code, stdout and stderr of one run, normalised: the scratch root shown as `$T`,
/// Cyrus's program names (`saslpasswd2:`) shown as ours (`saslpasswd:`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    rc: i32,
    out: String,
    err: String,
}

fn cyrus_names(s: &str) -> String {
    s.replace("sasldblistusers2", "sasldblistusers")
        .replace("saslpasswd2", "saslpasswd")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    Cyrus,
}

#[derive(Debug, Clone, Copy)]
enum Prog {
    Passwd,
    List,
}

enum Input<'a> {
    Null,
    Bytes(&'a [u8]),
    /// File descriptor 0 closed (`<&-`).
    Closed,
    /// Standard input opened from this path (`< path`).
    From(&'a Path),
}

/// Runs that never open a store, so they may run without `-f` (Cyrus would otherwise use
/// /etc/sasldb2).
const NO_STORE_TITLES: &[&str] = &[
    "no arguments",
    "bad flag",
    "-h",
    "-c and -d together",
    "-f missing argument",
    "-v",
    "-a containing slash",
    "list -v",
    "list -h",
    "list bad flag",
    "list '-'",
];

/// One tool set working in its own scratch root `$T`.
struct Side {
    tool: Tool,
    t: PathBuf,
}

impl Side {
    fn new(root: &Path, tool: Tool) -> Side {
        match tool {
            Tool::Ours => {
                for prog in ["mdb_dump", "mdb_load", "mdb_stat"] {
                    need(prog, "lmdb-utils");
                }
            }
            Tool::Cyrus => {
                need(CY_PW, "sasl2-bin");
                need(CY_LU, "sasl2-bin");
                need("db5.3_dump", "db5.3-util");
                need("db5.3_load", "db5.3-util");
            }
        }
        let t = root.join(match tool {
            Tool::Ours => "ours",
            Tool::Cyrus => "cyrus",
        });
        mkdir(&t.join("noconf"));
        Side { tool, t }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.t.join(rel)
    }

    fn bin(&self, prog: Prog) -> &'static str {
        match (self.tool, prog) {
            (Tool::Ours, Prog::Passwd) => SASLPASSWD,
            (Tool::Ours, Prog::List) => LISTUSERS,
            (Tool::Cyrus, Prog::Passwd) => CY_PW,
            (Tool::Cyrus, Prog::List) => CY_LU,
        }
    }

    /// The name the program is invoked by (argv[0]): glibc's getopt prefixes its messages
    /// with argv[0] as given, so both sides are invoked by bare name, as in the transcripts.
    fn name(&self, prog: Prog) -> &'static str {
        match (self.tool, prog) {
            (Tool::Ours, Prog::Passwd) => "saslpasswd",
            (Tool::Ours, Prog::List) => "sasldblistusers",
            (Tool::Cyrus, Prog::Passwd) => "saslpasswd2",
            (Tool::Cyrus, Prog::List) => "sasldblistusers2",
        }
    }

    fn env(&self, c: &mut Command) {
        let bin_dir = Path::new(SASLPASSWD).parent().expect("bin dir");
        let path = match self.tool {
            Tool::Ours => format!("{}:{PATH_ENV}", bin_dir.display()),
            Tool::Cyrus => PATH_ENV.to_string(),
        };
        c.env("T", &self.t)
            .env("SASL_CONF_PATH", self.t.join("noconf"))
            .env("LC_ALL", "C")
            .env("PATH", path)
            .env_remove("POSIXLY_CORRECT");
    }

    fn normalise(&self, o: &Output) -> Run {
        let t = self.t.to_str().expect("utf-8 path");
        let fix = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).replace(t, "$T");
            match self.tool {
                Tool::Ours => s,
                Tool::Cyrus => cyrus_names(&s),
            }
        };
        Run {
            rc: o.status.code().unwrap_or(-1),
            out: fix(&o.stdout),
            err: fix(&o.stderr),
        }
    }

    /// A transcript command line, run through bash with this side's tools in place of
    /// `saslpasswd2` / `sasldblistusers2` (bare, `/usr/sbin/…` or the LMDB build's
    /// `$T/inst/sbin/…`).
    fn sh_cmd(&self, title: &str, cmd: &str) -> Run {
        assert!(
            cmd.contains("$T") || NO_STORE_TITLES.contains(&title),
            "{title}: `{cmd}` names no scratch store; refusing to run it"
        );
        let cmd = cmd
            .replace("$T/inst/sbin/saslpasswd2", "@PW@")
            .replace("/usr/sbin/saslpasswd2", "@PW@")
            .replace("saslpasswd2", "@PW@")
            .replace("$T/inst/sbin/sasldblistusers2", "@LU@")
            .replace("/usr/sbin/sasldblistusers2", "@LU@")
            .replace("sasldblistusers2", "@LU@")
            .replace("@PW@", self.name(Prog::Passwd))
            .replace("@LU@", self.name(Prog::List));
        let mut c = Command::new("bash");
        c.arg("-c").arg(&cmd).stdin(Stdio::null());
        self.env(&mut c);
        let o = c.output().expect("bash");
        self.normalise(&o)
    }

    fn sh(&self, sc: &Scenario) -> Run {
        self.sh_cmd(&sc.title, &sc.cmd)
    }

    /// Run a tool directly; `$T` in arguments and in `env` values is this side's root.
    fn run_env(&self, prog: Prog, args: &[&str], input: Input, env: &[(&str, &str)]) -> Run {
        self.exec(prog, self.name(prog), args, input, env)
    }

    fn exec(
        &self,
        prog: Prog,
        argv0: &str,
        args: &[&str],
        input: Input,
        env: &[(&str, &str)],
    ) -> Run {
        let t = self.t.to_str().expect("utf-8 path");
        let mut c = Command::new(self.bin(prog));
        c.arg0(argv0);
        c.args(args.iter().map(|a| a.replace("$T", t)));
        self.env(&mut c);
        for (k, v) in env {
            c.env(k, v.replace("$T", t));
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        match input {
            Input::Null => {
                c.stdin(Stdio::null());
            }
            Input::Bytes(_) => {
                c.stdin(Stdio::piped());
            }
            Input::Closed => {
                c.stdin(Stdio::null());
                // SAFETY: close(2) is async-signal-safe; runs in the child before exec.
                unsafe {
                    c.pre_exec(|| {
                        libc::close(0);
                        Ok(())
                    });
                }
            }
            Input::From(p) => {
                c.stdin(fs::File::open(p).expect("stdin source"));
            }
        }
        let mut child = c.spawn().expect("spawn");
        if let Input::Bytes(b) = input {
            let mut s = child.stdin.take().expect("stdin");
            // The tool may exit before reading (usage errors): a broken pipe is fine.
            let _ = s.write_all(b);
        }
        let o = child.wait_with_output().expect("wait");
        self.normalise(&o)
    }

    fn run(&self, prog: Prog, args: &[&str], input: Input) -> Run {
        self.run_env(prog, args, input, &[])
    }

    /// The stored records, sorted, read with the tool set's own dump tool.
    fn records(&self, rel: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut r = match self.tool {
            Tool::Ours => mdb_dump(&self.p(rel)),
            Tool::Cyrus => bdb_dump(&self.p(rel)),
        };
        r.sort();
        r
    }

    /// Add records to a store behind the tools' back (mdb_load / db5.3_load, text mode).
    fn plant(&self, rel: &str, items: &[(&[u8], &[u8])]) {
        let mut text = Vec::new();
        for (k, v) in items {
            text.extend_from_slice(&escape_text(k));
            text.push(b'\n');
            text.extend_from_slice(&escape_text(v));
            text.push(b'\n');
        }
        let path = self.p(rel);
        let mut c = match self.tool {
            Tool::Ours => {
                let mut c = Command::new("mdb_load");
                c.args(["-n", "-T"]).arg(&path);
                c
            }
            Tool::Cyrus => {
                let mut c = Command::new("db5.3_load");
                c.args(["-T", "-t", "hash"]).arg(&path);
                c
            }
        };
        let o = run_cmd(&mut c, Some(&text));
        assert!(
            o.status.success(),
            "load into {}: {}",
            path.display(),
            stderr(&o)
        );
    }
}

/// `mdb_load -T` / `db_load -T` text: `\\` for a backslash, `\xx` for other bytes.
fn escape_text(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x21..=0x7e | b' ' => out.push(c),
            _ => out.extend_from_slice(format!("\\{c:02x}").as_bytes()),
        }
    }
    out
}

/// Every record of a Berkeley DB file as `db5.3_dump -p` prints them, decoded.
fn bdb_dump(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let o = Command::new("db5.3_dump")
        .arg("-p")
        .arg(db)
        .output()
        .expect("db5.3_dump (apt-get install db5.3-util)");
    assert!(
        o.status.success(),
        "db5.3_dump {}: {}",
        db.display(),
        stderr(&o)
    );
    let mut items = Vec::new();
    let mut pending: Option<Vec<u8>> = None;
    let mut inside = false;
    for l in o.stdout.split(|&b| b == b'\n') {
        if l == b"HEADER=END" {
            inside = true;
            continue;
        }
        if l == b"DATA=END" {
            break;
        }
        if inside {
            let v = unprint(&l[1..]);
            match pending.take() {
                None => pending = Some(v),
                Some(k) => items.push((k, v)),
            }
        }
    }
    items
}

fn sorted_records(mut r: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.sort();
    r
}

/// Our side and Cyrus's side in one scratch directory.
struct Pair {
    _s: Scratch,
    ours: Side,
    cy: Side,
}

impl Pair {
    fn new() -> Pair {
        let s = Scratch::new();
        let ours = Side::new(s.dir.path(), Tool::Ours);
        let cy = Side::new(s.dir.path(), Tool::Cyrus);
        Pair { _s: s, ours, cy }
    }

    fn root(&self) -> &Path {
        self._s.dir.path()
    }

    /// Write `<app>.conf` into `$T/<dir>` on both sides.
    fn conf(&self, dir: &str, app: &str, text: &str) {
        for side in [&self.ours, &self.cy] {
            mkdir(&side.p(dir));
            fs::write(side.p(dir).join(format!("{app}.conf")), text).expect("conf");
        }
    }

    fn mkdir(&self, rel: &str) {
        mkdir(&self.ours.p(rel));
        mkdir(&self.cy.p(rel));
    }

    /// Run on both sides; returns (cyrus, ours).
    fn both_env(
        &self,
        prog: Prog,
        args: &[&str],
        input: &dyn Fn() -> Input<'static>,
        env: &[(&str, &str)],
    ) -> (Run, Run) {
        (
            self.cy.run_env(prog, args, input(), env),
            self.ours.run_env(prog, args, input(), env),
        )
    }

    /// Run on both sides and compare.
    fn same(&self, ctx: &str, prog: Prog, args: &[&str], input: &[u8], cmp: Cmp) -> Run {
        let stdin = input.to_vec().leak() as &'static [u8];
        self.same_env(ctx, prog, args, &move || Input::Bytes(stdin), &[], cmp)
    }

    fn same_env(
        &self,
        ctx: &str,
        prog: Prog,
        args: &[&str],
        input: &dyn Fn() -> Input<'static>,
        env: &[(&str, &str)],
        cmp: Cmp,
    ) -> Run {
        let (cy, ours) = self.both_env(prog, args, input, env);
        assert_like(&format!("{ctx} (vs Debian)"), &cy, &ours, cmp);
        ours
    }

    /// Same stored records on both sides (theirs BDB, ours LMDB; compared sorted).
    fn same_records(&self, ctx: &str, rel: &str) {
        let (c, o) = (self.cy.records(rel), self.ours.records(rel));
        assert_eq!(
            show(&o),
            show(&c),
            "{ctx}: stored records differ (ours left, Debian right)"
        );
    }
}

fn show(r: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, String)> {
    r.iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).replace('\0', "\\0"),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Comparing
// ------------------------------------------------------------------------------------------

/// How our run may differ from the Cyrus run it is compared with.
#[derive(Clone, Copy, Default)]
struct Cmp<'a> {
    /// DELIBERATE: we print one line saying why (naming file, user, realm) before Cyrus's
    /// failure line, which stays the last line. Each needle must occur in that line.
    detail: Option<&'a [&'a str]>,
    /// Compare stdout as sorted lines (Berkeley DB lists in hash order, LMDB in key order).
    sorted: bool,
    /// DELIBERATE: `-v`'s last line names our package instead of Cyrus SASL.
    version: bool,
}

const EXACT: Cmp<'static> = Cmp {
    detail: None,
    sorted: false,
    version: false,
};
const SORTED: Cmp<'static> = Cmp {
    detail: None,
    sorted: true,
    version: false,
};
const VERSION: Cmp<'static> = Cmp {
    detail: None,
    sorted: false,
    version: true,
};

fn detail<'a>(needles: &'a [&'a str]) -> Cmp<'a> {
    Cmp {
        detail: Some(needles),
        ..EXACT
    }
}

/// Berkeley DB's own messages on Debian's side (`BDB0004 …`, `<path>: Is a directory`);
/// Cyrus itself never prints a path.
fn bdb_noise(line: &str) -> bool {
    line.starts_with("BDB") || line.starts_with("$T")
}

fn sorted_lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v
}

fn our_version_prefix() -> String {
    format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// `got` (ours) behaves like `want` (Cyrus: a transcript or a live Debian run).
fn assert_like(ctx: &str, want: &Run, got: &Run, cmp: Cmp) {
    let dbg = format!("\n--- Cyrus: {want:#?}\n--- ours: {got:#?}");
    assert_eq!(got.rc, want.rc, "{ctx}: exit code{dbg}");
    if cmp.sorted {
        assert_eq!(
            sorted_lines(&got.out),
            sorted_lines(&want.out),
            "{ctx}: stdout{dbg}"
        );
    } else {
        assert_eq!(got.out, want.out, "{ctx}: stdout{dbg}");
    }
    let mut w: Vec<&str> = want.err.lines().filter(|l| !bdb_noise(l)).collect();
    // `got` is Debian's run when Debian is checked against a transcript.
    let mut g: Vec<&str> = got.err.lines().filter(|l| !bdb_noise(l)).collect();
    assert!(
        got.err.is_empty() || got.err.ends_with('\n'),
        "{ctx}: stderr does not end in a newline{dbg}"
    );
    if let Some(needles) = cmp.detail {
        assert!(
            !w.is_empty() && g.len() == w.len() + 1,
            "{ctx}: expected Cyrus's stderr plus one detail line before its last line{dbg}"
        );
        let d = g.remove(g.len() - 2);
        assert!(
            d.starts_with("saslpasswd: ") || d.starts_with("sasldblistusers: "),
            "{ctx}: detail line {d:?} does not name the program{dbg}"
        );
        for n in needles {
            assert!(
                d.contains(n),
                "{ctx}: detail line {d:?} does not mention {n:?}{dbg}"
            );
        }
    }
    if cmp.version {
        assert_eq!(
            w.pop(),
            Some(CYRUS_VERSION_LINE),
            "{ctx}: Cyrus version line{dbg}"
        );
        let last = g.pop().unwrap_or_default();
        assert!(
            last.starts_with(&our_version_prefix()) && !last.contains("Cyrus SASL\""),
            "{ctx}: our -v must end with a line naming our package, got {last:?}{dbg}"
        );
    }
    assert_eq!(g, w, "{ctx}: stderr{dbg}");
}

/// Listing lines in LMDB key order: `user@realm: prop` sorted by `user\0realm\0prop`.
fn lmdb_order(lines: &[&str]) -> Vec<String> {
    let mut keyed: Vec<(Vec<u8>, String)> = lines
        .iter()
        .map(|l| {
            let (user, rest) = l.split_once('@').expect("user@realm");
            let (realm, prop) = rest.split_once(": ").expect("realm: prop");
            (key(user, realm, prop), l.to_string())
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, l)| l).collect()
}

fn lines_of(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn mdb_stat(db: &Path) -> String {
    need("mdb_stat", "lmdb-utils");
    let o = Command::new("mdb_stat")
        .args(["-n", "-e"])
        .arg(db)
        .output()
        .expect("mdb_stat");
    assert!(o.status.success(), "mdb_stat: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn map_size(db: &Path) -> u64 {
    let stat = mdb_stat(db);
    let line = stat
        .lines()
        .find(|l| l.trim_start().starts_with("Map size:"))
        .expect("Map size line");
    line.trim_start()["Map size:".len()..]
        .trim()
        .parse()
        .expect("map size")
}

/// Verify `(password, authPassword value)` pairs with the RFC 5802 formulas in Python
/// (independent of our Rust code): StoredKey = H(HMAC(SaltedPassword, "Client Key")),
/// ServerKey = HMAC(SaltedPassword, "Server Key"). Returns the salt length, or None when the
/// value does not verify.
fn scram_check(pairs: &[(&str, &str)]) -> Vec<Option<usize>> {
    const SCRIPT: &str = r#"
import sys, json, hashlib, hmac, base64
for line in sys.stdin:
    pw, v = json.loads(line)
    try:
        mech, rest = v.split('$', 1)
        params, keys = rest.split('$', 1)
        it, salt = params.split(':', 1)
        stored, server = keys.split(':', 1)
        h = {'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256'}[mech]
        s = base64.b64decode(salt, validate=True)
        salted = hashlib.pbkdf2_hmac(h, pw.encode(), s, int(it))
        ck = hmac.new(salted, b'Client Key', h).digest()
        ok = (hashlib.new(h, ck).digest() == base64.b64decode(stored, validate=True)
              and hmac.new(salted, b'Server Key', h).digest() == base64.b64decode(server, validate=True))
        print(len(s) if ok else 'bad')
    except Exception:
        print('bad')
"#;
    let input: String = pairs
        .iter()
        .map(|(p, v)| serde_json::to_string(&(p, v)).expect("json") + "\n")
        .collect();
    need(PY, "python3");
    let o = run_cmd(
        Command::new(PY).arg("-c").arg(SCRIPT),
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "python: {}", stderr(&o));
    stdout(&o).lines().map(|l| l.parse().ok()).collect()
}

fn value_of<'a>(recs: &'a [(Vec<u8>, Vec<u8>)], k: &[u8]) -> Option<&'a str> {
    recs.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| std::str::from_utf8(v).expect("utf-8 value"))
}

mod extensions;
mod listusers;
mod probe;
mod realm;
mod saslpasswd;
mod transcripts;

/// The suite, section by section.
pub fn tests() -> Vec<crate::common::harness::Test> {
    [
        transcripts::tests(),
        saslpasswd::tests(),
        listusers::tests(),
        extensions::tests(),
        probe::tests(),
        realm::tests(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
