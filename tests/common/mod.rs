//! Helpers shared by the integration tests: scratch directories, running
//! the real binaries, reading stores back with Debian's tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod daemon;
pub mod deb;
pub mod harness;
pub mod interop;
pub mod pg;
#[allow(unused_imports)]
pub use harness::{need, need_file, need_python_lmdb, need_root};

pub const SASLPASSWD: &str = env!("CARGO_BIN_EXE_saslpasswd");
pub const LISTUSERS: &str = env!("CARGO_BIN_EXE_sasldblistusers");

/// A scratch directory with an empty SASL config dir, so no test reads the
/// machine's /etc/sasl2 or touches /etc/sasldb2.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("sasldb-test.")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("conf")).expect("conf dir");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("sasldb2")
    }

    /// The directory given as SASL_CONF_PATH to every tool run.
    pub fn conf_dir(&self) -> PathBuf {
        self.path("conf")
    }

    /// Write `<appname>.conf` into the scratch config dir.
    pub fn conf(&self, appname: &str, text: &str) {
        std::fs::write(self.conf_dir().join(format!("{appname}.conf")), text).expect("conf");
    }

    /// A command for `program` with the scratch SASL_CONF_PATH.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SASL_CONF_PATH", self.conf_dir());
        c.env_remove("POSIXLY_CORRECT");
        c
    }

    /// Create users in realm example.org in the scratch store with the real
    /// `saslpasswd`, and point the `smtpd` application config at the store.
    pub fn users(&self, users: &[(&str, &str)]) -> PathBuf {
        let db = self.db();
        for (user, pw) in users {
            let o = self.run(
                SASLPASSWD,
                &[
                    "-p",
                    "-c",
                    "-u",
                    "example.org",
                    "-f",
                    db.to_str().unwrap(),
                    user,
                ],
                Some(pw.as_bytes()),
            );
            assert!(o.status.success(), "{user}: {}", stderr(&o));
        }
        self.conf("smtpd", &format!("sasldb_path: {}\n", db.display()));
        db
    }

    /// Run with `stdin` bytes (None = /dev/null).
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_cmd(self.cmd(program).args(args), stdin)
    }
}

pub fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Host name as Cyrus's default realm: gethostname() lower-cased.
pub fn default_realm() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .to_ascii_lowercase()
}

/// Every (key, value) of an LMDB store as Debian's `mdb_dump -n` prints
/// them. The hex format is used because lmdb-utils 0.9.24's print format
/// does not escape backslashes.
pub fn mdb_dump(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    need("mdb_dump", "lmdb-utils");
    hex_dump(
        Command::new("mdb_dump").arg("-n").arg(db),
        "mdb_dump (apt-get install lmdb-utils)",
    )
}

/// Every (key, value) of a Berkeley DB file as Debian's `db5.3_dump` prints
/// them (its hex format is mdb_dump's), in the file's order.
pub fn db_dump(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    need("db5.3_dump", "db5.3-util");
    hex_dump(
        Command::new("db5.3_dump").arg(db),
        "db5.3_dump (apt-get install db5.3-util)",
    )
}

fn hex_dump(cmd: &mut Command, what: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let out = cmd.output().expect(what);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("hex dump is ASCII");
    let mut lines = text.lines();
    for l in lines.by_ref() {
        if l == "HEADER=END" {
            break;
        }
    }
    let mut items = Vec::new();
    let mut pending: Option<Vec<u8>> = None;
    for l in lines {
        if l == "DATA=END" {
            break;
        }
        let hex = l.trim_start();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        match pending.take() {
            None => pending = Some(bytes),
            Some(k) => items.push((k, bytes)),
        }
    }
    items
}

/// Undo the print format of `mdb_dump -p` / `db5.3_dump -p` (`\\` and
/// `\xx` escapes), as the transcripts record it.
pub fn unprint(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            if s.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

pub fn key(user: &str, realm: &str, prop: &str) -> Vec<u8> {
    format!("{user}\0{realm}\0{prop}").into_bytes()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// How long the Dovecot test client waits for a reply.
pub const DOVECOT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A raw Dovecot-protocol client, speaking as Postfix's does.
pub struct Dovecot {
    pub r: BufReader<UnixStream>,
    pub w: UnixStream,
    pub handshake: Vec<String>,
}

impl Dovecot {
    pub fn connect(path: &Path) -> Dovecot {
        let w = UnixStream::connect(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        w.set_read_timeout(Some(DOVECOT_WAIT)).unwrap();
        w.set_write_timeout(Some(DOVECOT_WAIT)).unwrap();
        let mut d = Dovecot {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
            handshake: Vec::new(),
        };
        d.send("VERSION\t1\t0\nCPID\t4242");
        loop {
            let l = d.line();
            let done = l == "DONE";
            d.handshake.push(l);
            if done {
                break;
            }
        }
        d
    }

    pub fn send(&mut self, text: &str) {
        self.w
            .write_all(format!("{text}\n").as_bytes())
            .expect("write to auth socket");
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.r.read_line(&mut l).expect("read from auth socket");
        assert!(n > 0, "auth socket closed");
        l.trim_end_matches('\n').to_string()
    }

    /// AUTH PLAIN with an initial response, as Postfix sends it.
    pub fn plain(&mut self, id: u32, rip: &str, user: &str, pw: &str) -> String {
        let resp = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("\0{user}\0{pw}"),
        );
        self.send(&format!(
            "AUTH\t{id}\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip={rip}\tresp={resp}"
        ));
        self.line()
    }
}

/// A user's ID (postfix, nobody, ...) from the system's database.
pub fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {user} (apt-get install postfix)"))
        .uid
        .as_raw()
}

/// A group's ID from the system's database.
pub fn gid_of(group: &str) -> u32 {
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no group {group} (apt-get install postfix)"))
        .gid
        .as_raw()
}

/// Started as root, `smtpd-auth` gives root up for `mail_owner`
/// (postfix) before it serves anyone: let it reach the scratch directory
/// (to read main.cf again on SIGHUP) and write to `writable` in it (a
/// Maildir root).
pub fn open_to_mail_owner(s: &Scratch, writable: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Not root: the daemon keeps the tester's identity and needs nothing.
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod scratch");
    std::fs::create_dir_all(writable).expect("mkdir");
    std::os::unix::fs::chown(writable, Some(uid_of("postfix")), Some(gid_of("postfix")))
        .expect("chown to postfix");
}
