#![no_main]
//! Stored keys come from files other programs wrote: decoding must never
//! panic, and what decodes must encode back to the same bytes.
use libfuzzer_sys::fuzz_target;
use sasldb::store::key;

fuzz_target!(|data: &[u8]| {
    if let Some(k) = key::decode(data) {
        if data.len() <= key::MAX_KEY_LEN {
            assert_eq!(key::encode(k.authid, k.realm, k.property).as_deref(), Ok(data));
        }
    }
});
