use super::*;
use std::os::fd::AsRawFd;

fn fds(pid: &str, n: &str, names: Option<&str>) -> Result<Option<Vec<(RawFd, String)>>, SysdError> {
    parse_listen_env(Some(pid), Some(n), names, 42)
}

#[test]
fn listen_env_names_each_descriptor_from_three_on() {
    let got = fds("42", "3", Some("dovecot:submission:submissions")).unwrap();
    assert_eq!(
        got,
        Some(vec![
            (3, "dovecot".to_string()),
            (4, "submission".to_string()),
            (5, "submissions".to_string()),
        ])
    );
}

#[test]
fn listen_env_for_another_process_or_absent_is_not_activation() {
    assert_eq!(fds("41", "2", None), Ok(None));
    assert_eq!(parse_listen_env(None, Some("2"), None, 42), Ok(None));
    assert_eq!(parse_listen_env(Some("42"), None, None, 42), Ok(None));
}

#[test]
fn listen_env_without_names_calls_them_unknown() {
    let got = fds("42", "2", None).unwrap().unwrap();
    assert_eq!(got[1], (4, "unknown".to_string()));
    assert_eq!(fds("42", "0", Some("")), Ok(Some(vec![])));
}

#[test]
fn listen_env_errors_are_clear() {
    assert!(matches!(
        fds("x", "1", None),
        Err(SysdError::NotANumber {
            var: "LISTEN_PID",
            ..
        })
    ));
    assert!(matches!(
        fds("42", "-1", None),
        Err(SysdError::NotANumber {
            var: "LISTEN_FDS",
            ..
        })
    ));
    assert_eq!(fds("42", "5000", None), Err(SysdError::TooMany(5000)));
    assert_eq!(
        fds("42", "2", Some("dovecot")),
        Err(SysdError::NameCount { names: 1, fds: 2 })
    );
    let e = SysdError::UnknownName {
        fd: 3,
        name: "smtpd-auth.socket".into(),
    }
    .to_string();
    assert!(
        e.contains("smtpd-auth.socket") && e.contains("submissions"),
        "{e}"
    );
}

#[test]
fn names_decide_roles() {
    assert_eq!(Role::from_name("submission"), Some(Role::Smtp));
    assert_eq!(Role::from_name("smtp"), Some(Role::Smtp));
    assert_eq!(Role::from_name("submissions"), Some(Role::Smtps));
    assert_eq!(Role::from_name("smtps"), Some(Role::Smtps));
    assert_eq!(Role::from_name("dovecot"), Some(Role::Dovecot));
    assert_eq!(Role::from_name("saslauthd"), Some(Role::Saslauthd));
    assert_eq!(Role::from_name("unknown"), None);
    assert_eq!(Role::from_name("Dovecot"), None);
}

#[test]
fn sockets_are_checked_against_their_role() {
    let dir = tempfile::tempdir().unwrap();
    let unix = UnixListener::bind(dir.path().join("s")).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    assert_eq!(check_listening(unix.as_raw_fd(), Role::Dovecot), Ok(()));
    assert_eq!(check_listening(tcp.as_raw_fd(), Role::Smtps), Ok(()));
    let err = |fd, role| check_listening(fd, role).unwrap_err().to_string();
    assert!(err(unix.as_raw_fd(), Role::Smtp).contains("TCP socket is needed"));
    assert!(err(tcp.as_raw_fd(), Role::Saslauthd).contains("UNIX socket is needed"));
    assert!(err(udp.as_raw_fd(), Role::Smtp).contains("not a stream socket"));
    assert!(err(client.as_raw_fd(), Role::Smtp).contains("not listening"));
    assert!(err(file.as_raw_fd(), Role::Smtp).contains("not a socket"));
    // Close-on-exec was set on the one that passed.
    // SAFETY: F_GETFD on a descriptor this test owns.
    let flags = unsafe { libc::fcntl(tcp.as_raw_fd(), libc::F_GETFD) };
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn notify_socket_paths_and_abstract_names() {
    assert_eq!(
        parse_notify_socket("/run/systemd/notify"),
        Ok(NotifyAddr::Path("/run/systemd/notify".into()))
    );
    assert_eq!(
        parse_notify_socket("@/org/x/notify"),
        Ok(NotifyAddr::Abstract(b"/org/x/notify".to_vec()))
    );
    for bad in ["", "@", "run/notify", "vsock:2:1234"] {
        assert!(parse_notify_socket(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn messages() {
    assert_eq!(message(State::Ready, "", 5), "READY=1\n");
    assert_eq!(message(State::Stopping, "", 5), "STOPPING=1\n");
    assert_eq!(
        message(State::Reloading, "", 1_234_567),
        "RELOADING=1\nMONOTONIC_USEC=1234567\n"
    );
    assert_eq!(
        message(State::Ready, "serving\nSTOPPING=1", 0),
        "READY=1\nSTATUS=serving STOPPING=1\n"
    );
}

fn received(sock: &UnixDatagram) -> String {
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifier_sends_to_a_path_and_an_abstract_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let server = UnixDatagram::bind(&path).unwrap();
    let n = Notifier::to(&NotifyAddr::Path(path)).unwrap();
    assert!(n.enabled());
    n.notify(State::Reloading, "").unwrap();
    let m = received(&server);
    let usec: u64 = m
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.strip_suffix('\n'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{m:?}"));
    assert!(usec > 0);

    use std::os::linux::net::SocketAddrExt;
    let name = format!("sasldb-sysd-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let server = UnixDatagram::bind_addr(&addr).unwrap();
    let n = Notifier::to(&NotifyAddr::Abstract(name.into_bytes())).unwrap();
    n.notify(State::Ready, "up").unwrap();
    assert_eq!(received(&server), "READY=1\nSTATUS=up\n");
}

#[test]
fn no_notify_socket_sends_nothing() {
    let n = Notifier::default();
    assert!(!n.enabled());
    assert!(n.notify(State::Ready, "").is_ok());
}
