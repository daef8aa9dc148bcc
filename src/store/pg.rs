//! The PostgreSQL backend: one table in the layout Cyrus SASL's `sql` auxprop
//! plugin reads, so Postfix + libsasl2-modules-sql and our tools share it.
//!
//! `sasldb (authid, realm, property, value)`, a NULL value meaning absent.
//! Reads never see NULL rows (Cyrus would hand them over as an empty
//! secret). Writes run in one transaction that locks out other writers
//! (readers go on): the affected accounts are read once, the changes worked
//! out in memory, then sent with one binary `COPY` into a temporary table and
//! applied by one `MERGE` (PostgreSQL 15 or later). A statement-level trigger
//! sends `NOTIFY sasldb` on every change, whoever makes it.
//!
//! The text columns hold UTF-8 only: a name or value that is not valid UTF-8
//! (or holds NUL) is refused with an error naming the account, never altered.
//! TLS to the database follows libpq's `sslmode` and `sslrootcert`
//! ([`super::pg_tls`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use tokio_postgres::Config;
use tokio_postgres::config::{Host, TargetSessionAttrs};

use super::pg_tls;
use super::{Account, Result, StoreError};

/// The channel the trigger notifies on every change.
pub const CHANNEL: &str = "sasldb";

/// What `saslpasswd --init-schema` runs (idempotent).
pub const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS sasldb (authid text NOT NULL, realm text NOT NULL, property text NOT NULL, value text, PRIMARY KEY (authid, realm, property));
CREATE OR REPLACE FUNCTION sasldb_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('sasldb', ''); RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER sasldb_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sasldb FOR EACH STATEMENT EXECUTE FUNCTION sasldb_notify();
CREATE INDEX IF NOT EXISTS sasldb_folded ON sasldb (lower(authid), lower(realm));";

/// A bound on connecting, so a dead host fails the command instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a store argument names a PostgreSQL database rather than a file.
pub fn is_url(s: &[u8]) -> bool {
    s.starts_with(b"postgresql://") || s.starts_with(b"postgres://")
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--init-schema`: the table need not exist yet.
    Schema,
    Read,
    Write,
    /// `--doctor`: any host that answers, table or not.
    Inspect,
}

/// A connection to the sasldb table.
pub struct PgStore {
    /// The URL without its password, for messages.
    target: String,
    client: RefCell<Client>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// `postgresql://user@host1:port1,host2:port2/db`: what messages show of a URL.
pub fn redacted(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let name = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(p) => p.display().to_string(),
            };
            // One port for all hosts, or one per host (libpq's rule).
            match ports.get(i).or(ports.first().filter(|_| ports.len() == 1)) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    format!(
        "postgresql://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// [`redacted`] of a URL as given; one that does not parse is not shown.
pub fn redacted_url(url: &str) -> String {
    pg_tls::split_url(url)
        .ok()
        .and_then(|(u, _)| Config::from_str(&u).ok())
        .map_or_else(|| "PostgreSQL URL".to_string(), |c| redacted(&c))
}

/// The URL parsed with libpq's defaults filled in (host `localhost`, user
/// `PGUSER`/`USER`, password `PGPASSWORD`/pgpass, a connect timeout), its
/// redacted form for messages, and the TLS connector its `sslmode` and
/// `sslrootcert` ask for: what the tools and the daemon's pool connect with.
pub fn client_config(url: &str, mode: Mode) -> Result<(Config, String, pg_tls::MakeRustlsConnect)> {
    let bad = |message: String| StoreError::Pg {
        target: "PostgreSQL URL".into(),
        message,
    };
    let (driver_url, tls) = pg_tls::split_url(url).map_err(|e| bad(e.to_string()))?;
    // The parser names the bad option, never the URL's text.
    let mut config =
        Config::from_str(&driver_url).map_err(|e| bad(format!("cannot parse: {e}")))?;
    config.ssl_mode(tls.mode.driver());
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        config.user(&user);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // Writers (and `--init-schema`) given several hosts and no
    // `target_session_attrs` take the first that accepts writes.
    if matches!(mode, Mode::Write | Mode::Schema)
        && config.get_hosts().len() > 1
        && !url.contains("target_session_attrs")
    {
        config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    default_password(&mut config);
    let target = redacted(&config);
    let connector = pg_tls::connector(&tls).map_err(|e| StoreError::Pg {
        target: target.clone(),
        message: e.to_string(),
    })?;
    Ok((config, target, connector))
}

pub(super) fn pg_err(target: &str, what: &str, e: &postgres::Error) -> StoreError {
    // The driver's messages name the server's reason (and never the password).
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            // The driver's own text is generic ("error performing TLS
            // handshake"); the reason is in its sources.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let said = cause.to_string();
                if !text.contains(&said) {
                    text = format!("{text}: {said}");
                }
                source = cause.source();
            }
            text
        }
    };
    StoreError::Pg {
        target: target.to_string(),
        message: format!("{what}: {detail}"),
    }
}

