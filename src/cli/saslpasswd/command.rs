//! The `saslpasswd` command definition (the option table the parser uses,
//! and the source of the man page and completions) and saslpasswd2's usage
//! text.

use clap::{Arg, ArgAction, Command};

const AFTER_HELP: &str = "\
Compatibility:
  Flags, prompts, messages and exit codes are those of saslpasswd2 from Cyrus SASL 2.1.28, so a
  script written for one runs unchanged with the other. The store is Cyrus's LMDB layout: the data
  file at the path, LMDB's lock file at <path>-lock, keys user\\0realm\\0property.

Password input:
  On a terminal saslpasswd prompts \"Password: \" and \"Again (for verification): \" on standard
  output, with echo off; the two entries must match. With -p, or when standard input is not a
  terminal, there is no prompt: one read of at most 2048 bytes, one trailing newline removed.
  --password-fd N reads descriptor N the same way; --check asks only once. A password is never
  taken from the command line.

Exit status:
  0      success (deleting a user that does not exist is a success too)
  1      usage error; generic failure (the store cannot be opened or written); --check: the
         password does not match or the user has no usable secret
  4      auxprop_plugin in <appname>.conf names no sasldb store
  7      empty password, or the two passwords typed differ
  100    malformed <appname>.conf

Deliberate differences from saslpasswd2:
  * Every change is one LMDB transaction: all properties it sets or deletes land together or not
    at all (Cyrus commits each property separately).
  * -n stores a SCRAM-SHA-256 authPassword verifier instead of silently storing nothing, and
    removes an existing userPassword so the old password stops working.
  * -d also removes authPassword, whatever scram_secret_generate says, so a deleted user has no
    SCRAM login left.
  * A symbolic link as the store path (or as <path>-lock) is refused: LMDB keeps the lock file
    beside the name it was given, so two names for one data file mean two lock files and
    readers a writer cannot see.
  * The map grows by itself when full (Cyrus fails with \"generic failure\" after a few hundred
    to a few thousand users with the default 1 MiB map); the new size is recorded in the file.
  * A detail line naming the file, user or realm precedes \"generic failure\".
  * A password read as empty because its first byte is NUL (printf '\\0x' | saslpasswd -p) is
    refused with exit status 7 like any empty password; saslpasswd2 stores an empty
    userPassword and exits 0.

Batch input:
  --batch FILE reads one operation per line from FILE (- for standard input):
  user[@realm]:password    set a password (split at the first colon)
  -user[@realm]            delete the user's secrets
  # comment, blank lines   skipped
  Every line is checked before anything is written; one bad line (named by number, its
  password never shown) means nothing is written. All lines commit in one transaction, so
  an interrupted run leaves the store as it was. Running the same batch again changes
  nothing. A summary goes to standard output.

Import:
  --import OLDFILE copies every record of an old sasldb (Berkeley DB hash as Debian and Ubuntu
  write it, GDBM as Fedora, RHEL and Arch do, or LMDB) into the store, bytes exact, in one transaction. The old file is read
  read-only and checked page by page first: a truncated or damaged file is refused and the
  store left untouched (not created). A key the store holds with another value stops the
  import (nothing written, the accounts named) unless --replace; --dry-run reports the counts.
  Import into a new path, then point the consumers at it:
    saslpasswd --import /etc/sasldb2.bdb -f /etc/sasldb2

