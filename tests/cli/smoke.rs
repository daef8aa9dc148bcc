use crate::common::*;

fn create_list_delete_round_trip() {
    let s = Scratch::new();
    let db = s.db();
    let db = db.to_str().unwrap();
    let o = s.run(
        SASLPASSWD,
        &["-p", "-c", "-u", "example.org", "-f", db, "alice"],
        Some(b"secret\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        mdb_dump(&s.db()),
        vec![(
            key("alice", "example.org", "userPassword"),
            b"secret".to_vec()
        )]
    );
    let o = s.run(LISTUSERS, &["-f", db], None);
    assert_eq!(stdout(&o), "alice@example.org: userPassword\n");
    let o = s.run(
        SASLPASSWD,
        &["-d", "-u", "example.org", "-f", db, "alice"],
        None,
    );
    assert!(o.status.success());
    assert!(mdb_dump(&s.db()).is_empty());
}

crate::tests!(create_list_delete_round_trip,);
