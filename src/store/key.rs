//! The sasldb key codec: `authid 0x00 realm 0x00 property`, no trailing NUL.
//!
//! Every Cyrus backend (BDB, GDBM, NDBM, LMDB) uses this layout, so a key
//! written here is found by Cyrus's auxprop plugin and the other way round.

/// liblmdb 0.9's compiled-in maximum key size (`MDB_MAXKEYSIZE`).
pub const MAX_KEY_LEN: usize = 511;

/// One decoded key. Components are raw bytes: Cyrus stores whatever the C
/// strings held, which need not be UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub authid: &'a [u8],
    pub realm: &'a [u8],
    pub property: &'a [u8],
}

/// Why a key cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A component contains a NUL byte, which would shift the split points.
    Nul,
    /// The encoded key exceeds [`MAX_KEY_LEN`]; holds the encoded length.
    TooLong(usize),
}

/// Encoded length of a key, without building it.
pub fn encoded_len(authid: &[u8], realm: &[u8], property: &[u8]) -> usize {
    authid.len() + realm.len() + property.len() + 2
}

/// Build the stored key for one property of one account.
pub fn encode(authid: &[u8], realm: &[u8], property: &[u8]) -> Result<Vec<u8>, KeyError> {
    if [authid, realm, property].iter().any(|c| c.contains(&0)) {
        return Err(KeyError::Nul);
    }
    let len = encoded_len(authid, realm, property);
    if len > MAX_KEY_LEN {
        return Err(KeyError::TooLong(len));
    }
    let mut key = Vec::with_capacity(len);
    key.extend_from_slice(authid);
    key.push(0);
    key.extend_from_slice(realm);
    key.push(0);
    key.extend_from_slice(property);
    Ok(key)
}

/// The prefix shared by every property key of one account (`authid\0realm\0`).
pub fn account_prefix(authid: &[u8], realm: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(authid.len() + realm.len() + 2);
    p.extend_from_slice(authid);
    p.push(0);
    p.extend_from_slice(realm);
    p.push(0);
    p
}

/// Split a stored key. `None` unless it holds exactly two NULs, as Cyrus's
/// parser demands (Cyrus then spins forever; callers here skip the key).
pub fn decode(key: &[u8]) -> Option<Key<'_>> {
    let mut parts = key.splitn(3, |&b| b == 0);
    let authid = parts.next()?;
    let realm = parts.next()?;
    let property = parts.next()?;
    if property.contains(&0) {
        return None;
    }
    Some(Key {
        authid,
        realm,
        property,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = encode(b"alice", b"example.org", b"userPassword").unwrap();
        assert_eq!(k, b"alice\0example.org\0userPassword");
        assert_eq!(
            decode(&k),
            Some(Key {
                authid: b"alice",
                realm: b"example.org",
                property: b"userPassword"
            })
        );
    }

    #[test]
    fn empty_components_are_legal() {
        let k = encode(b"", b"", b"").unwrap();
        assert_eq!(k, b"\0\0");
        let d = decode(&k).unwrap();
        assert!(d.authid.is_empty() && d.realm.is_empty() && d.property.is_empty());
    }

    #[test]
    fn malformed_keys() {
        assert_eq!(decode(b"nonul"), None);
        assert_eq!(decode(b"one\0nul"), None);
        assert_eq!(decode(b"a\0b\0c\0d"), None);
    }

    #[test]
    fn limits() {
        let user = vec![b'u'; 495];
        assert!(encode(&user, b"vm", b"userPassword").is_ok()); // 511 bytes
        let user = vec![b'u'; 496];
        assert_eq!(
            encode(&user, b"vm", b"userPassword"),
            Err(KeyError::TooLong(512))
        );
        assert_eq!(encode(b"a\0", b"vm", b"p"), Err(KeyError::Nul));
    }
}
