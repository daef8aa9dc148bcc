//! Every parameter `smtpd-auth` knows, with its default and its help
//! line (`smtpd-auth --help` and the man page list them from here).

/// A parameter: name, default (may refer to others), and what it is for.
pub struct Param {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every parameter `smtpd-auth` reads.
pub const PARAMS: &[Param] = &[
    Param {
        name: "myhostname",
        default: "",
        help: "this host's name (default: the host name)",
    },
    Param {
        name: "mydomain",
        default: "",
        help: "this host's domain (default: myhostname without its first label)",
    },
    Param {
        name: "smtpd_sasl_local_domain",
        default: "",
        help: "realm for logins without @ (default: $myhostname, as Postfix)",
    },
    Param {
        name: "smtpd_sasl_security_options",
        default: "noanonymous",
        help: "mechanism properties required (noplaintext, noactive, nodictionary, noanonymous, mutual_auth, forward_secrecy)",
    },
    Param {
        name: "smtpd_tls_auth_only",
        default: "",
        help: "offer and accept AUTH only under TLS (default: yes when TLS is available); on the Dovecot socket, refuse plaintext mechanisms unless Postfix says the session is secured (default there: no)",
    },
    Param {
        name: "cyrus_sasl_config_path",
        default: "",
        help: "where <smtpd_sasl_path>.conf is searched (default: Cyrus's path)",
    },
    Param {
        name: "smtpd_sasl_path",
        default: "smtpd",
        help: "Cyrus application name: <name>.conf gives mech_list, sasldb_path, scram_iteration_counter",
    },
    Param {
        name: "sasldb_path",
        default: "",
        help: "the store: an LMDB file, or a PostgreSQL URL postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass, or in the URL) (default: sasldb_path of <smtpd_sasl_path>.conf, else /etc/sasldb2)",
    },
    Param {
        name: "smtpd_auth_cache_ttl",
        default: "1h",
        help: "PostgreSQL store: how long an account's looked-up secrets are used without asking the database (0: always ask); changes notified by the database's trigger end it at once, as does losing its LISTEN connection",
    },
    Param {
        name: "smtpd_auth_cache_negative_ttl",
        default: "1h",
        help: "PostgreSQL store: how long \"no such account\" is remembered (0: always ask)",
    },
    Param {
        name: "smtpd_auth_cache_size",
        default: "100000",
        help: "PostgreSQL store: most accounts cached; while the database is unreachable, accounts that logged in within the last hour keep logging in with the same password, others fail temporarily",
    },
    Param {
        name: "syslog_name",
        default: "smtpd-auth",
        help: "log tag prefix, as Postfix's",
    },
    Param {
        name: "dovecot_auth_socket",
        default: "",
        help: "Dovecot-protocol auth socket for Postfix (smtpd_sasl_type = dovecot); empty: off",
    },
    Param {
        name: "dovecot_auth_socket_owner",
        default: "root",
        help: "owner of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_socket_group",
        default: "postfix",
        help: "group of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_socket_mode",
        default: "0660",
        help: "mode of the Dovecot auth socket",
    },
    Param {
        name: "dovecot_auth_require_client_cert",
        default: "no",
        help: "refuse Dovecot-protocol logins without valid-client-cert (Dovecot's auth_ssl_require_client_cert; Postfix never sends it)",
    },
    Param {
        name: "saslauthd_socket",
        default: "",
        help: "saslauthd-protocol socket (Cyrus pwcheck_method: saslauthd), e.g. /var/run/saslauthd/mux; empty: off",
    },
    Param {
        name: "saslauthd_socket_owner",
        default: "root",
        help: "owner of the saslauthd socket",
    },
    Param {
        name: "saslauthd_socket_group",
        default: "postfix",
        help: "group of the saslauthd socket",
    },
    Param {
        name: "saslauthd_socket_mode",
        default: "0660",
        help: "mode of the saslauthd socket",
    },
    Param {
        name: "smtpd_auth_failure_limit",
        default: "20",
        help: "authentication failures per client within smtpd_auth_failure_window before its attempts are refused (0: no limit)",
    },
    Param {
        name: "smtpd_auth_failure_window",
        default: "60s",
        help: "window of smtpd_auth_failure_limit (s, m or h)",
    },
    Param {
        name: "smtpd_auth_failure_exceptions",
        default: "",
        help: "client address blocks never limited (e.g. 127.0.0.0/8, [::1]/128)",
    },
    Param {
        name: "smtpd_listen",
        default: "",
        help: "SMTP listeners (address:port; STARTTLS where TLS is set up); --listen adds more",
    },
    Param {
        name: "smtpd_listen_tls",
        default: "",
        help: "implicit-TLS SMTP listeners (address:port, like port 465); --listen-tls adds more",
    },
    Param {
        name: "mydestination",
        default: "$myhostname, localhost.$mydomain, localhost",
        help: "domains delivered here, accepted from anyone",
    },
    Param {
        name: "relay_domains",
        default: "",
        help: "more domains accepted from anyone and passed to relayhost",
    },
    Param {
        name: "local_recipient_maps",
        default: "sasldb",
        help: "recipients accepted for mydestination domains: sasldb (accounts of the store in the realm of the domain, and postmaster) or empty (anyone, as Postfix with local_recipient_maps =)",
    },
    Param {
        name: "smtpd_recipient_limit",
        default: "1000",
        help: "most recipients of one message (0: no limit)",
    },
    Param {
        name: "mynetworks",
        default: "127.0.0.0/8, [::1]/128",
        help: "clients that may relay without authenticating",
    },
    Param {
        name: "smtpd_sasl_auth_enable",
        default: "yes",
        help: "offer and accept AUTH on the SMTP listeners",
    },
    Param {
        name: "broken_sasl_auth_clients",
        default: "no",
        help: "also advertise AUTH=... for old clients",
    },
    Param {
        name: "smtpd_tls_cert_file",
        default: "",
        help: "PEM certificate chain (default: a self-signed one, made once in the state directory)",
    },
    Param {
        name: "smtpd_tls_key_file",
        default: "$smtpd_tls_cert_file",
        help: "PEM private key",
    },
    Param {
        name: "smtpd_tls_session_cache_timeout",
        default: "3600s",
        help: "TLS session ticket lifetime (at most 7d); 0 turns resumption off",
    },
    Param {
        name: "smtpd_tls_security_level",
        default: "may",
        help: "none (no STARTTLS), may (STARTTLS offered) or encrypt (no MAIL or AUTH before STARTTLS)",
    },
    Param {
        name: "message_size_limit",
        default: "10240000",
        help: "largest message accepted, in bytes (0: no limit, as in Postfix)",
    },
    Param {
        name: "relayhost",
        default: "",
        help: "next hop for mail not delivered here ([host]:port)",
    },
    Param {
        name: "smtpd_timeout",
        default: "300s",
        help: "time a client may take to send a command or a line of data",
    },
    Param {
        name: "smtpd_max_session_time",
        default: "3600s",
        help: "longest a whole SMTP session may last, however active (smtpd_timeout bounds each wait)",
    },
    Param {
        name: "smtpd_hard_error_limit",
        default: "20",
        help: "errors after which a session is closed",
    },
    Param {
        name: "smtpd_relay_restrictions",
        default: "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        help: "checked at RCPT first: permit_mynetworks, permit_sasl_authenticated, permit_auth_destination, reject_unauth_destination, defer_unauth_destination, reject_non_fqdn_recipient, reject_sender_login_mismatch, reject, permit",
    },
    Param {
        name: "smtpd_recipient_restrictions",
        default: "",
        help: "checked at RCPT after smtpd_relay_restrictions (same names)",
    },
    Param {
        name: "smtpd_sasl_tls_security_options",
        default: "$smtpd_sasl_security_options",
        help: "smtpd_sasl_security_options for sessions under TLS",
    },
    Param {
        name: "smtpd_tls_wrappermode",
        default: "no",
        help: "smtpd_listen listeners speak TLS from the first byte (port 465)",
    },
    Param {
        name: "smtpd_error_sleep_time",
        default: "1s",
        help: "delay before each error reply once smtpd_soft_error_limit is reached",
    },
    Param {
        name: "smtpd_soft_error_limit",
        default: "10",
        help: "errors after which error replies are delayed",
    },
    Param {
        name: "smtpd_client_connection_count_limit",
        default: "50",
        help: "simultaneous connections per client address (mynetworks exempt; 0: no limit)",
    },
    Param {
        name: "default_process_limit",
        default: "100",
        help: "simultaneous SMTP sessions; more clients wait in the listen queue, as with Postfix's process limit (0: no limit; read at start)",
    },
    Param {
        name: "smtpd_client_auth_rate_limit",
        default: "0",
        help: "AUTH commands per client per minute (mynetworks exempt; 0: no limit)",
    },
    Param {
        name: "smtpd_client_ipv6_prefix_length",
        default: "64",
        help: "IPv6 clients count as one per network of this prefix length (0-128) for smtpd_client_connection_count_limit, smtpd_client_auth_rate_limit and smtpd_auth_failure_limit, here and on the Dovecot socket: one host usually holds a whole /64",
    },
    Param {
        name: "smtpd_auth_state_dir",
        default: "",
        help: "state directory, for the SCRAM salt key (scram-salt.key, 0600), the self-signed certificate made when none is configured, and the spool/ of message bodies being received (default: /var/lib/smtpd-auth as root, else ~/.local/state/smtpd-auth)",
    },
    Param {
        name: "smtpd_sasl_digest_uri_strict_host",
        default: "no",
        help: "DIGEST-MD5: refuse a digest-uri whose host part is not myhostname or an address of the listener (default no: only the service part is checked, as Cyrus does; curl sends smtp/<realm>)",
    },
    Param {
        name: "log_destination",
        default: "stderr",
        help: "where Postfix-format log lines go: stderr, syslog (/dev/log, facility mail) or a file path",
    },
    Param {
        name: "mail_owner",
        default: "postfix",
        help: "user the daemon runs as when started as root: it binds its sockets, gives up root, and only then serves anyone; a user with user or group ID 0 is refused, as Postfix does",
    },
    Param {
        name: "virtual_mailbox_base",
        default: "",
        help: "Maildir root for local domains (<base>/<domain>/<user>/Maildir); empty: local mail goes to relayhost too",
    },
];
