#![no_main]
//! Config files are edited by hand: any bytes must parse or fail cleanly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = sasldb::saslconf::parse(data, std::path::Path::new("fuzz.conf")) {
        let _ = (c.mech_list(), c.sasldb_mapsize(), c.scram_secret_generate());
    }
});
