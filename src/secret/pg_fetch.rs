//! [`Fetch`] from PostgreSQL for the daemon: the async pool of
//! [`crate::store::pg_pool`] on a runtime of its own, called from sync code.
//!
//! Why blocking calls: mechanisms are sans-I/O state machines that ask
//! [`Credentials`](super::Credentials) synchronously, and they run both on
//! the SMTP listener's tokio workers and on the auth sockets' plain
//! threads. A cache hit never blocks. A miss blocks its caller for one
//! query: on a tokio multi-thread worker inside `block_in_place` (the
//! worker's other sessions move to another thread meanwhile), elsewhere
//! directly. The queries run on this module's own small runtime, whose
//! worker also drives the connections and the LISTEN task, so a busy SMTP
//! runtime never starves them and they never wait for a blocked worker.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::Secrets;
use super::cache::Policy;
use super::cached::{Cached, Fetch};
use crate::logging::LogFn;
use crate::store::pg_pool::{Event, PgPool};
use crate::store::{Account, StoreError};

/// The daemon's credentials on PostgreSQL.
pub type PgCredentials = Cached<PgFetch>;

pub struct PgFetch {
    /// `Some` until dropped; shut down without waiting, as the last owner
    /// may be a task of another runtime.
    runtime: Option<Runtime>,
    pool: Arc<PgPool>,
}

impl Drop for PgFetch {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgFetch {
    /// The URL without its password.
    pub fn target(&self) -> &str {
        self.pool.target()
    }

    fn block<T>(&self, fut: impl Future<Output = T> + Send) -> T
    where
        T: Send,
    {
        let Some(rt) = self.runtime.as_ref() else {
            unreachable!("the runtime lives as long as PgFetch");
        };
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| rt.block_on(fut)),
            // A current-thread runtime cannot lend its thread: wait for
            // the query on our own runtime from a scoped thread.
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
            Err(_) => rt.block_on(fut),
        }
    }
}

impl Fetch for PgFetch {
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
        let props = self.block(self.pool.properties(account))?;
        let props: Vec<(&[u8], &[u8])> = props
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        Ok(Secrets::for_login(&props))
    }

    fn folded(&self, authid: &str, realm: &str) -> Result<Option<Account>, StoreError> {
        self.block(self.pool.folded(authid, realm))
    }
}

/// Connect to the database at `url` (checking the table is there), start
/// the LISTEN task that invalidates the caches, and return the credentials
/// the SMTP listener and the auth sockets share. Errors name the URL
/// without its password.
pub fn connect(url: &str, policy: Policy, log: Arc<LogFn>) -> Result<PgCredentials, StoreError> {
    let pool = Arc::new(PgPool::new(url, log)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("postgresql")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Pg {
            target: pool.target().to_string(),
            message: format!("cannot start the client runtime: {e}"),
        })?;
    runtime.block_on(pool.check())?;
    let creds = Cached::new(
        PgFetch {
            runtime: Some(runtime),
            pool: Arc::clone(&pool),
        },
        policy,
        Box::new(std::time::Instant::now),
    );
    let caches = creds.caches();
    let events = move |e: Event| {
        let mut c = caches.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Listening => c.set_listening(true),
            Event::Changed => c.invalidate(),
            Event::Lost => c.set_listening(false),
        }
    };
    if let Some(rt) = creds.fetcher().runtime.as_ref() {
        rt.spawn(pool.listen(events));
    }
    Ok(creds)
}
