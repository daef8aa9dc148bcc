//! What the tools need of a store, whichever backend holds it: an LMDB file
//! ([`super::Store`]) or a PostgreSQL table ([`super::pg::PgStore`]). Reads
//! and writes each happen inside one transaction of the backend.

use super::pg::{PgStore, PgWrite};
use super::{Account, ReadView, Result, WriteView};

/// Reads inside one transaction (or, for PostgreSQL, one connection).
pub trait Records {
    /// All properties of one account that hold a value, in byte order.
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Whether any account is in `realm` (tells a wrong realm from a wrong user).
    fn realm_known(&self, realm: &[u8]) -> Result<bool>;
}

/// Reads and writes inside one write transaction.
pub trait RecordsMut {
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    fn set(&mut self, account: &Account, property: &str, value: &[u8]) -> Result<()>;
    /// False when the property was not there.
    fn remove(&mut self, account: &Account, property: &str) -> Result<bool>;
}

fn owned(props: Vec<(&[u8], &[u8])>) -> Vec<(Vec<u8>, Vec<u8>)> {
    props
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

impl Records for ReadView<'_> {
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.properties(account).map(owned)
    }

    fn realm_known(&self, realm: &[u8]) -> Result<bool> {
        let mut known = false;
        self.scan(|s| {
            if let super::Scanned::Entry(e) = s {
                known = e.realm == realm;
            }
            !known
        })?;
        Ok(known)
    }
}

impl Records for PgStore {
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.properties(account)
    }

    fn realm_known(&self, realm: &[u8]) -> Result<bool> {
        PgStore::realm_known(self, realm)
    }
}

impl RecordsMut for WriteView<'_> {
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.properties(account).map(owned)
    }

    fn set(&mut self, account: &Account, property: &str, value: &[u8]) -> Result<()> {
        self.put(account, property, value)
    }

    fn remove(&mut self, account: &Account, property: &str) -> Result<bool> {
        self.delete(account, property)
    }
}

impl RecordsMut for PgWrite {
    fn account_properties(&self, account: &Account) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.properties(account))
    }

    fn set(&mut self, account: &Account, property: &str, value: &[u8]) -> Result<()> {
        self.put(account, property, value)
    }

    fn remove(&mut self, account: &Account, property: &str) -> Result<bool> {
        self.delete(account, property)
    }
}
