#![no_main]
//! GDBM files come from other programs and may be damaged:
//! reading one must end (no loop) in records or a clean error, never a
//! panic. Each input is read as it is, and as damage to a real file
//! written by libgdbm (bytes XORed in at the input's offsets,
//! the file cut where the input's length says).
use libfuzzer_sys::fuzz_target;
#[path = "../damage.rs"]
mod damage;
use sasldb::migrate::gdbm::GdbmFile;
use std::path::Path;

const SEED: &[u8] = include_bytes!("../seeds/sasldb.gdbm");

fn read(bytes: &[u8]) {
    if let Ok(f) = GdbmFile::with_pages(Path::new("fuzz"), Box::<[u8]>::from(bytes)) {
        // Elements of a damaged file may share their bytes: no bound on
        // the total here, only on each record (checked by the reader).
        let _ = f.for_each(|k, v| {
            assert!(k.len() + v.len() <= bytes.len());
            Ok(())
        });
    }
}

fuzz_target!(|data: &[u8]| {
    read(data);
    read(&damage::damage(SEED, data));
});
