//! The daemon's side of the PostgreSQL store (`smtpd-auth`): async
//! (`tokio-postgres`), a bounded pool of connections for look-ups, one
//! connection that `LISTEN`s on [`pg::CHANNEL`] so caches above can be
//! invalidated, and the outage state.
//!
//! Outages: a look-up that cannot reach the database marks it down (logged
//! once); while down, look-ups fail at once instead of each waiting for a
//! connect timeout. [`PgPool::listen`] finds out when it is back: its own
//! connection coming back, or (when that one stayed up) a new connection
//! tried on every heartbeat, marks it up (logged once).
//!
//! Every query runs under a server-side `statement_timeout` and a client-side
//! timeout; connects under the URL's `connect_timeout` (else
//! [`CONNECT_TIMEOUT`]). All connections are made by `connect`, with the
//! TLS the URL asks for (`sslmode`, `sslrootcert`: see [`super::pg_tls`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Client, Config, Error, Statement};

use super::pg::{self, Mode, pg_err};
use super::pg_tls::MakeRustlsConnect;
use super::{Account, Result, StoreError};
use crate::logging::LogFn;

/// Connections for look-ups (each pipelines the queries of many sessions).
pub const POOL_SIZE: usize = 4;
/// Connect timeout when the URL gives none: a dead host must not hold a
/// login for long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a look-up query may take (server and client side).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the LISTEN connection proves it is alive, and how long the
/// proof may take: a connection lost without a word (a partition) stops
/// the cache being trusted within their sum.
const HEARTBEAT: Duration = Duration::from_secs(1);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnect back-off of the LISTEN connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Served by the index on (lower(authid), lower(realm)) of [`pg::SCHEMA`].
const FOLDED: &str = "SELECT authid, realm FROM sasldb WHERE lower(authid) = lower($1) \
     AND lower(realm) = lower($2) AND value IS NOT NULL \
     ORDER BY authid COLLATE \"C\", realm COLLATE \"C\" LIMIT 1";

/// What the LISTEN connection reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Listening (again): changes made from now on will be notified.
    Listening,
    /// Something in table sasldb changed.
    Changed,
    /// Not listening: changes go unseen until [`Event::Listening`].
    Lost,
}

