//! SMTP AUTH load generator (a `harness = false` bench): drives complete
//! SMTP sessions against a server on loopback at a given concurrency,
//! bounded in count AND time, and reports sessions/s, session latency
//! percentiles and failures. The same client runs against Postfix+Cyrus
//! and against `smtpd-auth` in `benches/bench-smtpd.sh`.
//!
//! Modes (one session each):
//! - `full`:   connect, 220, EHLO, AUTH, MAIL FROM, RCPT TO (outside
//!   domain), DATA, ~250-byte message, QUIT
//! - `nomail`: connect, 220, EHLO, AUTH, QUIT
//!
//! AUTH is PLAIN (initial response) unless `--mech` names LOGIN, CRAM-MD5
//! or DIGEST-MD5 (a client written here from the RFCs, independent of the
//! crate's server side; DIGEST-MD5 checks the server's rspauth).
//! - `idle`:   open `--sessions` connections (`--concurrency` connects in
//!   flight), read each greeting, then hold them all idle for `--hold`
//!   seconds (bounded by `--duration`), then check they are still open.
//!   Prints `READY greeted=N ...` on stdout once every connection is up.
//!
//! Commands go in lock-step (no pipelining), like `anchors/bench-auth.py`.
//!
//! `--tls starttls` (EHLO, STARTTLS, EHLO again) or `--tls implicit`
//! (TLS from the start, as on port 465): a tokio-rustls client, full
//! handshakes, or with `--resume yes` resuming from the worker's last
//! session (rustls's store: each TLS 1.3 ticket used once); the result
//! counts the sessions `resumed`.
//!
//! ```text
//! cargo bench --bench smtp_load -- --target 127.0.0.1:2525 --concurrency 8 \
//!     --sessions 5000 --duration 60 --mode full --user alice --password alice-secret
//! ```
//! Every option can also come from the environment: `SMTP_LOAD_TARGET`,
//! `SMTP_LOAD_CONCURRENCY`, ... (the option name upper-cased, `-` -> `_`).
//! Without a target it prints its usage and exits 0 (so `cargo bench` and
//! `cargo test --benches` with no arguments do nothing).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

#[path = "smtp_load/tls.rs"]
mod tls;
use tls::Tls;

/// A plaintext or a TLS connection.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const USAGE: &str = "\
smtp_load: SMTP AUTH load generator (loopback only)

  --target ADDR:PORT     server (127.0.0.0/8 or ::1 only)            [required]
  --mode full|nomail|idle                                            [full]
  --concurrency N        sessions in flight (idle: connects in flight) [8]
  --sessions N           sessions to run (idle: connections to hold)  [1000]
  --duration S           stop starting sessions after S seconds       [60]
  --timeout S            per reply / connect timeout                  [10]
  --mech M               plain | login | cram-md5 | digest-md5      [plain]
  --user U --password P  AUTH credentials                  [alice alice-secret]
  --realm R              DIGEST-MD5 realm (else the one offered)
  --from ADDR            MAIL FROM                             [U@lab.example]
  --rcpt ADDR            RCPT TO (an outside domain)   [rcpt@outside.example]
  --helo NAME            EHLO name                       [client.lab.example]
  --tls none|starttls|implicit  TLS (tokio-rustls client)            [none]
  --resume yes|no        TLS: resume from the worker's last session    [no]
  --ca FILE              TLS: PEM anchor to check the server against (else
                         any certificate is accepted)
  --sni NAME             TLS: server name sent and checked       [localhost]
  --sources N            spread clients over N source addresses 127.0.0.11..
                         (per-client connection limits); 0 = default route [0]
  --threads N            client runtime threads (1 = current-thread)  [1]
  --hold S               idle mode: seconds to hold the connections   [20]
  --label TEXT           copied into the JSON result
  --json FILE            also write the result as one JSON object
Options may also be given as environment variables SMTP_LOAD_<NAME>.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Full,
    NoMail,
    Idle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mech {
    Plain,
    Login,
    CramMd5,
    DigestMd5,
}

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::Login => "LOGIN",
            Mech::CramMd5 => "CRAM-MD5",
            Mech::DigestMd5 => "DIGEST-MD5",
        }
    }
}

