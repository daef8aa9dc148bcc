#![no_main]
//! authPassword values come from the store, which other tools write: parsing
//! must never panic, and a parsed verifier must print back to its input's
//! meaning.
use libfuzzer_sys::fuzz_target;
use sasldb::secret::ScramVerifier;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = ScramVerifier::parse(data) {
        let again = ScramVerifier::parse(v.to_string().as_bytes()).expect("round trip");
        assert_eq!(again, v);
    }
});