/// Make one connection: the one place connections are made. Plain TCP or a
/// Unix socket; TLS to the database goes in here. The connection is driven
/// by a task on the current runtime; the watch counts its notifications and
/// closes when the connection ends.
async fn connect(
    config: &Config,
    tls: &MakeRustlsConnect,
) -> std::result::Result<(Client, watch::Receiver<u64>), Error> {
    let (client, mut conn) = config.connect(tls.clone()).await?;
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match m {
                Ok(AsyncMessage::Notification(_)) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Ok((client, rx))
}

/// A pooled connection with its prepared statements.
struct Conn {
    client: Client,
    properties: Statement,
    folded: Statement,
}

/// Whether the database is reachable, as look-ups last found it.
#[derive(Default)]
struct Health {
    down: bool,
}

pub struct PgPool {
    config: Config,
    /// TLS to the database as the URL's `sslmode`/`sslrootcert` ask.
    tls: MakeRustlsConnect,
    target: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    health: Mutex<Health>,
    log: Arc<LogFn>,
}

impl PgPool {
    /// Parse the URL (libpq's defaults, see [`pg::client_config`]); nothing
    /// is connected yet ([`PgPool::check`] does).
    pub fn new(url: &str, log: Arc<LogFn>) -> Result<PgPool> {
        let (mut config, target, tls) = pg::client_config(url, Mode::Read)?;
        if !url.contains("connect_timeout") {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut options = config.get_options().unwrap_or("").to_string();
        options.push_str(&format!(
            " -c statement_timeout={}",
            QUERY_TIMEOUT.as_millis()
        ));
        config.options(options.trim_start());
        // A server that vanished without a word is noticed by the kernel.
        config.keepalives_idle(Duration::from_secs(30));
        Ok(PgPool {
            config,
            tls,
            target,
            slots: (0..POOL_SIZE)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            health: Mutex::new(Health::default()),
            log,
        })
    }

    /// The URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn err(&self, what: &str, e: &Error) -> StoreError {
        pg_err(&self.target, what, e)
    }

    fn failed(&self, what: &str, e: Failed) -> StoreError {
        e.into_store(&self.target, what)
    }

    /// Connect once and check that table sasldb is there (at start: a bad
    /// URL, password or database is an error then, not at the first login).
    pub async fn check(&self) -> Result<()> {
        let (client, _) = connect(&self.config, &self.tls)
            .await
            .map_err(|e| self.err("cannot connect", &e))?;
        let row = timeout(client.query_one(
            "SELECT to_regclass('sasldb') IS NOT NULL, to_regclass('sasldb_folded') IS NOT NULL",
            &[],
        ))
        .await
        .map_err(|e| self.failed("checking table sasldb", e))?;
        let (exists, indexed): (bool, bool) = row
            .try_get(0)
            .and_then(|t| Ok((t, row.try_get(1)?)))
            .map_err(|e| self.err("checking table sasldb", &e))?;
        if !exists {
            return Err(StoreError::Pg {
                target: self.target.clone(),
                message:
                    "table sasldb does not exist; create it with saslpasswd --init-schema -f URL"
                        .into(),
            });
        }
        if !indexed {
            // A schema made before the index: case-insensitive look-ups
            // (cached) would scan the table.
            (self.log)(&format!(
                "warning: {}: index sasldb_folded is missing; run saslpasswd --init-schema -f URL again to add it",
                self.target
            ));
        }
        self.conn(0).await.map(drop)
    }

    /// While down, look-ups fail at once: no login waits for a connect
    /// timeout; [`PgPool::listen`] finds out when it is back.
    fn is_down(&self) -> bool {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).down
    }

    /// The database could not be reached: logged on the first failure only.
    fn mark_down(&self, e: &StoreError) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if !h.down {
            h.down = true;
            (self.log)(&format!(
                "warning: database unreachable: {e}; logins that succeeded within the last hour are served from the cache, others fail temporarily, until it is back"
            ));
        }
    }

    fn mark_up(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.down {
            h.down = false;
            (self.log)(&format!("database {} reachable again", self.target));
        }
    }

    fn unreachable(&self) -> StoreError {
        StoreError::Pg {
            target: self.target.clone(),
            message: "not connected: the database is unreachable (retrying in the background)"
                .into(),
        }
    }

    /// Slot `i`'s connection, made when there is none or it closed.
    async fn conn(&self, i: usize) -> Result<Arc<Conn>> {
        let mut slot = self.slots[i % POOL_SIZE].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(c));
        }
        *slot = None;
        let made = async {
            let (client, _) = connect(&self.config, &self.tls)
                .await
                .map_err(|e| self.err("cannot connect", &e))?;
            let prepare = async {
                Ok::<_, Error>((
                    client.prepare(pg::PROPERTIES).await?,
                    client.prepare(FOLDED).await?,
                ))
            };
            let (properties, folded) = timeout(prepare)
                .await
                .map_err(|e| self.failed("preparing queries", e))?;
            Ok(Arc::new(Conn {
                client,
                properties,
                folded,
            }))
        }
        .await;
        match made {
            Ok(c) => {
                *slot = Some(Arc::clone(&c));
                Ok(c)
            }
            Err(e) => Err(e),
        }
    }

    /// Run `query` on a pooled connection. A connection that broke is
    /// replaced once; a database that cannot be reached is marked down.
    async fn run<T, F, Fut>(&self, what: &str, query: F) -> Result<T>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Error>>,
    {
        if self.is_down() {
            return Err(self.unreachable());
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for _ in 0..2 {
            let conn = match self.conn(i).await {
                Ok(c) => c,
                Err(e) => {
                    self.mark_down(&e);
                    return Err(e);
                }
            };
            match timeout(query(Arc::clone(&conn))).await {
                Ok(v) => {
                    self.mark_up();
                    return Ok(v);
                }
                // The connection is fine, the look-up failed.
                Err(e) if e.is_answer() && !conn.client.is_closed() => {
                    return Err(self.failed(what, e));
                }
                Err(e) => {
                    let mut slot = self.slots[i % POOL_SIZE].lock().await;
                    if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        *slot = None;
                    }
                    last = Some(self.failed(what, e));
                }
            }
        }
        let e = last.unwrap_or_else(|| self.unreachable());
        self.mark_down(&e);
        Err(e)
    }

    /// All properties of one account that hold a value, in byte order.
    pub async fn properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some((user, realm)) = pg::names(account) else {
            return Ok(Vec::new()); // such a name cannot be stored
        };
        let rows = self
            .run("reading", |c| async move {
                c.client.query(&c.properties, &[&user, &realm]).await
            })
            .await?;
        pg::property_pairs(&rows).map_err(|e| self.err("reading", &e))
    }

    /// The stored account whose name and realm equal these without case.
    pub async fn folded(&self, authid: &str, realm: &str) -> Result<Option<Account>> {
        let rows = self
            .run("reading", |c| async move {
                c.client.query(&c.folded, &[&authid, &realm]).await
            })
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let names = r
            .try_get::<_, &str>(0)
            .and_then(|u| Ok((u, r.try_get::<_, &str>(1)?)));
        let (u, realm) = names.map_err(|e| self.err("reading", &e))?;
        Ok(Some(Account::new(u, realm)))
    }

    /// The LISTEN connection, for as long as the runtime runs: reports to
    /// `events`, reconnects with back-off, and marks the database up when
    /// a connection succeeds.
    pub async fn listen(self: Arc<Self>, events: impl Fn(Event) + Send + Sync + 'static) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.listen_once(&events).await {
                // It was up: try again at once, then back off.
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    self.mark_down(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One LISTEN connection, until it is lost. `Ok` when it was up.
    async fn listen_once(&self, events: &impl Fn(Event)) -> Result<()> {
        let (client, mut notified) = connect(&self.config, &self.tls)
            .await
            .map_err(|e| self.err("cannot connect", &e))?;
        let sql = format!("LISTEN {}", pg::CHANNEL);
        timeout(client.batch_execute(&sql))
            .await
            .map_err(|e| self.failed("LISTEN", e))?;
        self.mark_up();
        events(Event::Listening);
        loop {
            tokio::select! {
                changed = notified.changed() => {
                    if changed.is_err() {
                        break; // the connection ended
                    }
                    events(Event::Changed);
                }
                () = tokio::time::sleep(HEARTBEAT) => {
                    let alive = tokio::time::timeout(HEARTBEAT_TIMEOUT, client.batch_execute("")).await;
                    if !matches!(alive, Ok(Ok(()))) {
                        break;
                    }
                    // Look-ups failed while this connection stayed up (the
                    // server refused new ones, say): try one for them.
                    if self.is_down() && connect(&self.config, &self.tls).await.is_ok() {
                        self.mark_up();
                    }
                }
            }
        }
        events(Event::Lost);
        Ok(())
    }
}

/// Why a query gave no answer.
enum Failed {
    Pg(Error),
    TimedOut,
}

impl Failed {
    /// The server's own refusal (a missing table, a timeout it enforced):
    /// the connection itself is fine.
    fn is_answer(&self) -> bool {
        matches!(self, Failed::Pg(e) if e.as_db_error().is_some())
    }

    fn into_store(self, target: &str, what: &str) -> StoreError {
        match self {
            Failed::Pg(e) => pg_err(target, what, &e),
            Failed::TimedOut => StoreError::Pg {
                target: target.to_string(),
                message: format!("{what}: no answer within {}s", QUERY_TIMEOUT.as_secs()),
            },
        }
    }
}

/// `fut` under [`QUERY_TIMEOUT`].
async fn timeout<T>(
    fut: impl std::future::Future<Output = std::result::Result<T, Error>>,
) -> std::result::Result<T, Failed> {
    match tokio::time::timeout(QUERY_TIMEOUT, fut).await {
        Ok(r) => r.map_err(Failed::Pg),
        Err(_) => Err(Failed::TimedOut),
    }
}
