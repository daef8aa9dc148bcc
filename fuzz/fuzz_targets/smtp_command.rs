#![no_main]
//! SMTP command lines come from any peer: every line parses or yields a
//! reply in the 5xx range with an enhanced status, never a panic; a parsed
//! address prints back as something that parses to the same address.
use libfuzzer_sys::fuzz_target;
use sasldb::smtp::command::{self, Address, Command};

fuzz_target!(|data: &[u8]| {
    match command::parse(data) {
        Err(e) => {
            assert!((500..600).contains(&e.code), "{e:?}");
            assert!(e.enhanced.starts_with("5."), "{e:?}");
        }
        Ok(Command::Mail { from: Some(a), .. }) | Ok(Command::Rcpt(a)) => {
            let shown = a.to_string();
            assert_eq!(Address::parse(&shown).as_ref(), Ok(&a), "{shown:?}");
        }
        Ok(_) => {}
    }
});