PostgreSQL:
  -f postgresql://USER[:PASS]@HOST[,HOST2][:PORT]/DB[?PARAM=VALUE&...] keeps the secrets in table
  sasldb, the layout Cyrus SASL's sql auxprop plugin reads:
    CREATE TABLE sasldb (authid text NOT NULL, realm text NOT NULL, property text NOT NULL,
      value text, PRIMARY KEY (authid, realm, property))
  A NULL value means absent. Create it once with --init-schema (it also adds a statement-level
  trigger, sasldb_notify, that sends NOTIFY sasldb on every change, whoever makes it); no command
  creates it implicitly. Without a password in the URL, PGPASSWORD and then ~/.pgpass (PGPASSFILE)
  are used, as libpq does. Several hosts fail over in order; writers take the first that accepts
  writes (target_session_attrs=read-write). Create, change, delete, -n, --batch (one transaction:
  COPY into a temporary table and one MERGE; PostgreSQL 15 or later), --dry-run, --check,
  --import and --doctor work on it; --postfix and --publish manage files and do not apply.
  Names and values must be UTF-8 text without NUL: anything else is refused, never altered.
  TLS (rustls), with libpq's parameters:
    sslmode=disable        no TLS
    sslmode=prefer         TLS when the server offers it, certificate not checked (the default)
    sslmode=require        TLS; certificate checked as verify-ca only when a root file is given
                           or ~/.postgresql/root.crt exists
    sslmode=verify-ca      TLS, the chain checked against the roots, not the host name
    sslmode=verify-full    TLS, chain and host name checked
    sslrootcert=FILE       trusted roots (PEM); default ~/.postgresql/root.crt for verify-*
    sslrootcert=system     the system's roots (/etc/ssl/certs/ca-certificates.crt); verify-full only
  A wrong CA, a wrong host name or sslmode=require against a server without TLS fail with the
  reason; nothing is written.
  --import OLDFILE -f URL copies a Berkeley DB, GDBM or LMDB sasldb into the table in one
  transaction (--dry-run, --replace, conflicts named, as for a file). A record a text column
  cannot hold (binary legacy cmusaslsecret* values, a key not of the form user\\0realm\\0property,
  an empty value Cyrus would take as an empty password) stops the import, each named; with
  --skip-unstorable the rest is imported and those records are listed. Nothing is converted.
  --doctor -f URL [--json] checks the connection (the URL shown without its password), the
  server version, TLS, the table and its primary key, the trigger, what the role may do (readers
  need SELECT only; saslpasswd needs SELECT, INSERT, UPDATE and DELETE) and empty secrets, then
  prints the Cyrus lines below with the site's host, port, user and database (JSON: cyrus_lines).
  Cyrus lines for Postfix's smtpd.conf (Debian libsasl2-modules-sql; sql_passwd is the role's
  password; add SCRAM-SHA-256 to mech_list for -n users):
    pwcheck_method: auxprop
    auxprop_plugin: sql
    sql_engine: pgsql
    sql_hostnames: 127.0.0.1:5432
    sql_user: sasl
    sql_passwd: ...
    sql_database: sasl
    sql_select: SELECT value FROM sasldb WHERE authid='%u' AND realm='%r' AND property='%p' AND value IS NOT NULL
    sql_insert: INSERT INTO sasldb (authid,realm,property,value) VALUES ('%u','%r','%p',NULLIF('%v','NULL')) ON CONFLICT (authid,realm,property) DO UPDATE SET value=EXCLUDED.value
    sql_update: UPDATE sasldb SET value=NULLIF('%v','NULL') WHERE authid='%u' AND realm='%r' AND property='%p'
  Without \"AND value IS NOT NULL\" a NULL row reaches Cyrus as an empty password; saslpasswd2
  writes the literal NULL for properties it clears, hence NULLIF. %r is smtpd_sasl_local_domain,
  else the part after @, else myhostname.

