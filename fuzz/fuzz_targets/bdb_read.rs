#![no_main]
//! Berkeley DB hash files come from other programs and may be damaged:
//! reading one must end (no loop) in records or a clean error, never a
//! panic. Each input is read as it is, and as damage to a real file
//! written by Debian's saslpasswd2 (bytes XORed in at the input's offsets,
//! the file cut where the input's length says).
use libfuzzer_sys::fuzz_target;
#[path = "../damage.rs"]
mod damage;
use sasldb::migrate::bdb::HashFile;
use std::path::Path;

const SEED: &[u8] = include_bytes!("../seeds/sasldb-bdb53.db");

fn read(bytes: &[u8]) {
    if let Ok(f) = HashFile::with_pages(Path::new("fuzz"), Box::<[u8]>::from(bytes)) {
        let mut n = 0usize;
        let _ = f.for_each(|k, v| {
            n += k.len() + v.len();
            Ok(())
        });
        // Every byte handed out was read from the file at most once.
        assert!(
            n <= bytes.len(),
            "{n} bytes of records from {}",
            bytes.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    read(data);
    read(&damage::damage(SEED, data));
});
