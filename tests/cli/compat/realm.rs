//! spec §3.2: the default realm is gethostname() lower-cased.

use super::*;

// ------------------------------------------------------------------------------------------
// spec §3.2: the default realm is gethostname() lower-cased
// ------------------------------------------------------------------------------------------

fn default_realm_is_the_lowercased_host_name() {
    let pair = Pair::new();
    let unshare = Command::new("unshare").args(["--uts", "true"]).output();
    if !unshare.is_ok_and(|o| o.status.success()) {
        // Without a UTS namespace (unprivileged container), check the host's own name.
        let r = pair.same(
            "host realm",
            Prog::Passwd,
            &["-p", "-f", "$T/db", "h"],
            b"pw\n",
            EXACT,
        );
        assert_eq!(r.rc, 0);
        pair.same_records("host realm", "db");
        assert!(
            pair.ours.records("db")[0]
                .0
                .ends_with(format!("\0{}\0userPassword", realm()).as_bytes())
        );
        eprintln!("unshare --uts not permitted here: checked the host's own name only");
        return;
    }
    for side in [&pair.ours, &pair.cy] {
        let r = side.sh_cmd(
            "realm",
            "unshare --uts sh -c 'hostname Mail.Example.COM && echo pw | saslpasswd2 -p -f $T/db a \
             && hostname MyHost && echo pw | saslpasswd2 -p -f $T/db b'",
        );
        assert_eq!((r.rc, r.err.as_str()), (0, ""), "{r:?}");
    }
    pair.same_records("realm", "db");
    let recs = pair.ours.records("db");
    assert!(
        recs.iter()
            .any(|(k, _)| *k == key("a", "mail.example.com", "userPassword"))
    );
    assert!(
        recs.iter()
            .any(|(k, _)| *k == key("b", "myhost", "userPassword"))
    );
}

crate::tests!(default_realm_is_the_lowercased_host_name,);
