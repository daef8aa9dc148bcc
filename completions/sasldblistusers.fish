complete -c sasldblistusers -s f -d 'Use this file as the sasldb (default /etc/sasldb2), or a PostgreSQL URL postgresql://USER[:PASS]@HOST[:PORT]/DB (see saslpasswd(8))' -r -F
complete -c sasldblistusers -l format -d 'Output view: compat (Cyrus lines, default), table or json' -r -f -a "compat\t''
table\t''
json\t''"
complete -c sasldblistusers -l realm -d 'Only list accounts in this realm (exact, case-sensitive)' -r
complete -c sasldblistusers -s v -d 'Print version numbers and exit'
complete -c sasldblistusers -s h -d 'Print the Cyrus usage text and exit 1'
complete -c sasldblistusers -l help -d 'Print this help and exit 0'
