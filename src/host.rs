//! Facts about this host that several layers need: the default realm
//! (Cyrus's, and the default of Postfix's `myhostname`).

use std::io;

/// `gethostname()` lower-cased, as libsasl lower-cases the server FQDN
/// (no DNS canonicalisation).
pub fn default_realm() -> io::Result<Vec<u8>> {
    let name = nix::unistd::gethostname().map_err(io::Error::from)?;
    let mut bytes = name.into_encoded_bytes();
    bytes.make_ascii_lowercase();
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_name_is_lower_cased() {
        let h = default_realm().unwrap();
        assert!(!h.iter().any(u8::is_ascii_uppercase));
    }
}
