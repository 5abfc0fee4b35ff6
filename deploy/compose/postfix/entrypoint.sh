#!/bin/sh
# Start Postfix in the foreground (as PID 1: docker stop reaches master).
# The log directory and file are made like Debian's /var/log/mail.log: owned
# by root, readable by group adm (GID 4), which the exporter's user is in.
set -eu
log=$(postconf -hx maillog_file)
dir=$(dirname "$log")
mkdir -p "$dir"
chown root:adm "$dir"
chmod 0750 "$dir"
[ -e "$log" ] || : > "$log"
chown root:adm "$log"
chmod 0640 "$log"
exec postfix start-fg
