complete -c saslpasswd -s u -d 'Realm for a userid without @ (default: the host name, lower-cased)' -r
complete -c saslpasswd -s f -d 'Use this file as the sasldb (default /etc/sasldb2), or a PostgreSQL URL postgresql://USER[:PASS]@HOST[:PORT]/DB' -r -F
complete -c saslpasswd -s a -d 'Application name: read <appname>.conf (default saslpasswd)' -r
complete -c saslpasswd -l batch -d 'Apply user[@realm]:password and -user[@realm] lines from FILE (- for stdin) in one transaction' -r -F
complete -c saslpasswd -l import -d 'Copy every record of an old sasldb (Berkeley DB hash, GDBM, LMDB) into the store in one transaction, bytes exact' -r -F
complete -c saslpasswd -l password-fd -d 'Read the password from file descriptor N (pipe rules) instead of stdin' -r
complete -c saslpasswd -l postfix-group -d 'Group Postfix reads the store through (default: sasl if Postfix\'s mail_owner is in it, else mail_owner\'s group; setting postfix_group)' -r
complete -c saslpasswd -s p -d 'Pipe mode: no prompt, password read on stdin (automatic when stdin is not a terminal); one read of at most 2048 bytes, one trailing newline removed'
complete -c saslpasswd -s c -d 'Create: accepted for compatibility; a set creates or overwrites either way'
complete -c saslpasswd -s d -d 'Delete the user\'s secrets (userPassword, authPassword, legacy cmusaslsecret*)'
complete -c saslpasswd -s n -d 'Do not store the cleartext userPassword; store a SCRAM authPassword verifier instead'
complete -c saslpasswd -s v -d 'Print version numbers and exit'
complete -c saslpasswd -s h -d 'Print the Cyrus usage text and exit 1'
complete -c saslpasswd -l dry-run -d 'Check the input and report what would change; write nothing'
complete -c saslpasswd -l replace -d 'With --import: overwrite keys the store holds with other values (else nothing is written)'
complete -c saslpasswd -l skip-unstorable -d 'With --import into PostgreSQL: leave out (and list) records a text column cannot hold (binary, empty) instead of refusing the import'
complete -c saslpasswd -l init-schema -d 'With -f postgresql://...: create table sasldb and its NOTIFY trigger (never done implicitly)'
complete -c saslpasswd -l check -d 'Verify a password for the user: exit 0 if it matches, 1 otherwise, saying why'
complete -c saslpasswd -l postfix -d 'Postfix integration on: default realm from Postfix, root:<group> 0640/0660 modes, chroot copy kept current (default: on for /etc/sasldb2 when smtpd runs chrooted; setting postfix_integration in <appname>.conf)'
complete -c saslpasswd -l no-postfix -d 'Postfix integration off, even for /etc/sasldb2'
complete -c saslpasswd -l publish -d 'Bring the copy in Postfix\'s chroot up to date now (and fix owner and modes)'
complete -c saslpasswd -l doctor -d 'Check the store and the Postfix SASL setup, explain each problem with a fix'
complete -c saslpasswd -l fix -d 'With --doctor: repair what can be repaired safely'
complete -c saslpasswd -l json -d 'With --doctor: print the findings as JSON'
complete -c saslpasswd -l help -d 'Print this help and exit 0'
