//! The Debian package and the systemd side of `smtpd-auth`: `cargo deb`
//! builds the package (file list, control fields, lintian), the units pass
//! `systemd-analyze verify`, and the real binary, started by
//! `systemd-socket-activate` with named sockets, serves a Dovecot client
//! and an SMTP client on them without binding anything itself, and tells
//! its `NOTIFY_SOCKET` READY, RELOADING, READY, STOPPING.
//!
//! Needs the packages `systemd` (systemd-socket-activate, systemd-analyze),
//! `lintian`, `dpkg-dev`'s dpkg-deb (in dpkg) and `cargo install cargo-deb`.
//! Nothing is installed on the machine here (tests/install.rs, a test binary
//! of its own so that nothing runs beside it, installs and purges it).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common;
use crate::common::daemon::free_port;
use crate::common::deb::{deb, dpkg_deb, files};
use crate::common::{Dovecot, Scratch, need};

const SMTPD: &str = env!("CARGO_BIN_EXE_smtpd-auth");
const WAIT: Duration = Duration::from_secs(30);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ------------------------------------------------------------------ package

fn package_holds_the_tools_pages_completions_units_and_configuration() {
    need("dpkg-deb", "dpkg");
    let files = files();
    let tools = ["saslpasswd", "sasldblistusers", "smtpd-auth"];
    let mut want = Vec::new();
    for t in tools {
        want.push(format!("/usr/sbin/{t}"));
        // Section 8, compressed.
        want.push(format!("/usr/share/man/man8/{t}.8.gz"));
        // Debian's vendor paths, where the shells look without setup.
        want.push(format!("/usr/share/bash-completion/completions/{t}"));
        want.push(format!("/usr/share/zsh/vendor-completions/_{t}"));
        want.push(format!("/usr/share/fish/vendor_completions.d/{t}.fish"));
    }
    for u in [
        "smtpd-auth.service",
        "smtpd-auth.socket",
        "smtpd-auth-submission.socket",
        "smtpd-auth-submissions.socket",
    ] {
        want.push(format!("/usr/lib/systemd/system/{u}"));
    }
    for f in [
        "/etc/smtpd-auth/main.cf",
        "/etc/fail2ban/filter.d/smtpd-auth.conf",
        "/etc/fail2ban/jail.d/smtpd-auth.conf",
        "/usr/share/doc/sasldb/copyright",
        "/usr/share/doc/sasldb/changelog.Debian.gz",
    ] {
        want.push(f.to_string());
    }
    for w in &want {
        assert!(
            files.contains(w),
            "{w} missing from the package: {files:#?}"
        );
    }
    // Executables are executable, nothing else is.
    for l in dpkg_deb(&["-c"]).lines().filter(|l| l.starts_with('-')) {
        let exec = l.starts_with("-rwxr-xr-x");
        assert_eq!(exec, l.contains("/usr/sbin/"), "{l}");
    }
}

fn package_does_not_clash_with_sasl2_bin() {
    need("dpkg-deb", "dpkg");
    let out = Command::new("dpkg")
        .args(["-L", "sasl2-bin"])
        .output()
        .expect("dpkg");
    assert!(
        out.status.success(),
        "sasl2-bin not installed (apt-get install sasl2-bin): {}",
        common::stderr(&out)
    );
    let theirs: Vec<String> = common::stdout(&out).lines().map(str::to_string).collect();
    assert!(theirs.iter().any(|p| p == "/usr/sbin/saslpasswd2"));
    for f in files() {
        assert!(!theirs.contains(&f), "{f} is also in sasl2-bin");
    }
}

