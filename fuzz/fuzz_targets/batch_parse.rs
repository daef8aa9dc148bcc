#![no_main]
//! Batch files come from scripts and people: any bytes must parse or fail
//! with numbered line errors, never panic, and never echo a password.
use libfuzzer_sys::fuzz_target;
use sasldb::cli::batch;

fuzz_target!(|data: &[u8]| {
    if let Err(errors) = batch::parse(data, Some(b"fuzz.example"), &mut || Ok(b"vm".to_vec())) {
        assert!(errors.iter().all(|e| e.line >= 1));
    }
});
