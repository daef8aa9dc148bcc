//! The accept loop of the SMTP listener: sessions within
//! `default_process_limit` (past it, clients wait in the listen queue, as
//! with Postfix), connections per client within
//! `smtpd_client_connection_count_limit` (past it, 421), a pause after an
//! accept error (out of descriptors) instead of a spin, and shutdown.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::listener::Listener;
use crate::net::client_key;

/// Accept queue length asked for (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: libc::c_int = 1024;

/// How long accepting pauses after accept(2) failed (out of descriptors):
/// long enough to cost no CPU, short enough that service resumes soon
/// after descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// What the accept loops share across reloads and shutdown.
pub struct Control {
    /// The configuration new connections get (swapped on reload).
    pub current: std::sync::RwLock<Arc<Listener>>,
    pub stopping: std::sync::atomic::AtomicBool,
    pub stop: tokio::sync::Notify,
    /// Sessions in progress.
    pub active: std::sync::atomic::AtomicUsize,
    connections: Mutex<std::collections::HashMap<IpAddr, u32>>,
    /// Simultaneous sessions (`default_process_limit`, read at start):
    /// past it, new clients wait in the listen queue, as with Postfix.
    sessions: Arc<tokio::sync::Semaphore>,
    limit: usize,
}

impl Control {
    /// `process_limit`: simultaneous sessions (0: no limit).
    pub fn new(l: Listener, process_limit: u32) -> Arc<Control> {
        let limit = match process_limit {
            0 => tokio::sync::Semaphore::MAX_PERMITS,
            n => n as usize,
        };
        Arc::new(Control {
            sessions: Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
            current: std::sync::RwLock::new(Arc::new(l)),
            stopping: std::sync::atomic::AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            active: std::sync::atomic::AtomicUsize::new(0),
            connections: Mutex::new(std::collections::HashMap::new()),
        })
    }

    pub fn listener(&self) -> Arc<Listener> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Accept until shutdown; each session runs to its end even then.
    pub async fn serve(self: Arc<Self>, tcp: TcpListener, implicit_tls: bool) {
        use std::sync::atomic::Ordering;
        {
            // Lengthen the accept queue (std binds with 128): hundreds of
            // clients connecting at once would otherwise have SYNs dropped
            // and wait a 1 s retransmit. Linux lets listen(2) be called
            // again on a listening socket; only the queue length changes.
            use std::os::fd::AsRawFd;
            // SAFETY: listen(2) on a socket this listener owns.
            unsafe { libc::listen(tcp.as_raw_fd(), LISTEN_BACKLOG) };
        }
        let mut accept_failing = false;
        loop {
            if !self.slot_free().await {
                return;
            }
            let accepted = tokio::select! {
                a = tcp.accept() => a,
                _ = self.stop.notified() => return,
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let (stream, peer) = match accepted {
                Ok(a) => {
                    accept_failing = false;
                    // Output leaves in whole flights (see super::flight);
                    // Nagle would hold the second of two back for the
                    // client's delayed ACK.
                    let _ = a.0.set_nodelay(true);
                    a
                }
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or the like: the
                    // listening socket stays readable, so retrying at once
                    // would spin. Pause; the queued clients wait in the
                    // backlog and are served once descriptors free up.
                    if !accept_failing {
                        self.listener()
                            .log(&format!("warning: accept: {e}; pausing new connections"));
                        accept_failing = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        _ = self.stop.notified() => return,
                    }
                    continue;
                }
            };
            // Normally at once; another listener may have taken the last
            // slot since slot_free() (then this one client waits, accepted).
            let permit = tokio::select! {
                p = Arc::clone(&self.sessions).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.stop.notified() => return,
            };
            let l = self.listener();
            let ip = peer.ip();
            let exempt = l.policy.trusted(ip);
            let key = client_key(ip, l.ipv6_prefix);
            let count = {
                let mut m = self.connections.lock().unwrap_or_else(|p| p.into_inner());
                let n = m.entry(key).or_insert(0);
                *n += 1;
                *n
            };
            let me = Arc::clone(&self);
            me.active.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Whether to log "disconnect" (refused clients were never
                // "connect"ed; a timed-out session has its own line).
                let mut disconnect = false;
                if l.connection_limit > 0 && count > l.connection_limit && !exempt {
                    l.log(&format!(
                        "warning: Connection concurrency limit exceeded: {count} from unknown[{ip}]"
                    ));
                    let mut s = stream;
                    let msg = format!(
                        "421 4.7.0 {} Error: too many connections from {ip}\r\n",
                        l.policy.hostname
                    );
                    let _ = s.write_all(msg.as_bytes()).await;
                } else {
                    let limit = l.session_limit;
                    let session = Arc::clone(&l).connection(stream, peer, implicit_tls);
                    if tokio::time::timeout(limit, session).await.is_err() {
                        l.log(&format!(
                            "warning: session time limit exceeded; disconnect from unknown[{ip}]"
                        ));
                    } else {
                        disconnect = true;
                    }
                }
                {
                    let mut m = me.connections.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = m.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            m.remove(&key);
                        }
                    }
                }
                // Only now: whoever reads "disconnect" may count on the
                // client's connection slot being free again.
                if disconnect {
                    l.log(&format!("disconnect from unknown[{ip}]"));
                }
                me.active.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            });
        }
    }

    /// Wait while `default_process_limit` sessions are open (new clients
    /// queue in the backlog meanwhile); the slot is taken after accept,
    /// so listeners waiting in accept hold none. `false`: stopping.
    async fn slot_free(&self) -> bool {
        if self.sessions.available_permits() > 0 {
            return true;
        }
        // Postfix's master logs this when a service hits its process limit.
        self.listener().log(&format!(
            "warning: service \"smtpd\" has reached its process limit \"{}\": new clients may experience noticeable delays",
            self.limit
        ));
        tokio::select! {
            p = self.sessions.acquire() => p.is_ok(),
            _ = self.stop.notified() => false,
        }
    }
}
