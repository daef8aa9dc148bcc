#![no_main]
//! main.cf is an admin's file, often edited by hand: any text parses or
//! fails with an error naming a line, and every value of a parsed file
//! (with `$name` expansion and the typed getters) reads without a panic.
use libfuzzer_sys::fuzz_target;
use sasldb::maincf::{MainCf, PARAMS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(cf) = MainCf::parse(&text, "main.cf") else { return };
    for p in PARAMS {
        let _ = cf.get(p.name);
        let _ = cf.get_bool(p.name);
        let _ = cf.get_u32(p.name);
        let _ = cf.get_duration(p.name);
        let _ = cf.get_mode(p.name);
        let _ = cf.get_list(p.name);
    }
    let mut cf = cf;
    for line in text.lines().take(4) {
        let _ = cf.override_with(line);
    }
});
