#![no_main]
//! saslauthd requests come from whoever can reach the socket: any bytes
//! parse as incomplete, too long or one request whose fields are within
//! the bound; bytes after a complete request do not change it; a prefix of
//! a complete request is incomplete.
use libfuzzer_sys::fuzz_target;
use sasldb::authd::saslauthd::{self, MAX_FIELD, Parse};

fuzz_target!(|data: &[u8]| {
    match saslauthd::parse(data) {
        Parse::Incomplete => {
            assert!(!matches!(saslauthd::parse(&data[..data.len() / 2]), Parse::Done(_)));
        }
        Parse::TooLong => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\0\0\0\0");
            assert_eq!(saslauthd::parse(&more), Parse::TooLong);
        }
        Parse::Done(req) => {
            for f in [&req.login, &req.password, &req.service, &req.realm] {
                assert!(f.len() <= MAX_FIELD);
            }
            let used = 8 + req.login.len() + req.password.len() + req.service.len() + req.realm.len();
            assert_eq!(saslauthd::parse(&data[..used]), Parse::Done(req.clone()));
            if used > 0 {
                assert_eq!(saslauthd::parse(&data[..used - 1]), Parse::Incomplete);
            }
        }
    }
});