#[derive(Clone, Debug)]
struct Args {
    target: Option<SocketAddr>,
    mode: Mode,
    concurrency: usize,
    sessions: usize,
    duration: Duration,
    timeout: Duration,
    mech: Mech,
    user: String,
    password: String,
    realm: Option<String>,
    from: Option<String>,
    rcpt: String,
    helo: String,
    tls: Tls,
    resume: bool,
    ca: Option<String>,
    sni: String,
    sources: u8,
    threads: usize,
    hold: Duration,
    label: String,
    json: Option<String>,
}

const OPTIONS: &[&str] = &[
    "target",
    "mode",
    "concurrency",
    "sessions",
    "duration",
    "timeout",
    "mech",
    "user",
    "password",
    "realm",
    "from",
    "rcpt",
    "helo",
    "tls",
    "resume",
    "ca",
    "sni",
    "sources",
    "threads",
    "hold",
    "label",
    "json",
];

fn secs(v: &str) -> Result<Duration, String> {
    v.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad duration {v:?}"))
}

impl Args {
    fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("--{name}: bad number {v:?}"))
        };
        match name {
            "target" => {
                let a: SocketAddr = v.parse().map_err(|_| format!("bad --target {v:?}"))?;
                if !a.ip().is_loopback() {
                    return Err(format!("--target {a}: loopback addresses only"));
                }
                self.target = Some(a);
            }
            "mode" => {
                self.mode = match v {
                    "full" => Mode::Full,
                    "nomail" => Mode::NoMail,
                    "idle" => Mode::Idle,
                    _ => return Err(format!("bad --mode {v:?} (full|nomail|idle)")),
                }
            }
            "concurrency" => self.concurrency = num(v)?.max(1),
            "sessions" => self.sessions = num(v)?,
            "duration" => self.duration = secs(v)?,
            "timeout" => self.timeout = secs(v)?,
            "mech" => {
                self.mech = match v.to_ascii_lowercase().as_str() {
                    "plain" => Mech::Plain,
                    "login" => Mech::Login,
                    "cram-md5" => Mech::CramMd5,
                    "digest-md5" => Mech::DigestMd5,
                    _ => return Err(format!("bad --mech {v:?}")),
                }
            }
            "realm" => self.realm = Some(v.to_string()),
            "user" => self.user = v.to_string(),
            "password" => self.password = v.to_string(),
            "from" => self.from = Some(v.to_string()),
            "rcpt" => self.rcpt = v.to_string(),
            "helo" => self.helo = v.to_string(),
            "tls" => self.tls = Tls::parse(v)?,
            "resume" => {
                self.resume = match v {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(format!("bad --resume {v:?} (yes|no)")),
                }
            }
            "ca" => self.ca = Some(v.to_string()),
            "sni" => self.sni = v.to_string(),
            "sources" => {
                self.sources = u8::try_from(num(v)?)
                    .ok()
                    .filter(|n| *n <= 200)
                    .ok_or("--sources: at most 200")?
            }
            "threads" => self.threads = num(v)?.max(1),
            "hold" => self.hold = secs(v)?,
            "label" => self.label = v.to_string(),
            "json" => self.json = Some(v.to_string()),
            _ => return Err(format!("unknown option --{name}")),
        }
        Ok(())
    }

    fn parse() -> Result<Args, String> {
        let mut a = Args {
            target: None,
            mode: Mode::Full,
            concurrency: 8,
            sessions: 1000,
            duration: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            mech: Mech::Plain,
            user: "alice".into(),
            password: "alice-secret".into(),
            realm: None,
            from: None,
            rcpt: "rcpt@outside.example".into(),
            helo: "client.lab.example".into(),
            tls: Tls::None,
            resume: false,
            ca: None,
            sni: "localhost".into(),
            sources: 0,
            threads: 1,
            hold: Duration::from_secs(20),
            label: String::new(),
            json: None,
        };
        for name in OPTIONS {
            let var = format!("SMTP_LOAD_{}", name.to_ascii_uppercase().replace('-', "_"));
            if let Ok(v) = std::env::var(&var) {
                a.set(name, &v).map_err(|e| format!("{var}: {e}"))?;
            }
        }
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            // cargo bench passes --bench to harness = false targets.
            if arg == "--bench" || arg == "--" {
                continue;
            }
            if arg == "-h" || arg == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            let Some(opt) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (
                    opt.to_string(),
                    it.next().ok_or_else(|| format!("--{opt} needs a value"))?,
                ),
            };
            a.set(&name, &value)?;
        }
        Ok(a)
    }

    fn from(&self) -> String {
        self.from.clone().unwrap_or_else(|| {
            if self.user.contains('@') {
                self.user.clone()
            } else {
                format!("{}@lab.example", self.user)
            }
        })
    }
}

