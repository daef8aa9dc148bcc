//! A throwaway PostgreSQL (Debian's `postgresql` package) for one test: `initdb` as the
//! `postgres` user in a scratch directory, `postgres` on 127.0.0.1 and a free port with its
//! socket in that directory, a role `sasl` with a password and a database `sasl`. Dropping
//! it stops the server by PID with SIGINT (a fast shutdown: a smart one waits forever on a
//! LISTEN connection) and removes the directory. The machine's own cluster is never used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::daemon::{WAIT, free_port, wait_for};
use super::harness::missing;

/// Where Debian's `postgresql-15` puts the server binaries (not on PATH).
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The password of the `sasl` role (test-only).
pub const PASSWORD: &str = "pg-test-secret";

/// The test starts its own PostgreSQL: skipped (or failed under CI) without the package,
/// or without root (initdb must run as the `postgres` user).
pub fn need_postgres() {
    for tool in ["initdb", "postgres"] {
        if !Path::new(BIN).join(tool).exists() {
            missing(&format!(
                "{BIN}/{tool} (Debian package postgresql: apt-get install postgresql)"
            ));
        }
    }
    super::harness::need("psql", "postgresql-client");
    super::harness::need_root();
}

/// A test CA and a server certificate it issued (PEM), for `ssl=on`.
pub struct TlsFiles {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TlsFiles {
    /// A fresh CA and a server certificate for `names` (host names or IP addresses).
    pub fn new(names: &[&str]) -> TlsFiles {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "sasldb test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&key, &Issuer::new(ca, ca_key))
            .expect("server cert");
        TlsFiles {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// `program` run as the `postgres` user directly (no runuser in between, so a signal to
/// the child's PID reaches the server itself).
fn as_postgres(program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpwnam with a NUL-terminated literal; the record is copied at once.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        missing("the `postgres` user (Debian package postgresql: apt-get install postgresql)");
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    let mut c = Command::new(program);
    c.uid(uid).gid(gid).env("HOME", "/tmp").current_dir("/");
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    /// Start a fresh cluster and wait until it accepts the `sasl` role.
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// [`Postgres::start`] with `ssl=on` and this server certificate
    /// (TLS optional for clients, as PostgreSQL's default `host` lines allow).
    pub fn start_tls(tls: &TlsFiles) -> Postgres {
        Postgres::start_with(Some(tls))
    }

    fn start_with(tls: Option<&TlsFiles>) -> Postgres {
        need_postgres();
        let dir = tempfile::Builder::new()
            .prefix("sasldb-pg.")
            .tempdir()
            .expect("temp dir");
        // The postgres user must reach its data directory through ours.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, "superuser-not-used\n").expect("pwfile");
        let chown = |p: &Path| {
            ok(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(p)
                    .output()
                    .expect("chown"),
                "chown",
            );
        };
        chown(dir.path());
        chown(&pwfile);
        ok(
            as_postgres(&format!("{BIN}/initdb"))
                .args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256", "-D"])
                .arg(&data)
                .arg("--pwfile")
                .arg(&pwfile)
                .output()
                .expect("initdb"),
            "initdb",
        );
        if let Some(tls) = tls {
            let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::write(&cert, &tls.cert_pem).expect("server.crt");
            std::fs::write(&key, &tls.key_pem).expect("server.key");
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            chown(&cert);
            chown(&key);
            // In the cluster's own postgresql.conf, so every start of it has them;
            // log_connections: the log says which connections were encrypted.
            use std::io::Write;
            let mut conf = std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .expect("postgresql.conf");
            write!(
                conf,
                "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nlog_connections = on\n",
                cert.display(),
                key.display()
            )
            .expect("write postgresql.conf");
        }
        let port = free_port();
        let mut pg = Postgres {
            dir,
            port,
            child: None,
        };
        pg.run_server();
        for sql in [
            format!("CREATE ROLE sasl LOGIN PASSWORD '{PASSWORD}'"),
            "CREATE DATABASE sasl OWNER sasl".to_string(),
        ] {
            ok(pg.psql_as_postgres("postgres", &sql), &sql);
        }
        pg
    }

    /// Start the server on the cluster's data directory and port, and wait
    /// until it accepts connections; its log is appended to.
    fn run_server(&mut self) {
        let path = self.dir.path().join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("log");
        ok(
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&path)
                .output()
                .expect("chown"),
            "chown",
        );
        let child = as_postgres(&format!("{BIN}/postgres"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .args(["-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
        wait_for(WAIT, "PostgreSQL to accept connections", || {
            self.psql_as_postgres("postgres", "SELECT 1")
                .status
                .success()
                .then_some(())
        });
    }

    /// Start it again after [`Postgres::stop`]: same data directory, same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is still running");
        self.run_server();
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// `postgresql://sasl:PASSWORD@127.0.0.1:PORT/sasl`.
    pub fn url(&self) -> String {
        format!("postgresql://sasl:{PASSWORD}@127.0.0.1:{}/sasl", self.port)
    }

    /// The URL without a password (for PGPASSWORD / ~/.pgpass tests).
    pub fn url_without_password(&self) -> String {
        format!("postgresql://sasl@127.0.0.1:{}/sasl", self.port)
    }

    fn psql_as_postgres(&self, db: &str, sql: &str) -> Output {
        as_postgres("psql")
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-d",
                db,
                "-X",
                "-q",
                "-A",
                "-t",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql")
    }

    /// Run SQL as the superuser in database `sasl`; its output.
    pub fn superuser(&self, sql: &str) -> String {
        let out = ok(self.psql_as_postgres("sasl", sql), sql);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a query in database `sasl`; rows as `a|b|c` lines, sorted by the query.
    pub fn query(&self, sql: &str) -> String {
        self.superuser(sql)
    }

    /// Every row of table sasldb as `authid|realm|property|value` (NULL as `<null>`).
    pub fn rows(&self) -> Vec<String> {
        self.query(
            "SELECT authid, realm, property, coalesce(value, '<null>') FROM sasldb \
             ORDER BY authid COLLATE \"C\", realm COLLATE \"C\", property COLLATE \"C\"",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Fast shutdown by PID (SIGINT), waiting for the server to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix_kill(child.id(), libc::SIGINT);
        let end = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn nix_kill(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill has no memory preconditions; the pid is our own child.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
