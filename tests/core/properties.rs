//! Property tests of the parsers and codecs that read untrusted bytes.
use proptest::prelude::*;
use sasldb::cli::batch;
use sasldb::cli::getopt::Getopt;
use sasldb::secret::{ScramHash, ScramVerifier};
use sasldb::store::key;

fn component() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn key_round_trips(a in component(), r in component(), p in component()) {
        let k = key::encode(&a, &r, &p).unwrap();
        let d = key::decode(&k).unwrap();
        prop_assert_eq!((d.authid, d.realm, d.property), (&a[..], &r[..], &p[..]));
    }

    #[test]
    fn key_decode_accepts_exactly_two_nuls(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let nuls = bytes.iter().filter(|&&b| b == 0).count();
        prop_assert_eq!(key::decode(&bytes).is_some(), nuls == 2);
    }

    #[test]
    fn batch_parse_never_panics_nor_echoes(
        lines in proptest::collection::vec("[ -~]{0,30}", 0..20),
        secret in "[A-Za-z0-9]{12}",
    ) {
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str(&format!("bad line without colon {secret}\n"));
        let errs = batch::parse(text.as_bytes(), None, &mut || Ok(b"vm".to_vec())).unwrap_err();
        let last = errs.last().unwrap();
        prop_assert_eq!(last.line, lines.len() + 1);
        for e in &errs {
            prop_assert!(!e.reason.contains(&secret));
        }
    }

    #[test]
    fn batch_sets_round_trip(users in proptest::collection::vec(("[a-z]{1,12}", "[a-z.]{0,12}", "[ -~]{1,40}"), 1..20)) {
        let text: String = users.iter().map(|(u, r, p)| format!("{u}@{r}:{p}\n")).collect();
        let ops = batch::parse(text.as_bytes(), None, &mut || Ok(b"vm".to_vec())).unwrap();
        prop_assert_eq!(ops.len(), users.len());
        for (op, (u, r, p)) in ops.iter().zip(&users) {
            match op {
                sasldb::admin::Op::Set { account, password } => {
                    prop_assert_eq!(&account.authid, u.as_bytes());
                    prop_assert_eq!(&account.realm, r.as_bytes());
                    prop_assert_eq!(password, p.as_bytes());
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn saslconf_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = sasldb::saslconf::parse(&bytes, std::path::Path::new("p.conf"));
    }

    #[test]
    fn getopt_never_panics(args in proptest::collection::vec("-{0,2}[a-z?=-]{0,6}", 0..8)) {
        let g = Getopt::from_command(&sasldb::cli::saslpasswd::command());
        let p = g.parse(args.clone());
        // Every argument is accounted for: as an option, its value, or an operand.
        prop_assert!(p.operands.len() <= args.len());
    }

    #[test]
    fn verifier_checks_only_its_password(pw in proptest::collection::vec(1u8..=255, 1..32), other in proptest::collection::vec(1u8..=255, 1..32)) {
        let v = ScramVerifier::generate(ScramHash::Sha256, &pw, 64).unwrap();
        let back = ScramVerifier::parse(v.to_string().as_bytes()).unwrap();
        prop_assert!(back.verify_password(&pw));
        prop_assert_eq!(back.verify_password(&other), pw == other);
    }
}