/// A failed session: the step and what went wrong there.
struct Fail {
    stage: &'static str,
    what: String,
}

fn fail(stage: &'static str, what: impl Into<String>) -> Fail {
    Fail {
        stage,
        what: what.into(),
    }
}

struct Conn<S = Box<dyn Io>> {
    r: BufReader<S>,
    line: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Read one (possibly multi-line) reply; returns its code.
    async fn reply(&mut self, stage: &'static str) -> Result<u16, Fail> {
        loop {
            self.line.clear();
            let n = tokio::time::timeout(self.timeout, self.r.read_until(b'\n', &mut self.line))
                .await
                .map_err(|_| fail(stage, "timeout"))?
                .map_err(|e| fail(stage, e.kind().to_string()))?;
            if n == 0 {
                return Err(fail(stage, "connection closed by server"));
            }
            if self.line.len() < 4 || self.line[3] != b'-' {
                break;
            }
        }
        let l = &self.line;
        let code = std::str::from_utf8(&l[..l.len().min(3)])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(code)
    }

    fn last_text(&self) -> String {
        String::from_utf8_lossy(&self.line)
            .trim_end()
            .chars()
            .take(90)
            .collect()
    }

    async fn send(&mut self, stage: &'static str, data: &[u8]) -> Result<(), Fail> {
        tokio::time::timeout(self.timeout, self.r.get_mut().write_all(data))
            .await
            .map_err(|_| fail(stage, "timeout"))?
            .map_err(|e| fail(stage, e.kind().to_string()))
    }

    async fn cmd(&mut self, stage: &'static str, data: &[u8], want: u16) -> Result<(), Fail> {
        self.send(stage, data).await?;
        let code = self.reply(stage).await?;
        if code != want {
            return Err(fail(stage, self.last_text()));
        }
        Ok(())
    }
}

/// What every session sends, formatted once.
struct Script {
    ehlo: Vec<u8>,
    auth: Vec<u8>,
    mail: Vec<u8>,
    rcpt: Vec<u8>,
    message_head: String,
}

impl Script {
    fn new(a: &Args) -> Script {
        let from = a.from();
        let plain = B64.encode(format!("\0{}\0{}", a.user, a.password));
        // ~250 bytes with the headers, as anchors/bench-auth.py sends.
        let head = format!(
            "From: {from}\r\nTo: {}\r\nSubject: bench {{i}}\r\nMessage-ID: <bench-{{i}}@client.lab.example>\r\n\r\nThis is a small benchmark message.\r\n{}\r\n.\r\n",
            a.rcpt,
            "x".repeat(64)
        );
        Script {
            ehlo: format!("EHLO {}\r\n", a.helo).into_bytes(),
            auth: format!("AUTH PLAIN {plain}\r\n").into_bytes(),
            mail: format!("MAIL FROM:<{from}>\r\n").into_bytes(),
            rcpt: format!("RCPT TO:<{}>\r\n", a.rcpt).into_bytes(),
            message_head: head,
        }
    }
}