fn text<'a>(account: &Account, what: &str, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| StoreError::NotText {
            account: account.clone(),
            what: what.to_string(),
        })
}

/// One `~/.pgpass` line's fields: `\` escapes `:` and `\`.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The password libpq would take from a pgpass file for this host, port,
/// database and user (first matching line wins; `*` is a wildcard).
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(pgpass_fields)
        .find(|f| {
            f.len() == 5
                && [host, port.as_str(), db, user]
                    .iter()
                    .zip(f.iter())
                    .all(|(want, got)| got == "*" || got == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// Fill in the password as libpq's users expect: `PGPASSWORD`, else the
/// pgpass file (`PGPASSFILE`, else `~/.pgpass`) for the first host.
fn default_password(config: &mut Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(pw) = std::env::var_os("PGPASSWORD") {
        use std::os::unix::ffi::OsStrExt;
        config.password(pw.as_bytes());
        return;
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")));
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return;
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("").to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    if let Some(pw) = pgpass_lookup(&text, &host, port, &db, &user) {
        config.password(pw);
    }
}

/// One account's properties with a value, in byte order.
pub(super) const PROPERTIES: &str = "SELECT property, value FROM sasldb \
     WHERE authid = $1 AND realm = $2 AND value IS NOT NULL ORDER BY property COLLATE \"C\"";

/// The account's name and realm as text; `None`: it cannot be stored.
pub(super) fn names(account: &Account) -> Option<(&str, &str)> {
    Some((
        std::str::from_utf8(&account.authid).ok()?,
        std::str::from_utf8(&account.realm).ok()?,
    ))
}

/// A property's name and value.
pub type Property = (Vec<u8>, Vec<u8>);

/// The rows of [`PROPERTIES`] as (property, value) bytes. A column that is
/// not text (a table altered by hand) is an error, not a panic.
pub(super) fn property_pairs(
    rows: &[postgres::Row],
) -> std::result::Result<Vec<Property>, postgres::Error> {
    rows.iter()
        .map(|r| {
            let p: &str = r.try_get(0)?;
            let v: &str = r.try_get(1)?;
            Ok((p.as_bytes().to_vec(), v.as_bytes().to_vec()))
        })
        .collect()
}

impl PgStore {
    /// Parse the URL and connect. Writers (and `--init-schema`) given
    /// several hosts and no `target_session_attrs` take the first that
    /// accepts writes, as `target_session_attrs=read-write` would; every
    /// mode but [`Mode::Schema`] and [`Mode::Inspect`] fails unless table
    /// sasldb exists.
    pub fn connect(url: &str, mode: Mode) -> Result<PgStore> {
        let (config, target, connector) = client_config(url, mode)?;
        let client = postgres::Config::from(config)
            .connect(connector)
            .map_err(|e| pg_err(&target, "cannot connect", &e))?;
        let store = PgStore {
            target,
            client: RefCell::new(client),
        };
        store.check_server(mode)?;
        Ok(store)
    }

    /// The URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn err(&self, what: &str, e: &postgres::Error) -> StoreError {
        pg_err(&self.target, what, e)
    }

    /// One row of a query that always returns one.
    fn one(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<postgres::Row> {
        self.client
            .borrow_mut()
            .query_one(sql, params)
            .map_err(|e| self.err(what, &e))
    }

    /// Every mode but `--init-schema` needs the table; writes end in
    /// `MERGE`, which PostgreSQL has since 15: say so up front rather than
    /// with a syntax error.
    fn check_server(&self, mode: Mode) -> Result<()> {
        let row = self.one(
            "checking table sasldb",
            "SELECT to_regclass('sasldb') IS NOT NULL, current_setting('server_version_num')::int",
            &[],
        )?;
        let (table, version): (bool, i32) = (row.get(0), row.get(1));
        let message = if matches!(mode, Mode::Read | Mode::Write) && !table {
            "table sasldb does not exist; create it with saslpasswd --init-schema -f URL".into()
        } else if mode == Mode::Write && version < 150_000 {
            format!(
                "writing needs PostgreSQL 15 or later (MERGE); the server is version {}.{}",
                version / 10_000,
                version % 10_000 / 100
            )
        } else {
            return Ok(());
        };
        Err(StoreError::Pg {
            target: self.target.clone(),
            message,
        })
    }

    /// Rows of one query as text (NULL as None), for inspection (the doctor).
    pub fn text_rows(&self, what: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self
            .client
            .borrow_mut()
            .simple_query(sql)
            .map_err(|e| self.err(what, &e))?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Create the table and the NOTIFY trigger (`saslpasswd --init-schema`).
    pub fn init_schema(&self) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(SCHEMA)
            .map_err(|e| self.err("creating the schema", &e))
    }

    /// All properties of one account with a value, in byte order.
    pub fn properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some((user, realm)) = names(account) else {
            return Ok(Vec::new()); // such a name cannot be stored
        };
        let rows = self
            .client
            .borrow_mut()
            .query(PROPERTIES, &[&user, &realm])
            .map_err(|e| self.err("reading", &e))?;
        property_pairs(&rows).map_err(|e| self.err("reading", &e))
    }

    /// Whether any account with a value is in `realm`.
    pub fn realm_known(&self, realm: &[u8]) -> Result<bool> {
        let Ok(realm) = std::str::from_utf8(realm) else {
            return Ok(false);
        };
        let row = self.one(
            "reading",
            "SELECT EXISTS (SELECT 1 FROM sasldb WHERE realm = $1 AND value IS NOT NULL)",
            &[&realm],
        )?;
        Ok(row.get(0))
    }

    /// Every (authid, realm, property, value) with a value, in the order an
    /// LMDB sasldb lists its keys (bytewise).
    pub fn entries(&self) -> Result<Vec<[String; 4]>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT authid, realm, property, value FROM sasldb WHERE value IS NOT NULL \
                 ORDER BY authid COLLATE \"C\", realm COLLATE \"C\", property COLLATE \"C\"",
                &[],
            )
            .map_err(|e| self.err("reading", &e))?;
        Ok(rows
            .iter()
            .map(|r| [r.get(0), r.get(1), r.get(2), r.get(3)])
            .collect())
    }

    /// Run `f` over the current properties of `accounts` in one transaction
    /// that excludes other writers; commit what it changed when `commit`,
    /// else roll back (a dry run).
    pub fn write<T>(
        &self,
        accounts: &[&Account],
        commit: bool,
        f: impl FnOnce(&mut PgWrite) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.client.borrow_mut();
        let mut txn = client
            .transaction()
            .map_err(|e| self.err("starting a transaction", &e))?;
        // Readers go on; a second writer waits, so its reads see our commit.
        txn.batch_execute("LOCK TABLE sasldb IN SHARE ROW EXCLUSIVE MODE")
            .map_err(|e| self.err("locking table sasldb", &e))?;
        let mut users = Vec::with_capacity(accounts.len());
        let mut realms = Vec::with_capacity(accounts.len());
        for a in accounts {
            if let (Ok(u), Ok(r)) = (
                std::str::from_utf8(&a.authid),
                std::str::from_utf8(&a.realm),
            ) {
                users.push(u);
                realms.push(r);
            }
        }
        let rows = txn
            .query(
                "SELECT s.authid, s.realm, s.property, s.value FROM sasldb s \
                 JOIN unnest($1::text[], $2::text[]) AS a(authid, realm) \
                 ON s.authid = a.authid AND s.realm = a.realm WHERE s.value IS NOT NULL",
                &[&users, &realms],
            )
            .map_err(|e| self.err("reading", &e))?;
        let mut w = PgWrite::default();
        for r in &rows {
            let (u, realm, p, v): (&str, &str, &str, &str) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            w.current
                .entry(Account::new(u, realm))
                .or_default()
                .insert(p.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        let out = f(&mut w)?;
        if !commit || w.touched.is_empty() {
            return Ok(out); // the transaction rolls back on drop
        }
        txn.batch_execute(
            "CREATE TEMPORARY TABLE sasldb_batch (authid text, realm text, property text, value text) ON COMMIT DROP",
        )
        .map_err(|e| self.err("creating the batch table", &e))?;
        let sink = txn
            .copy_in("COPY sasldb_batch FROM STDIN (FORMAT binary)")
            .map_err(|e| self.err("sending the batch", &e))?;
        let mut copy =
            BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
        for (account, property) in &w.touched {
            let value = w
                .current
                .get(account)
                .and_then(|props| props.get(property.as_bytes()));
            // Names and values were checked as text by put and delete.
            let user = text(account, "user name", &account.authid)?;
            let realm = text(account, "realm", &account.realm)?;
            let value = value.map(|v| text(account, property, v)).transpose()?;
            copy.write(&[&user, &realm, &property.as_str(), &value])
                .map_err(|e| self.err("sending the batch", &e))?;
        }
        copy.finish()
            .map_err(|e| self.err("sending the batch", &e))?;
        txn.batch_execute(
            "MERGE INTO sasldb s USING sasldb_batch b \
             ON s.authid = b.authid AND s.realm = b.realm AND s.property = b.property \
             WHEN MATCHED AND b.value IS NULL THEN DELETE \
             WHEN MATCHED THEN UPDATE SET value = b.value \
             WHEN NOT MATCHED AND b.value IS NOT NULL THEN \
               INSERT (authid, realm, property, value) VALUES (b.authid, b.realm, b.property, b.value)",
        )
        .map_err(|e| self.err("writing", &e))?;
        txn.commit().map_err(|e| self.err("committing", &e))?;
        Ok(out)
    }
}

/// The changes of one PostgreSQL write transaction, worked out in memory
/// (later operations of a batch see earlier ones, as in LMDB).
#[derive(Default)]
pub struct PgWrite {
    current: HashMap<Account, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Every (account, property) changed, in order; deduplicated so the
    /// MERGE meets each row once.
    touched: std::collections::BTreeSet<(Account, String)>,
}

impl PgWrite {
    pub fn properties(&self, account: &Account) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.current
            .get(account)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// One property's value, when it has one.
    pub fn get(&self, account: &Account, property: &str) -> Option<&[u8]> {
        self.current
            .get(account)
            .and_then(|m| m.get(property.as_bytes()))
            .map(Vec::as_slice)
    }

    pub fn put(&mut self, account: &Account, property: &str, value: &[u8]) -> Result<()> {
        text(account, "user name", &account.authid)?;
        text(account, "realm", &account.realm)?;
        text(account, property, value)?;
        self.current
            .entry(account.clone())
            .or_default()
            .insert(property.as_bytes().to_vec(), value.to_vec());
        self.touched.insert((account.clone(), property.to_string()));
        Ok(())
    }

    pub fn delete(&mut self, account: &Account, property: &str) -> Result<bool> {
        let removed = self
            .current
            .get_mut(account)
            .and_then(|m| m.remove(property.as_bytes()))
            .is_some();
        if removed {
            self.touched.insert((account.clone(), property.to_string()));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url(b"postgresql://u@h/db"));
        assert!(is_url(b"postgres://h/db"));
        assert!(!is_url(b"/etc/sasldb2"));
        assert!(!is_url(b"postgresql:/relative"));
    }

    #[test]
    fn messages_never_show_the_password() {
        let c = Config::from_str("postgresql://sasl:hunter2@h1,h2:5433/sasl").unwrap();
        let shown = redacted(&c);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "postgresql://sasl@h1:5432,h2:5433/sasl");
        assert_eq!(
            redacted_url("postgresql://u:pw@h/d"),
            "postgresql://u@h:5432/d"
        );
        assert_eq!(redacted_url("postgresql://u:pw@h:x/d"), "PostgreSQL URL");
        // The file backend refuses a URL without echoing its password.
        let e = super::super::Store::open_read(
            Path::new("postgresql://u:hunter2@h/d"),
            &Default::default(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("postgresql://u@h:5432/d"), "{e}");
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let text =
            "# comment\nother:5432:sasl:sasl:no\n127.0.0.1:*:sasl:sasl:a\\:b\\\\c\n*:*:*:*:any\n";
        assert_eq!(
            pgpass_lookup(text, "127.0.0.1", 5999, "sasl", "sasl").as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(
            pgpass_lookup(text, "db", 1, "x", "y").as_deref(),
            Some("any")
        );
        assert_eq!(pgpass_lookup("h:1:d:u:p\n", "h", 2, "d", "u"), None);
    }

    #[test]
    fn values_that_are_not_text_are_refused_not_changed() {
        let a = Account::new("alice", "example.org");
        let mut w = PgWrite::default();
        let e = w.put(&a, "userPassword", b"\xff\xfe").unwrap_err();
        assert!(e.to_string().contains("not valid UTF-8"), "{e}");
        assert!(w.put(&a, "userPassword", b"a\0b").is_err());
        assert!(w.touched.is_empty());
        w.put(&a, "userPassword", "pässword".as_bytes()).unwrap();
        assert_eq!(w.properties(&a).len(), 1);
        assert!(w.delete(&a, "userPassword").unwrap());
        assert!(!w.delete(&a, "userPassword").unwrap());
        assert_eq!(w.touched.len(), 1);
    }
}