Doctor:
  --doctor checks the store (exists, opens, owner and modes, and that Postfix's mail_owner really
  opens it: the check runs as that user; processes that map it with less than the map it records,
  which fail their next lookup), the copy in Postfix's chroot (present, same content, not a hard
  link, lock file group-writable, the same map check), the SASL config Postfix's libsasl reads
  (<config_dir>/sasl/<smtpd_sasl_path>.conf first; pwcheck_method, auxprop_plugin, mech_list against
  smtpd_sasl_security_options, CRAM-MD5/DIGEST-MD5 without userPassword), the realm Postfix looks
  up, main.cf (smtpd_sasl_auth_enable, permit_sasl_authenticated before reject_unauth_destination,
  smtpd_tls_auth_only) and which database format the installed sasldb plugin reads. Findings are
  grouped as ok, warning and error, each problem with a fix. --fix sets owner and modes of the
  store and the copy and publishes the copy (replacing a hard link; run `postfix reload` then).
  Exit status 0 when no error remains, 1 otherwise. --json prints one object:
    {\"schema\": \"sasldb-doctor/1\", \"store\": PATH, \"errors\": N, \"warnings\": N, \"fixed\": N,
     \"findings\": [{\"id\", \"level\": \"ok\"|\"warning\"|\"error\", \"subject\", \"message\",
                   \"hint\": string|null, \"fixed\": bool, \"was\": string|null}]}
  Ids are stable (store.perms, chroot.content, realm.postfix, ...); fields are only ever added.

Files:
  /etc/sasldb2             default store (-f, or sasldb_path in <appname>.conf, overrides)
  /etc/sasldb2-lock        LMDB lock file; readers need write access to it
  <appname>.conf           searched in $SASL_CONF_PATH, else /etc/sasl2, /etc/sasl,
                           /usr/lib/x86_64-linux-gnu/sasl2, /usr/lib/sasl2; options read:
                           sasldb_path, sasldb_mapsize (KiB), sasldb_maxreaders, auxprop_plugin,
                           mech_list, scram_secret_generate, scram_iteration_counter

Examples:
  Create a user in the realm Postfix looks up (the seed workflow for SMTP AUTH):
    saslpasswd -c -u \"$(postconf -h myhostname)\" alice
  Set a password from a script without a terminal:
    printf '%s' \"$PW\" | saslpasswd -p -c -u example.org alice
  Keep standard input free and pass the password on descriptor 3:
    saslpasswd --password-fd 3 -c -u example.org alice 3< pwfile
  Provision many users at once, checking the file first:
    saslpasswd --batch users.txt --dry-run -u example.org &&
      saslpasswd --batch users.txt -u example.org
  Delete a user:
    saslpasswd -d -u example.org alice
  Check a password (exit 0 if it matches):
    printf '%s' \"$PW\" | saslpasswd --check -f /etc/sasldb2 alice@example.org";

/// The command definition: the option table the parser uses and the source
/// of the man page and shell completions.
pub fn command() -> Command {
    let flag = |id: &'static str, short: char, help: &'static str| {
        Arg::new(id)
            .short(short)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    Command::new("saslpasswd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("set, delete and check SASL passwords in a sasldb file (saslpasswd2 compatible)")
        .long_about(
            "saslpasswd creates, changes and deletes the SASL secrets of a user in a sasldb file \
             laid out as Cyrus SASL's LMDB backend lays it out, so Cyrus SASL (Postfix, Cyrus \
             IMAP, saslauthd) reads what it writes. It accepts every flag of Cyrus saslpasswd2 \
             with the same prompts, messages and exit codes, and adds batch provisioning and \
             password checks for scripts. Passwords are never taken from the command line.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .override_usage(
            "saslpasswd [-v] [-c [-p] [-n]] [-d] [-a appname] [-f sasldb] [-u DOM] userid\n       \
             saslpasswd --batch FILE [--dry-run] [-n] [-a appname] [-f sasldb] [-u DOM]\n       \
             saslpasswd --check [-p] [--password-fd N] [-a appname] [-f sasldb] [-u DOM] userid\n       \
             saslpasswd --import OLDFILE [--dry-run] [--replace] [--skip-unstorable] [-a appname] [-f sasldb]\n       \
             saslpasswd --init-schema -f postgresql://USER[:PASS]@HOST[:PORT]/DB\n       \
             saslpasswd --doctor [--json] -f postgresql://USER[:PASS]@HOST[:PORT]/DB",
        )
        .arg(flag("pipe", 'p', "Pipe mode: no prompt, password read on stdin (automatic when stdin is not a terminal); one read of at most 2048 bytes, one trailing newline removed"))
        .arg(flag("create", 'c', "Create: accepted for compatibility; a set creates or overwrites either way"))
        .arg(flag("disable", 'd', "Delete the user's secrets (userPassword, authPassword, legacy cmusaslsecret*)"))
        .arg(flag("noplain", 'n', "Do not store the cleartext userPassword; store a SCRAM authPassword verifier instead"))
        .arg(Arg::new("domain").short('u').value_name("DOM").action(ArgAction::Set)
            .help("Realm for a userid without @ (default: the host name, lower-cased)"))
        .arg(Arg::new("file").short('f').value_name("sasldb").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Use this file as the sasldb (default /etc/sasldb2), or a PostgreSQL URL postgresql://USER[:PASS]@HOST[:PORT]/DB"))
        .arg(Arg::new("appname").short('a').value_name("appname").action(ArgAction::Set)
            .help("Application name: read <appname>.conf (default saslpasswd)"))
        .arg(flag("version", 'v', "Print version numbers and exit"))
        .arg(flag("help", 'h', "Print the Cyrus usage text and exit 1"))
        .arg(Arg::new("batch").long("batch").value_name("FILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Apply user[@realm]:password and -user[@realm] lines from FILE (- for stdin) in one transaction"))
        .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue)
            .help("Check the input and report what would change; write nothing"))
        .arg(Arg::new("import").long("import").value_name("OLDFILE").action(ArgAction::Set)
            .value_hint(clap::ValueHint::FilePath)
            .help("Copy every record of an old sasldb (Berkeley DB hash, GDBM, LMDB) into the store in one transaction, bytes exact"))
        .arg(Arg::new("replace").long("replace").action(ArgAction::SetTrue)
            .help("With --import: overwrite keys the store holds with other values (else nothing is written)"))
        .arg(Arg::new("skip-unstorable").long("skip-unstorable").action(ArgAction::SetTrue)
            .help("With --import into PostgreSQL: leave out (and list) records a text column cannot hold (binary, empty) instead of refusing the import"))
        .arg(Arg::new("init-schema").long("init-schema").action(ArgAction::SetTrue)
            .help("With -f postgresql://...: create table sasldb and its NOTIFY trigger (never done implicitly)"))
        .arg(Arg::new("password-fd").long("password-fd").value_name("N").action(ArgAction::Set)
            .help("Read the password from file descriptor N (pipe rules) instead of stdin"))
        .arg(Arg::new("check").long("check").action(ArgAction::SetTrue)
            .help("Verify a password for the user: exit 0 if it matches, 1 otherwise, saying why"))
        .arg(Arg::new("postfix").long("postfix").action(ArgAction::SetTrue)
            .help("Postfix integration on: default realm from Postfix, root:<group> 0640/0660 modes, chroot copy kept current (default: on for /etc/sasldb2 when smtpd runs chrooted; setting postfix_integration in <appname>.conf)"))
        .arg(Arg::new("no-postfix").long("no-postfix").action(ArgAction::SetTrue)
            .help("Postfix integration off, even for /etc/sasldb2"))
        .arg(Arg::new("postfix-group").long("postfix-group").value_name("GROUP").action(ArgAction::Set)
            .help("Group Postfix reads the store through (default: sasl if Postfix's mail_owner is in it, else mail_owner's group; setting postfix_group)"))
        .arg(Arg::new("publish").long("publish").action(ArgAction::SetTrue)
            .help("Bring the copy in Postfix's chroot up to date now (and fix owner and modes)"))
        .arg(Arg::new("doctor").long("doctor").action(ArgAction::SetTrue)
            .help("Check the store and the Postfix SASL setup, explain each problem with a fix"))
        .arg(Arg::new("fix").long("fix").action(ArgAction::SetTrue)
            .help("With --doctor: repair what can be repaired safely"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)
            .help("With --doctor: print the findings as JSON"))
        .arg(Arg::new("long-help").long("help").action(ArgAction::SetTrue)
            .help("Print this help and exit 0"))
        .arg(Arg::new("userid").value_name("userid").help("user, or user@realm (split at the first @)"))
        .after_long_help(AFTER_HELP)
}

/// saslpasswd2's usage text, byte for byte.
pub(super) fn usage(prog: &str) -> String {
    format!(
        "{}{prog}: usage: {prog} [-v] [-c [-p] [-n]] [-d] [-a appname] [-f sasldb] [-u DOM] userid\n\
         \t-p\tpipe mode -- no prompt, password read on stdin\n\
         \t-c\tcreate -- ask mechs to create the account\n\
         \t-d\tdisable -- ask mechs to disable/delete the account\n\
         \t-n\tno userPassword -- don't set plaintext userPassword property\n\
         \t  \t                   (only set mechanism-specific secrets)\n\
         \t-f sasldb\tuse given file as sasldb\n\
         \t-a appname\tuse appname as application name\n\
         \t-u DOM\tuse DOM for user domain\n\
         \t-v\tprint version numbers and exit\n",
        crate::cli::ACK
    )
}
