//! The Received header we prepend, in Postfix's form. The protocol word
//! (SMTP, ESMTP, ESMTPA, ESMTPS, ESMTPSA) comes from the envelope, which
//! the session fills from its own TLS and AUTH state.

use std::net::IpAddr;

use super::session::Envelope;

/// `Received:` for one message (`date` in RFC 5322 form).
pub fn header(env: &Envelope, hostname: &str, ip: IpAddr, qid: &str, date: &str) -> String {
    let mut h = format!("Received: from {} (unknown [{ip}])\r\n", env.helo);
    if let Some(a) = &env.authenticated {
        h.push_str(&format!("\t(Authenticated sender: {})\r\n", a.account));
    }
    h.push_str(&format!(
        "\tby {hostname} (smtpd-auth) with {} id {qid}",
        env.protocol()
    ));
    if let [one] = env.to.as_slice() {
        h.push_str(&format!("\r\n\tfor <{one}>"));
    }
    h.push_str(&format!("; {date}\r\n"));
    h
}

/// The local time in RFC 5322 form.
pub fn rfc5322_date() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: plain data filled by localtime_r; strftime writes at most buf.len().
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    let mut buf = [0u8; 64];
    let fmt = c"%a, %d %b %Y %H:%M:%S %z";
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::{Credentials, Secrets, ServerConfig};
    use crate::smtp::session::{Action, Policy, Session};
    use crate::store::{Account, StoreError};

    struct Alice;
    impl Credentials for Alice {
        fn secrets(&self, a: &Account) -> Result<Option<Secrets>, StoreError> {
            Ok(
                (*a == Account::new("alice", "example.org")).then(|| Secrets {
                    user_password: Some(b"alice-pw".to_vec()),
                    ..Secrets::default()
                }),
            )
        }
    }
    impl crate::smtp::accounts::Directory for Alice {}

    fn policy() -> Policy {
        Policy {
            hostname: "mx.example.org".into(),
            mydestination: vec!["example.org".into()],
            relay_domains: vec![],
            local_recipient_check: false,
            recipient_limit: 1000,
            mynetworks: vec![],
            auth_enabled: true,
            auth_needs_tls: false,
            tls_available: true,
            tls_required: false,
            mechanisms_plain: vec!["PLAIN"],
            mechanisms_tls: vec!["PLAIN"],
            broken_auth_clients: false,
            message_size_limit: 1000,
            hard_error_limit: 20,
            relay_restrictions: vec![],
            recipient_restrictions: vec![],
            can_relay: false,
            can_deliver_local: true,
        }
    }

    /// Drive a session with command lines to the end of DATA; the header's
    /// protocol word.
    fn protocol(implicit_tls: bool, lines: &[&str]) -> String {
        let server = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
        let mut s = Session::new(policy(), server, "192.0.2.1".parse().unwrap(), implicit_tls);
        for l in lines {
            let a = s.line(l.as_bytes(), &Alice);
            assert!(
                !matches!(a, Action::Close(_)),
                "{l}: {a:?} (session closed)"
            );
        }
        let env = s.data_done(10).unwrap();
        let h = header(
            &env,
            "mx.example.org",
            "192.0.2.1".parse().unwrap(),
            "Q1",
            "D",
        );
        let word = h.split(" with ").nth(1).unwrap();
        word.split(' ').next().unwrap().to_string()
    }

    const MAIL: [&str; 3] = [
        "MAIL FROM:<alice@example.org>",
        "RCPT TO:<bob@example.org>",
        "DATA",
    ];
    const AUTH: &str = "AUTH PLAIN AGFsaWNlAGFsaWNlLXB3";

    #[test]
    fn protocol_word_follows_the_session() {
        fn with(first: &[&'static str]) -> Vec<&'static str> {
            [first, &MAIL[..]].concat()
        }
        assert_eq!(protocol(false, &with(&["HELO c"])), "SMTP");
        assert_eq!(protocol(false, &with(&["EHLO c"])), "ESMTP");
        assert_eq!(protocol(false, &with(&["EHLO c", AUTH])), "ESMTPA");
        assert_eq!(
            protocol(false, &with(&["EHLO c", "STARTTLS", "EHLO c"])),
            "ESMTPS"
        );
        assert_eq!(
            protocol(false, &with(&["EHLO c", "STARTTLS", "EHLO c", AUTH])),
            "ESMTPSA"
        );
        assert_eq!(protocol(true, &with(&["EHLO c"])), "ESMTPS");
        assert_eq!(protocol(true, &with(&["EHLO c", AUTH])), "ESMTPSA");
        // After STARTTLS a HELO client is still a HELO client.
        assert_eq!(
            protocol(false, &with(&["EHLO c", "STARTTLS", "HELO c"])),
            "SMTP"
        );
    }

    #[test]
    fn header_names_the_authenticated_sender_and_single_recipient() {
        let server = ServerConfig::new("smtp", "mx.example.org", b"example.org").unwrap();
        let mut s = Session::new(policy(), server, "192.0.2.1".parse().unwrap(), false);
        for l in [&["EHLO c", AUTH][..], &MAIL[..]].concat() {
            s.line(l.as_bytes(), &Alice);
        }
        let env = s.data_done(1).unwrap();
        let h = header(&env, "mx", "192.0.2.1".parse().unwrap(), "Q", "DATE");
        assert_eq!(
            h,
            "Received: from c (unknown [192.0.2.1])\r\n\t(Authenticated sender: alice@example.org)\r\n\tby mx (smtpd-auth) with ESMTPA id Q\r\n\tfor <bob@example.org>; DATE\r\n"
        );
    }
}