fn control_fields_and_conffiles() {
    need("dpkg-deb", "dpkg");
    let field = |name: &str| {
        dpkg_deb(&["-f"])
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    assert_eq!(field("Package").as_deref(), Some("sasldb"));
    assert_eq!(field("Section").as_deref(), Some("mail"));
    assert_eq!(field("Architecture").as_deref(), Some("amd64"));
    let depends = field("Depends").unwrap_or_default();
    assert!(depends.contains("libc6"), "Depends: {depends}");
    assert_eq!(field("Recommends").as_deref(), Some("postfix"));
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let conffiles = std::fs::read_to_string(dir.path().join("conffiles")).unwrap();
    for c in [
        "/etc/smtpd-auth/main.cf",
        "/etc/fail2ban/filter.d/smtpd-auth.conf",
        "/etc/fail2ban/jail.d/smtpd-auth.conf",
    ] {
        assert!(
            conffiles.lines().any(|l| l == c),
            "{c} not a conffile: {conffiles}"
        );
    }
    // The Dovecot socket is enabled on install; the SMTP ports are not.
    let postinst = std::fs::read_to_string(dir.path().join("postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper enable smtpd-auth.socket"));
    // cargo-deb's "don't enable" snippet re-enables a unit only where the
    // admin had it enabled before (`debian-installed`); the "enable" one
    // does not ask.
    for u in [
        "smtpd-auth-submission.socket",
        "smtpd-auth-submissions.socket",
    ] {
        assert!(
            postinst.contains(&format!("if deb-systemd-helper debian-installed {u}")),
            "{u} enabled on install:\n{postinst}"
        );
    }
    assert!(!postinst.contains("debian-installed smtpd-auth.socket"));
    let postrm = std::fs::read_to_string(dir.path().join("postrm")).unwrap();
    assert!(postrm.contains("rm -rf /var/lib/smtpd-auth"), "{postrm}");
}

fn lintian_reports_no_errors() {
    need("lintian", "lintian");
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0"])
        .arg(deb())
        .output()
        .expect("lintian (apt-get install lintian)");
    let report = common::stdout(&out);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{report}");
}

fn shipped_configuration_starts_nothing_dangerous() {
    // Uncommented settings only: no listener beyond loopback, no socket.
    let text = std::fs::read_to_string(root().join("dist/etc/main.cf")).unwrap();
    let set: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    for l in &set {
        assert!(
            !l.starts_with("smtpd_listen") && !l.contains("_socket"),
            "main.cf sets {l}"
        );
    }
    let jail =
        std::fs::read_to_string(root().join("dist/fail2ban/jail.d/smtpd-auth.conf")).unwrap();
    assert!(
        jail.lines().any(|l| l.replace(' ', "") == "enabled=false"),
        "{jail}"
    );
    // And smtpd-auth reads it as it is.
    let out = Command::new(SMTPD)
        .args([
            "-c",
            root().join("dist/etc/main.cf").to_str().unwrap(),
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
}

/// Without -c the file comes from SMTPD_AUTH_CONFIG (none when empty, as
/// the test harness sets it), else /etc/smtpd-auth/main.cf.
fn the_configuration_file_may_come_from_the_environment() {
    let s = Scratch::new();
    let cf = s.path("env.cf");
    std::fs::write(&cf, "myhostname = from-env.example\n").unwrap();
    let print = |value: &std::path::Path| {
        let out = Command::new(SMTPD)
            .env("SMTPD_AUTH_CONFIG", value)
            .arg("--print-config")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
        common::stdout(&out)
    };
    assert!(print(&cf).contains("myhostname = from-env.example"));
    assert!(!print(std::path::Path::new("")).contains("myhostname"));
    // A file that is not there is an error, not silence.
    let out = Command::new(SMTPD)
        .env("SMTPD_AUTH_CONFIG", s.path("missing.cf"))
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("missing.cf"),
        "{}",
        common::stderr(&out)
    );
}

// -------------------------------------------------------------------- units

/// The units in a scratch directory, ExecStart pointing at the binary
/// under test (systemd-analyze checks that it exists and is executable).
fn units(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("dist/systemd")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("/usr/sbin/smtpd-auth", SMTPD);
        let to = dir.join(p.file_name().unwrap());
        std::fs::write(&to, text).unwrap();
        out.push(to);
    }
    out.sort();
    out
}

fn units_pass_systemd_analyze_verify() {
    need("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let units = units(dir.path());
    assert_eq!(units.len(), 4, "{units:?}");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        common::stdout(&out),
        common::stderr(&out)
    );
}

fn service_exposure_is_below_two() {
    need("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let service = units(dir.path())
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "service"))
        .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&service)
        .output()
        .expect("systemd-analyze");
    let text = common::stdout(&out);
    let level = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for smtpd-auth.service: "))
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| panic!("no exposure level:\n{text}{}", common::stderr(&out)));
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    assert!(score < 2.0 && level.contains("OK"), "exposure {level}");
}

// -------------------------------------------------------- socket activation

/// The test's own NOTIFY_SOCKET, an abstract name (so the daemon reaches it
/// after dropping root, as it reaches systemd's).
struct Notify {
    sock: UnixDatagram,
    name: String,
}

