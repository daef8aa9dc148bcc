//! Helpers for the interop and robustness tests: an independent LMDB peer
//! process (Debian's python3-lmdb), `mdb_stat` parsing, umask wrappers and
//! bounded waits (`common::interop`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's interpreter: its `lmdb` module links the system liblmdb 0.9.24.
/// (A `python3` found on PATH may be another interpreter without lmdb.)
pub const PYTHON: &str = "/usr/bin/python3";

/// The Debian tools these tests drive: missing ones skip the test (see
/// `common::harness`), or fail it under CI.
pub fn require_tools() {
    for tool in ["mdb_dump", "mdb_load", "mdb_stat"] {
        super::need(tool, "lmdb-utils");
    }
    super::need_python_lmdb();
}

/// A long-lived python3-lmdb process holding the environment open and
/// answering one line per command (see [`PEER_SCRIPT`]).
pub struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The first line the peer printed: `ready <map_size>`.
    pub ready: String,
}

/// The peer: `python3 -c PEER_SCRIPT PATH ro|rw [MAP_SIZE]`. Commands:
/// `begin` (new read txn; answers `ok resized=N` after adopting a grown map),
/// `end`, `get HEXKEY` (in the current txn: `val HEX` or `none`), `count`,
/// `dump` (`HEXKEY:HEXVAL ...` in key order), `put HEXKEY HEXVAL` (own write
/// txn), `putn PREFIX N REALM` (N users, one write txn), `info` (map size).
pub const PEER_SCRIPT: &str = r#"
import sys, lmdb
path, mode = sys.argv[1], sys.argv[2]
kw = dict(subdir=False, readonly=(mode == 'ro'), mode=0o660, max_dbs=0)
if len(sys.argv) > 3:
    kw['map_size'] = int(sys.argv[3])
env = lmdb.open(path, **kw)
txn = None
def out(s):
    sys.stdout.write(s + '\n'); sys.stdout.flush()
def begin():
    global txn
    if txn is not None:
        txn.abort()
        txn = None
    resized = 0
    while True:
        try:
            txn = env.begin(write=False)
            return resized
        except lmdb.MapResizedError:
            resized += 1
            env.set_mapsize(0)
            if resized > 5:
                raise
out('ready %d' % env.info()['map_size'])
for line in sys.stdin:
    a = line.split()
    if not a:
        continue
    c = a[0]
    try:
        if c == 'begin':
            out('ok resized=%d' % begin())
        elif c == 'end':
            if txn is not None:
                txn.abort()
            txn = None
            out('ok')
        elif c == 'get':
            v = txn.get(bytes.fromhex(a[1]))
            out('none' if v is None else 'val ' + bytes(v).hex())
        elif c == 'count':
            out(str(sum(1 for _ in txn.cursor())))
        elif c == 'dump':
            out(' '.join(bytes(k).hex() + ':' + bytes(v).hex() for k, v in txn.cursor()))
        elif c == 'put':
            with env.begin(write=True) as w:
                w.put(bytes.fromhex(a[1]), bytes.fromhex(a[2]) if len(a) > 2 else b'')
            out('ok')
        elif c == 'putn':
            prefix, n, realm = a[1], int(a[2]), a[3]
            with env.begin(write=True) as w:
                for i in range(n):
                    k = ('%s%d\0%s\0userPassword' % (prefix, i, realm)).encode()
                    w.put(k, ('pw-%s%d' % (prefix, i)).encode())
            out('ok')
        elif c == 'info':
            out('map_size=%d' % env.info()['map_size'])
        else:
            out('error unknown command ' + c)
    except Exception as e:
        out('error %s: %s' % (type(e).__name__, e))
"#;

impl PyPeer {
    pub fn spawn(db: &Path, mode: &str, map_size: Option<usize>) -> PyPeer {
        super::need_python_lmdb();
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-c").arg(PEER_SCRIPT).arg(db).arg(mode);
        if let Some(m) = map_size {
            cmd.arg(m.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn /usr/bin/python3 (Debian package python3-lmdb)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut p = PyPeer {
            child,
            stdin,
            stdout,
            ready: String::new(),
        };
        p.ready = p.line();
        assert!(
            p.ready.starts_with("ready "),
            "python3-lmdb peer did not start: {:?}",
            p.ready
        );
        p
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout
            .read_line(&mut s)
            .expect("read from python peer");
        assert!(!s.is_empty(), "python peer exited unexpectedly");
        s.trim_end_matches('\n').to_string()
    }

    /// Send one command, return its answer; an `error` answer fails the test.
    pub fn cmd(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").expect("write to python peer");
        self.stdin.flush().unwrap();
        let l = self.line();
        assert!(!l.starts_with("error"), "python peer: {c:?} -> {l}");
        l
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let r = self.cmd(&format!("get {}", hex(key)));
        if r == "none" {
            None
        } else {
            Some(unhex(r.strip_prefix("val ").expect("val")))
        }
    }

    pub fn dump(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = self.cmd("dump");
        r.split(' ')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once(':').expect("k:v");
                (unhex(k), unhex(v))
            })
            .collect()
    }

    pub fn count(&mut self) -> usize {
        self.cmd("count").parse().expect("count")
    }

    /// Begin a new read txn; returns how often the peer had to adopt a map
    /// grown by another process (MDB_MAP_RESIZED) first.
    pub fn begin(&mut self) -> usize {
        let r = self.cmd("begin");
        r.strip_prefix("ok resized=")
            .expect("begin")
            .parse()
            .unwrap()
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        assert_eq!(self.cmd(&format!("put {} {}", hex(key), hex(value))), "ok");
    }

    pub fn close(mut self) {
        drop(self.stdin);
        let st = self.child.wait().expect("wait python peer");
        assert!(st.success(), "python peer failed: {st}");
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Run a Python snippet with Debian's interpreter; `args` become sys.argv[1:].
pub fn python(script: &str, args: &[&str]) -> Output {
    super::need_python_lmdb();
    let o = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run /usr/bin/python3 (Debian package python3-lmdb)");
    assert!(
        o.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `mdb_stat -n -e` of a store, as name -> value for the numeric fields
/// ("Map size", "Entries", "Page size", "Max readers", ...).
pub fn mdb_stat(db: &Path) -> Vec<(String, u64)> {
    super::need("mdb_stat", "lmdb-utils");
    let o = Command::new("mdb_stat")
        .args(["-n", "-e"])
        .arg(db)
        .output()
        .expect("mdb_stat (Debian package lmdb-utils)");
    assert!(
        o.status.success(),
        "mdb_stat failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub fn stat_field(stat: &[(String, u64)], name: &str) -> u64 {
    stat.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("mdb_stat has no {name:?}: {stat:?}"))
        .1
}

pub fn map_size(db: &Path) -> u64 {
    stat_field(&mdb_stat(db), "Map size")
}

pub fn entries(db: &Path) -> u64 {
    stat_field(&mdb_stat(db), "Entries")
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

pub fn lock_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push("-lock");
    PathBuf::from(s)
}

/// Wait for a child at most `limit`; a hang fails the test (after killing it).
pub fn wait_timeout(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Names of the entries of a directory, sorted (to prove nothing appeared).
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every (key, value) of a store as Debian's `mdb_dump -n` prints them in
/// its default (hex, `format=bytevalue`) format. Unlike `-p`, this is exact
/// for every byte: LMDB 0.9.24's `mdb_dump -p` prints a backslash unescaped,
/// so `a\b` and the byte 0x0b cannot be told apart there.
pub fn dump_hex(db: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    super::mdb_dump(db)
}
