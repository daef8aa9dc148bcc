//! Which account an address names. Addresses are case-insensitive in
//! practice (`Alice@Example.ORG` is alice's), stored accounts keep the case
//! they were created with, and a key-value store looks up bytes exactly:
//! look up exactly first, then through a case-folded index that is rebuilt
//! only when the store changed, so no client can make us scan the store
//! once per command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::mech::{Credentials, Secrets};
use crate::secret::pg_fetch::PgCredentials;
use crate::store::{Account, Scanned, Store, StoreError};

/// Accounts as the SMTP policy asks about them.
pub trait Directory: Credentials {
    /// The stored account `local@domain` names, name and realm compared
    /// without ASCII case. The default tries the spelling given and its
    /// lower case (enough for stores that hold lower case only). An error:
    /// the store cannot say now (the caller answers with a temporary
    /// failure, never "no such user").
    fn find_account(&self, local: &str, domain: &str) -> Result<Option<Account>, StoreError> {
        exact(self, local, domain)
    }
}

fn exists<C: Credentials + ?Sized>(creds: &C, a: &Account) -> Result<bool, StoreError> {
    Ok(creds.secrets(a)?.is_some())
}

fn exact<C: Credentials + ?Sized>(
    creds: &C,
    local: &str,
    domain: &str,
) -> Result<Option<Account>, StoreError> {
    let typed = Account::new(local, domain);
    if exists(creds, &typed)? {
        return Ok(Some(typed));
    }
    let lower = Account::new(local.to_ascii_lowercase(), domain.to_ascii_lowercase());
    Ok((lower != typed && exists(creds, &lower)?).then_some(lower))
}

type Folded = HashMap<(Vec<u8>, Vec<u8>), Account>;

/// The store, with a case-folded index of its accounts.
pub struct AccountIndex {
    store: Arc<Store>,
    /// (store generation it was built at, folded name and realm -> account).
    folded: Mutex<Option<(u64, Arc<Folded>)>>,
}

impl AccountIndex {
    pub fn new(store: Arc<Store>) -> AccountIndex {
        AccountIndex {
            store,
            folded: Mutex::new(None),
        }
    }

    fn index(&self) -> Result<Arc<Folded>, StoreError> {
        let generation = self.store.generation();
        // Held for a whole rebuild: whoever waits for it lends its thread.
        let mut cached = match self.folded.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                lend_thread(|| self.folded.lock().unwrap_or_else(|p| p.into_inner()))
            }
        };
        if let Some((g, map)) = cached.as_ref()
            && *g == generation
        {
            return Ok(Arc::clone(map));
        }
        // A rebuild scans every key, which takes a while on a large store:
        // on a tokio worker, lend the thread's other sessions to the other
        // workers meanwhile.
        let map = Arc::new(lend_thread(|| self.scan())?);
        *cached = Some((generation, Arc::clone(&map)));
        Ok(map)
    }

    fn scan(&self) -> Result<Folded, StoreError> {
        let mut map = Folded::new();
        self.store.read(|v| {
            v.scan(|s| {
                if let Scanned::Entry(e) = s {
                    map.entry((e.authid.to_ascii_lowercase(), e.realm.to_ascii_lowercase()))
                        .or_insert_with(|| Account::new(e.authid, e.realm));
                }
                true
            })
        })?;
        Ok(map)
    }
}

/// Run `f`, which blocks, as `tokio::task::block_in_place` on a
/// multi-thread runtime's worker (its other tasks move to other workers),
/// else directly.
fn lend_thread<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Credentials for AccountIndex {
    fn secrets(&self, account: &Account) -> Result<Option<Secrets>, StoreError> {
        self.store.secrets(account)
    }
}

impl Directory for AccountIndex {
    fn find_account(&self, local: &str, domain: &str) -> Result<Option<Account>, StoreError> {
        if let Some(a) = exact(self, local, domain)? {
            return Ok(Some(a));
        }
        let key = (
            local.as_bytes().to_ascii_lowercase(),
            domain.as_bytes().to_ascii_lowercase(),
        );
        Ok(self.index()?.get(&key).cloned())
    }
}

/// PostgreSQL: a query served by the index on lowered names, its answers
/// cached (see `secret::cached`).
impl Directory for PgCredentials {
    fn find_account(&self, local: &str, domain: &str) -> Result<Option<Account>, StoreError> {
        match exact(self, local, domain)? {
            Some(a) => Ok(Some(a)),
            None => self.find_folded(local, domain),
        }
    }
}

/// What the SMTP listener asks about accounts, whichever the backend.
pub type SharedDirectory = Arc<dyn Directory + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenOptions;

    #[test]
    fn rebuilds_on_runtime_workers_lend_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sasldb2");
        let store = Arc::new(Store::open_write(&path, &OpenOptions::default()).unwrap());
        store
            .write(|w| {
                for i in 0..2000 {
                    w.put(
                        &Account::new(format!("User{i}"), "Example.ORG"),
                        "userPassword",
                        b"pw",
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let index = Arc::new(AccountIndex::new(Arc::clone(&store)));
        // On a multi-thread runtime, many sessions at once (block_in_place
        // would panic on a current-thread one: there it runs directly).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let found = rt.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let index = Arc::clone(&index);
                    tokio::spawn(async move {
                        index.find_account(&format!("user{}", i * 100), "example.org")
                    })
                })
                .collect();
            let mut n = 0;
            for t in tasks {
                n += usize::from(t.await.unwrap().unwrap().is_some());
            }
            n
        });
        assert_eq!(found, 16);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let one = current.block_on(async { index.find_account("USER5", "example.ORG") });
        assert_eq!(one.unwrap(), Some(Account::new("User5", "Example.ORG")));
    }

    #[test]
    fn mixed_case_accounts_are_found_and_new_ones_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sasldb2");
        let store = Arc::new(Store::open_write(&path, &OpenOptions::default()).unwrap());
        let put = |name: &str, realm: &str| {
            store
                .write(|w| w.put(&Account::new(name, realm), "userPassword", b"pw"))
                .unwrap();
        };
        put("Carol", "Example.ORG");
        put("alice", "example.org");
        let index = AccountIndex::new(Arc::clone(&store));
        let carol = Some(Account::new("Carol", "Example.ORG"));
        assert_eq!(index.find_account("carol", "example.org").unwrap(), carol);
        assert_eq!(index.find_account("CAROL", "EXAMPLE.org").unwrap(), carol);
        assert_eq!(
            index.find_account("Alice", "Example.org").unwrap(),
            Some(Account::new("alice", "example.org"))
        );
        assert_eq!(index.find_account("dave", "example.org").unwrap(), None);
        // A write moves the generation: the index is rebuilt, not stale.
        let before = store.generation();
        put("Dave", "EXAMPLE.ORG");
        assert_ne!(store.generation(), before);
        assert_eq!(
            index.find_account("dave", "example.org").unwrap(),
            Some(Account::new("Dave", "EXAMPLE.ORG"))
        );
    }
}
