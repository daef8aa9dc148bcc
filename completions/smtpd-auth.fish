complete -c smtpd-auth -s c -d 'Configuration file in main.cf syntax (default: $SMTPD_AUTH_CONFIG, none when it is empty; else /etc/smtpd-auth/main.cf when present)' -r -F
complete -c smtpd-auth -s o -d 'Override a parameter, as master.cf\'s -o does' -r
complete -c smtpd-auth -l listen -d 'SMTP listener (plain, STARTTLS offered); repeatable (default: smtpd_listen, else 127.0.0.1:2525 when nothing else is served)' -r
complete -c smtpd-auth -l listen-tls -d 'Implicit-TLS SMTP listener (like port 465); repeatable' -r
complete -c smtpd-auth -l print-config -d 'Print the parameters set explicitly (like postconf -n) and exit'
complete -c smtpd-auth -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smtpd-auth -s V -l version -d 'Print version'