fn source_addr(a: &Args, i: usize) -> Option<IpAddr> {
    match (a.sources, a.target?.ip()) {
        (0, _) | (_, IpAddr::V6(_)) => None,
        (n, IpAddr::V4(_)) => Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            11 + (i % usize::from(n)) as u8,
        ))),
    }
}

async fn connect(a: &Args, i: usize) -> Result<TcpStream, Fail> {
    let target = a.target.expect("target checked");
    let go = async {
        match source_addr(a, i) {
            None => TcpStream::connect(target).await,
            Some(src) => {
                let s = TcpSocket::new_v4()?;
                // Let connect() pick the port per destination, so bound
                // sources don't exhaust the ephemeral range.
                #[cfg(target_os = "linux")]
                {
                    use std::os::fd::AsRawFd;
                    let one: libc::c_int = 1;
                    // SAFETY: a valid socket and a c_int option value.
                    unsafe {
                        libc::setsockopt(
                            s.as_raw_fd(),
                            libc::IPPROTO_IP,
                            libc::IP_BIND_ADDRESS_NO_PORT,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        );
                    }
                }
                s.bind(SocketAddr::new(src, 0))?;
                s.connect(target).await
            }
        }
    };
    let s = tokio::time::timeout(a.timeout, go)
        .await
        .map_err(|_| fail("connect", "timeout"))?
        .map_err(|e| fail("connect", e.kind().to_string()))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// The TLS handshake on `stream`; the connection and whether it resumed.
async fn handshake(
    a: &Args,
    config: &Arc<rustls::ClientConfig>,
    stream: Box<dyn Io>,
) -> Result<(Box<dyn Io>, bool), Fail> {
    let name = rustls::pki_types::ServerName::try_from(a.sni.clone())
        .map_err(|e| fail("tls", e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    let tls = tokio::time::timeout(a.timeout, connector.connect(name, stream))
        .await
        .map_err(|_| fail("tls", "timeout"))?
        .map_err(|e| fail("tls", e.to_string()))?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((Box::new(tls), resumed))
}

fn conn(stream: Box<dyn Io>, a: &Args) -> Conn {
    Conn {
        r: BufReader::with_capacity(4096, stream),
        line: Vec::with_capacity(256),
        timeout: a.timeout,
    }
}

/// One session; `Ok(true)`: over a resumed TLS session.
async fn session(
    a: &Args,
    s: &Script,
    i: usize,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<bool, Fail> {
    let stream: Box<dyn Io> = Box::new(connect(a, i).await?);
    let mut resumed = false;
    let mut c = match (a.tls, tls) {
        (Tls::Implicit, Some(config)) => {
            let (stream, r) = handshake(a, config, stream).await?;
            resumed = r;
            conn(stream, a)
        }
        _ => conn(stream, a),
    };
    if c.reply("banner").await? != 220 {
        return Err(fail("banner", c.last_text()));
    }
    c.cmd("ehlo", &s.ehlo, 250).await?;
    if let (Tls::Starttls, Some(config)) = (a.tls, tls) {
        c.cmd("starttls", b"STARTTLS\r\n", 220).await?;
        let (stream, r) = handshake(a, config, c.r.into_inner()).await?;
        resumed = r;
        c = conn(stream, a);
        c.cmd("ehlo", &s.ehlo, 250).await?;
    }
    match a.mech {
        Mech::Plain => c.cmd("auth", &s.auth, 235).await?,
        m => authenticate(&mut c, a, m).await?,
    }
    if a.mode == Mode::Full {
        c.cmd("mail", &s.mail, 250).await?;
        c.cmd("rcpt", &s.rcpt, 250).await?;
        c.cmd("data", b"DATA\r\n", 354).await?;
        let msg = s.message_head.replace("{i}", &i.to_string());
        c.cmd("dot", msg.as_bytes(), 250).await?;
    }
    c.cmd("quit", b"QUIT\r\n", 221).await?;
    Ok(resumed)
}

/// The 334 reply's text, base64-decoded.
fn challenge(c: &Conn) -> Result<Vec<u8>, Fail> {
    let line = String::from_utf8_lossy(&c.line);
    let text = line.trim_end().get(4..).unwrap_or("");
    B64.decode(text)
        .map_err(|_| fail("auth", "challenge is not base64"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// One `key=value` or `key="value"` directive of a DIGEST-MD5 challenge.
fn directive(chal: &str, key: &str) -> Option<String> {
    chal.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Client side of the multi-step mechanisms (RFC 4954 framing).
async fn authenticate(c: &mut Conn, a: &Args, m: Mech) -> Result<(), Fail> {
    let line = |data: &[u8]| format!("{}\r\n", B64.encode(data)).into_bytes();
    c.cmd("auth", format!("AUTH {}\r\n", m.name()).as_bytes(), 334)
        .await?;
    match m {
        Mech::Plain => unreachable!("PLAIN goes with its initial response"),
        Mech::Login => {
            c.cmd("auth", &line(a.user.as_bytes()), 334).await?;
            c.cmd("auth", &line(a.password.as_bytes()), 235).await
        }
        Mech::CramMd5 => {
            use hmac::{KeyInit, Mac, SimpleHmac};
            let chal = challenge(c)?;
            let mut mac = SimpleHmac::<md5::Md5>::new_from_slice(a.password.as_bytes())
                .map_err(|_| fail("auth", "hmac key"))?;
            mac.update(&chal);
            let digest = hex(&mac.finalize().into_bytes());
            c.cmd(
                "auth",
                &line(format!("{} {digest}", a.user).as_bytes()),
                235,
            )
            .await
        }
        Mech::DigestMd5 => {
            let chal = String::from_utf8_lossy(&challenge(c)?).into_owned();
            let nonce = directive(&chal, "nonce").ok_or_else(|| fail("auth", "no nonce"))?;
            let realm = a
                .realm
                .clone()
                .or_else(|| directive(&chal, "realm"))
                .unwrap_or_default();
            let host = a.target.map(|t| t.ip().to_string()).unwrap_or_default();
            let uri = format!("smtp/{host}");
            let cnonce = hex(&md5(&[
                nonce.as_bytes(),
                &std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
                    .to_le_bytes(),
            ]));
            let nc = "00000001";
            let urp = md5(&[
                a.user.as_bytes(),
                b":",
                realm.as_bytes(),
                b":",
                a.password.as_bytes(),
            ]);
            let ha1 = hex(&md5(&[
                &urp,
                b":",
                nonce.as_bytes(),
                b":",
                cnonce.as_bytes(),
            ]));
            let kd = |a2: &str| {
                let ha2 = hex(&md5(&[a2.as_bytes()]));
                hex(&md5(&[
                    ha1.as_bytes(),
                    b":",
                    nonce.as_bytes(),
                    b":",
                    nc.as_bytes(),
                    b":",
                    cnonce.as_bytes(),
                    b":auth:",
                    ha2.as_bytes(),
                ]))
            };
            let response = kd(&format!("AUTHENTICATE:{uri}"));
            let msg = format!(
                "charset=utf-8,username=\"{}\",realm=\"{realm}\",nonce=\"{nonce}\",nc={nc},\
                 cnonce=\"{cnonce}\",digest-uri=\"{uri}\",qop=auth,response={response}",
                a.user
            );
            c.cmd("auth", &line(msg.as_bytes()), 334).await?;
            let rspauth = String::from_utf8_lossy(&challenge(c)?).into_owned();
            if rspauth != format!("rspauth={}", kd(&format!(":{uri}"))) {
                return Err(fail(
                    "auth",
                    "wrong rspauth: the server does not know the password",
                ));
            }
            c.cmd("auth", b"\r\n", 235).await
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: usize,
    /// Sessions over a resumed TLS session.
    resumed: usize,
    lat_us: Vec<u32>,
    /// When each successful session ended (µs since the start).
    done_at_us: Vec<u64>,
    fails: BTreeMap<String, usize>,
}

impl Tally {
    fn failed(&mut self, f: Fail) {
        *self
            .fails
            .entry(format!("{}: {}", f.stage, f.what))
            .or_default() += 1;
    }
    fn merge(&mut self, o: Tally) {
        self.ok += o.ok;
        self.resumed += o.resumed;
        self.lat_us.extend(o.lat_us);
        self.done_at_us.extend(o.done_at_us);
        for (k, v) in o.fails {
            *self.fails.entry(k).or_default() += v;
        }
    }
}

fn cpu_self_s() -> f64 {
    // SAFETY: getrusage fills a plain struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn pct(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = (sorted.len() - 1) as f64 * p;
    let (f, c) = (
        k.floor() as usize,
        (k.ceil() as usize).min(sorted.len() - 1),
    );
    let (lo, hi) = (f64::from(sorted[f]), f64::from(sorted[c]));
    Some((lo + (hi - lo) * (k - k.floor())) / 1000.0)
}

async fn run_load(a: Arc<Args>) -> serde_json::Value {
    let script = Arc::new(Script::new(&a));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + a.duration;
    let cpu0 = cpu_self_s();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency.min(a.sessions.max(1)) {
        let (a, script, next) = (Arc::clone(&a), Arc::clone(&script), Arc::clone(&next));
        let config = match a.tls {
            Tls::None => None,
            _ => match tls::client(a.ca.as_deref(), a.resume) {
                Ok(c) => Some(c),
                Err(e) => return serde_json::json!({ "error": e }),
            },
        };
        workers.spawn(async move {
            let mut t = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.sessions || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                match session(&a, &script, i, config.as_ref()).await {
                    Ok(resumed) => {
                        t.ok += 1;
                        t.resumed += usize::from(resumed);
                        let us = t0.elapsed().as_micros().min(u128::from(u32::MAX));
                        t.lat_us.push(us as u32);
                        let at = start.elapsed().as_micros().min(u128::from(u64::MAX));
                        t.done_at_us.push(at as u64);
                    }
                    Err(f) => t.failed(f),
                }
            }
            t
        });
    }
    let mut all = Tally::default();
    while let Some(t) = workers.join_next().await {
        match t {
            Ok(t) => all.merge(t),
            Err(e) => all.failed(fail("worker", e.to_string())),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let client_cpu = cpu_self_s() - cpu0;
    all.lat_us.sort_unstable();
    all.done_at_us.sort_unstable();
    // Steady rate: sessions completed between the 10th and the 90th
    // percentile of completion times, so a slow start or a tail of stuck
    // clients (waiting out a timeout) does not decide the figure.
    let steady = {
        let d = &all.done_at_us;
        let (i10, i90) = (d.len() / 10, d.len() * 9 / 10);
        (d.len() >= 20 && d[i90] > d[i10])
            .then(|| ((i90 - i10) as f64 / ((d[i90] - d[i10]) as f64 / 1e6) * 10.0).round() / 10.0)
    };
    let failures: usize = all.fails.values().sum();
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "label": a.label,
        "target": a.target.map(|t| t.to_string()),
        "mode": match a.mode { Mode::Full => "full", Mode::NoMail => "nomail", Mode::Idle => "idle" },
        "mech": a.mech.name(),
        "tls": a.tls.name(),
        "resume": a.resume,
        "resumed": all.resumed,
        "concurrency": a.concurrency,
        "sources": a.sources,
        "started": (all.ok + failures),
        "completed": all.ok,
        "failures": failures,
        "failure_kinds": all.fails,
        "elapsed_s": r3(elapsed),
        "sessions_per_s": if elapsed > 0.0 { (all.ok as f64 / elapsed * 10.0).round() / 10.0 } else { 0.0 },
        "steady_sessions_per_s": steady,
        "lat_p50_ms": pct(&all.lat_us, 0.50).map(r3),
        "lat_p90_ms": pct(&all.lat_us, 0.90).map(r3),
        "lat_p99_ms": pct(&all.lat_us, 0.99).map(r3),
        "lat_max_ms": all.lat_us.last().map(|&m| r3(f64::from(m) / 1000.0)),
        "client_cpu_s": r3(client_cpu),
        "client_cpu_ms_per_session": if all.ok > 0 { Some(r3(client_cpu * 1000.0 / all.ok as f64)) } else { None },
    })
}

/// Idle mode: hold `sessions` connections open after the greeting.
async fn run_idle(a: Arc<Args>) -> serde_json::Value {
    let start = Instant::now();
    let deadline = start + a.duration;
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..a.sessions {
        if Instant::now() >= deadline {
            break;
        }
        let permit = Arc::clone(&sem).acquire_owned().await.expect("semaphore");
        let a2 = Arc::clone(&a);
        set.spawn(async move {
            let stream = connect(&a2, i).await?;
            let mut c = Conn {
                r: BufReader::with_capacity(512, stream),
                line: Vec::new(),
                timeout: a2.timeout,
            };
            let code = c.reply("banner").await?;
            drop(permit);
            if code != 220 {
                return Err(fail("banner", c.last_text()));
            }
            Ok(c.r.into_inner())
        });
    }
    let mut held = Vec::with_capacity(a.sessions);
    let mut t = Tally::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(f)) => t.failed(f),
            Err(e) => t.failed(fail("task", e.to_string())),
        }
    }
    let setup = start.elapsed().as_secs_f64();
    let failures: usize = t.fails.values().sum();
    println!(
        "READY greeted={} failed={failures} setup_s={setup:.3}",
        held.len()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let hold_until = (Instant::now() + a.hold).min(deadline.max(Instant::now()));
    tokio::time::sleep_until(hold_until.into()).await;
    // Still open? A closed connection reads EOF (0 bytes) at once.
    let mut still_open = 0usize;
    let mut buf = [0u8; 64];
    for s in &held {
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => still_open += 1,
            _ => {}
        }
    }
    serde_json::json!({
        "label": a.label,
        "target": a.target.map(|t| t.to_string()),
        "mode": "idle",
        "requested": a.sessions,
        "greeted": held.len(),
        "failures": failures,
        "failure_kinds": t.fails,
        "setup_s": (setup * 1000.0).round() / 1000.0,
        "held_s": a.hold.as_secs_f64(),
        "still_open_at_end": still_open,
    })
}

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("smtp_load: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if args.target.is_none() {
        eprintln!("smtp_load: no --target given; nothing to do (see --help)");
        return;
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let a = Arc::new(args);
    let result = rt.block_on(async {
        match a.mode {
            Mode::Idle => run_idle(Arc::clone(&a)).await,
            _ => run_load(Arc::clone(&a)).await,
        }
    });
    let text = result.to_string();
    if let Some(path) = &a.json
        && let Err(e) = std::fs::write(path, format!("{text}\n"))
    {
        eprintln!("smtp_load: {path}: {e}");
        std::process::exit(1);
    }
    if a.mode == Mode::Idle {
        println!("{text}");
    } else {
        let g = |k: &str| result.get(k).cloned().unwrap_or_default();
        println!(
            "{} mode={} c={} sessions={} ok={} failures={} elapsed={}s  {} sessions/s (steady {})  p50={} ms p99={} ms max={} ms  client_cpu={} ms/session",
            a.target.map(|t| t.to_string()).unwrap_or_default(),
            g("mode").as_str().unwrap_or_default(),
            a.concurrency,
            g("started"),
            g("completed"),
            g("failures"),
            g("elapsed_s"),
            g("sessions_per_s"),
            g("steady_sessions_per_s"),
            g("lat_p50_ms"),
            g("lat_p99_ms"),
            g("lat_max_ms"),
            g("client_cpu_ms_per_session"),
        );
        if let Some(k) = result.get("failure_kinds").and_then(|k| k.as_object())
            && !k.is_empty()
        {
            println!("failures: {}", serde_json::Value::Object(k.clone()));
        }
    }
    let failed = result.get("failures").and_then(|f| f.as_u64()).unwrap_or(0);
    if failed > 0 {
        std::process::exit(3);
    }
}