impl Notify {
    fn new(tag: &str) -> Notify {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("sasldb-test-notify-{}-{tag}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        Notify {
            sock,
            name: format!("@{name}"),
        }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// `smtpd-auth` under `systemd-socket-activate`, which listens on the
/// sockets, execs the daemon at the first connection and hands them over.
struct Activated {
    child: Child,
    log: PathBuf,
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn activate(s: &Scratch, sockets: &[(&str, &str)], notify: &Notify, extra: &[String]) -> Activated {
    need("systemd-socket-activate", "systemd");
    let db = s.users(&[("alice", "s3cret")]);
    let log = s.path("smtpd.log");
    let mut cmd = s.cmd("systemd-socket-activate");
    for (addr, _) in sockets {
        cmd.arg("-l").arg(addr);
    }
    let names: Vec<&str> = sockets.iter().map(|(_, n)| *n).collect();
    cmd.arg(format!("--fdname={}", names.join(":")))
        .args(["-E", "NOTIFY_SOCKET", "-E", "SASL_CONF_PATH"])
        .env("NOTIFY_SOCKET", &notify.name)
        .arg(SMTPD)
        .args(["-o", &format!("sasldb_path={}", db.display())])
        .args(["-o", "smtpd_sasl_local_domain=example.org"])
        .args([
            "-o",
            &format!("smtpd_auth_state_dir={}", s.path("state").display()),
        ])
        .args(["-o", "smtpd_tls_security_level=none"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = cmd
        .spawn()
        .expect("systemd-socket-activate (apt-get install systemd)");
    Activated { child, log }
}

fn wait_for_path(p: &Path) {
    let end = std::time::Instant::now() + WAIT;
    while !p.exists() {
        assert!(
            std::time::Instant::now() < end,
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect_tcp(port: u16) -> TcpStream {
    let end = std::time::Instant::now() + WAIT;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(t) => return t,
            Err(e) if std::time::Instant::now() > end => panic!("connect {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Socket inodes of listening sockets in the process's network namespace.
fn listening_inodes(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default();
        for l in text.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.get(3) == Some(&"0A") {
                out.extend(cols.get(9).map(|s| s.to_string()));
            }
        }
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    for l in text.lines().skip(1) {
        let cols: Vec<&str> = l.split_whitespace().collect();
        // Flags __SO_ACCEPTCON: a listening socket.
        if cols.get(3) == Some(&"00010000") {
            out.extend(cols.get(6).map(|s| s.to_string()));
        }
    }
    out
}

/// The process's listening sockets, by descriptor number.
fn listening_fds(pid: u32) -> Vec<u32> {
    let listening = listening_inodes(pid);
    let mut fds = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let e = e.unwrap();
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'))
            && listening.iter().any(|i| i == inode)
        {
            fds.push(e.file_name().to_string_lossy().parse().unwrap());
        }
    }
    fds.sort();
    fds
}

fn smtp_line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).expect("SMTP reply");
    l
}

/// EHLO until the last line, then AUTH PLAIN; the AUTH reply.
fn smtp_auth(stream: TcpStream, user: &str, pw: &str) -> String {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    assert!(smtp_line(&mut r).starts_with("220 "));
    w.write_all(b"EHLO client.example\r\n").unwrap();
    while smtp_line(&mut r).starts_with("250-") {}
    let resp = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("\0{user}\0{pw}"),
    );
    w.write_all(format!("AUTH PLAIN {resp}\r\n").as_bytes())
        .unwrap();
    let reply = smtp_line(&mut r);
    w.write_all(b"QUIT\r\n").unwrap();
    reply
}

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn socket_activated_daemon_serves_named_sockets_binds_nothing_and_notifies() {
    let s = Scratch::new();
    let auth = s.path("auth");
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let notify = Notify::new("activated");
    // Configured listeners that socket activation must leave alone.
    let configured_socket = s.path("configured-auth");
    let configured_port = free_port();
    let extra = [
        "-o".to_string(),
        format!("dovecot_auth_socket={}", configured_socket.display()),
        "-o".to_string(),
        format!("smtpd_listen=127.0.0.1:{configured_port}"),
    ];
    let mut d = activate(
        &s,
        &[(auth.to_str().unwrap(), "dovecot"), (&tcp, "submission")],
        &notify,
        &extra,
    );
    let pid = d.child.id();
    wait_for_path(&auth);
    // The first connection makes systemd-socket-activate exec the daemon;
    // it waits in the listen queue meanwhile.
    let first = connect_tcp(port);
    let ready = notify.next();
    assert_eq!(ready, "READY=1\nSTATUS=serving\n");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        log.contains(&format!("SMTP listener on {tcp} (inherited)")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "dovecot auth socket {} (inherited) ready",
            auth.display()
        )),
        "{log}"
    );
    assert!(log.contains("socket activation: not binding"), "{log}");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "smtpd-auth"
    );

    // Both clients are served through the inherited sockets.
    assert!(
        smtp_auth(first, "alice", "s3cret").starts_with("235 "),
        "{}",
        std::fs::read_to_string(&d.log).unwrap()
    );
    assert!(smtp_auth(connect_tcp(port), "alice", "wrong").starts_with("535 "));
    let mut dc = Dovecot::connect(&auth);
    assert!(
        dc.plain(1, "192.0.2.7", "alice", "s3cret")
            .starts_with("OK\t1")
    );

    // The only listening sockets it holds are the two it was handed.
    assert_eq!(listening_fds(pid), vec![3, 4]);
    assert!(!configured_socket.exists());
    assert!(TcpStream::connect(("127.0.0.1", configured_port)).is_err());

    // SIGHUP: RELOADING=1 with the time, then READY=1 again.
    kill(pid, "HUP");
    let reloading = notify.next();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.split('\n').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(usec.is_some_and(|u| u > 0), "{reloading:?}");
    assert_eq!(notify.next(), "READY=1\nSTATUS=serving\n");

    // SIGTERM: STOPPING=1, and the daemon exits.
    kill(pid, "TERM");
    assert_eq!(notify.next(), "STOPPING=1\nSTATUS=stopping\n");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn an_unknown_socket_name_is_a_clear_error() {
    let s = Scratch::new();
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let notify = Notify::new("badname");
    let mut d = activate(&s, &[(&tcp, "smtpd-auth.socket")], &notify, &[]);
    let _first = connect_tcp(port);
    let status = d.child.wait().unwrap();
    assert!(!status.success());
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(
        log.contains("named \"smtpd-auth.socket\"") && log.contains("FileDescriptorName="),
        "{log}"
    );
}

fn without_socket_activation_it_binds_and_still_notifies() {
    let s = Scratch::new();
    let db = s.users(&[("alice", "s3cret")]);
    let port = free_port();
    let notify = Notify::new("plain");
    let log = s.path("smtpd.log");
    let mut child = s
        .cmd(SMTPD)
        .env("NOTIFY_SOCKET", &notify.name)
        .args(["-o", &format!("sasldb_path={}", db.display())])
        .args([
            "-o",
            &format!("smtpd_auth_state_dir={}", s.path("state").display()),
        ])
        .args(["-o", "smtpd_tls_security_level=none"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert_eq!(notify.next(), "READY=1\nSTATUS=serving\n");
    // Listening by the time it said so.
    let t = TcpStream::connect(("127.0.0.1", port)).expect("listening when READY");
    drop(t);
    kill(child.id(), "TERM");
    assert_eq!(notify.next(), "STOPPING=1\nSTATUS=stopping\n");
    assert!(child.wait().unwrap().success());
}

// ----------------------------------------------------------------- fail2ban

/// fail2ban's view of its configuration with the shipped filter and jail
/// added (`fail2ban-client -d` reads and prints it, starting nothing).
fn fail2ban_dump(enable: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fail2ban");
    let ok = Command::new("cp")
        .args(["-r", "/etc/fail2ban"])
        .arg(&conf)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "/etc/fail2ban (apt-get install fail2ban)");
    std::fs::copy(
        root().join("dist/fail2ban/filter.d/smtpd-auth.conf"),
        conf.join("filter.d/smtpd-auth.conf"),
    )
    .unwrap();
    let mut jail =
        std::fs::read_to_string(root().join("dist/fail2ban/jail.d/smtpd-auth.conf")).unwrap();
    if enable {
        jail = jail.replace("enabled  = false", "enabled  = true");
    }
    std::fs::write(conf.join("jail.d/smtpd-auth.conf"), jail).unwrap();
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(&conf)
        .arg("-d")
        .output()
        .expect("fail2ban-client");
    assert!(out.status.success(), "{}", common::stderr(&out));
    common::stdout(&out)
}

fn fail2ban_jail_is_off_as_shipped_and_loads_once_enabled() {
    need("fail2ban-client", "fail2ban");
    assert!(!fail2ban_dump(false).contains("['add', 'smtpd-auth'"));
    let on = fail2ban_dump(true);
    assert!(on.contains("['add', 'smtpd-auth'"), "{on}");
    assert!(on.contains("['start', 'smtpd-auth']"), "{on}");
    assert!(on.contains("SASL [A-Z0-9-]+ authentication failed"), "{on}");
}

crate::tests!(
    package_holds_the_tools_pages_completions_units_and_configuration,
    package_does_not_clash_with_sasl2_bin,
    control_fields_and_conffiles,
    lintian_reports_no_errors,
    shipped_configuration_starts_nothing_dangerous,
    the_configuration_file_may_come_from_the_environment,
    units_pass_systemd_analyze_verify,
    service_exposure_is_below_two,
    socket_activated_daemon_serves_named_sockets_binds_nothing_and_notifies,
    an_unknown_socket_name_is_a_clear_error,
    without_socket_activation_it_binds_and_still_notifies,
    fail2ban_jail_is_off_as_shipped_and_loads_once_enabled,
);
