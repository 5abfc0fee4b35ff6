#!/bin/sh
# Install smtp-reply-exporter on a mail host, as root, from this checkout (or a
# wheel): a virtualenv in /opt/smtp-reply-exporter, the service user
# (sysusers), the configuration in /etc/smtp-reply-exporter, read access to the
# mail log, and the systemd unit, enabled and started. Running it again
# upgrades the program and keeps the configuration; --uninstall removes it.
#
#   deploy/install.sh [options]
#     --log FILE        the mail log to follow (default: /var/log/mail.log on
#                       Debian and Ubuntu, /var/log/maillog on RHEL and its kin)
#     --journal UNIT    follow UNIT in journald instead of a file (e.g.
#                       postfix.service); the service gets group systemd-journal
#     --wheel FILE      install this wheel instead of building this checkout
#     --python PYTHON   the Python (3.10 or later) to make the virtualenv with
#     --no-start        install and enable, but do not (re)start the service
#     --prefix DIR      install under DIR instead of / (a staging root, for
#                       tests and packaging: nothing outside DIR is touched,
#                       systemd is not told, and the virtualenv only runs there)
#     --uninstall       stop and remove the program, unit and user files;
#                       keep the configuration and state
#     --purge           with --uninstall: remove the configuration and the
#                       state too
#
# The steps and their reasons are in README.md, "Installing on a mail host".
set -eu

NAME=smtp-reply-exporter
SOURCE=$(cd "$(dirname "$0")/.." && pwd)

log= journal_unit= wheel= python= start=yes prefix= uninstall=no purge=no
usage() { sed -n '/^#   deploy/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --log) log=${2:?--log needs a file}; shift ;;
        --journal) journal_unit=${2:?--journal needs a unit}; shift ;;
        --wheel) wheel=${2:?--wheel needs a file}; shift ;;
        --python) python=${2:?--python needs a program}; shift ;;
        --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
        --no-start) start=no ;;
        --uninstall) uninstall=yes ;;
        --purge) purge=yes ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
if [ "$purge" = yes ] && [ "$uninstall" = no ]; then
    echo "install.sh: --purge goes with --uninstall" >&2
    exit 2
fi
[ -z "$prefix" ] || prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
if [ "$(id -u)" != 0 ] && [ -z "$prefix" ]; then
    echo "install.sh: run it as root (or with --prefix DIR to stage the files)" >&2
    exit 1
fi

# Where everything goes, as the running system sees it; $prefix is added only
# when writing.
VENV=/opt/$NAME
CONFIG_DIR=/etc/$NAME
CONFIG=$CONFIG_DIR/config.yml
UNIT=/etc/systemd/system/$NAME.service
DROPIN_DIR=/etc/systemd/system/$NAME.service.d
JOURNAL_DROPIN=$DROPIN_DIR/journal.conf
SYSUSERS=/etc/sysusers.d/$NAME.conf
STATE_DIR=/var/lib/$NAME

say() { echo "install.sh: $*"; }
# systemd is told only when it runs this system and nothing is staged.
systemd_runs() { [ -z "$prefix" ] && [ -d /run/systemd/system ]; }

if [ "$uninstall" = yes ]; then
    if systemd_runs; then
        systemctl disable --now "$NAME.service" 2>/dev/null || true
    fi
    rm -rf "$prefix$VENV" "$prefix$DROPIN_DIR"
    rm -f "$prefix$UNIT" "$prefix$SYSUSERS"
    if systemd_runs; then systemctl daemon-reload; fi
    if [ "$purge" = yes ]; then
        rm -rf "$prefix$CONFIG_DIR" "$prefix$STATE_DIR"
        say "removed $NAME, its configuration and its state"
    else
        say "removed $NAME; kept $CONFIG_DIR and $STATE_DIR (--purge removes them)"
    fi
    # The user stays, as Debian's packages leave theirs: files it owned
    # elsewhere would otherwise pass to the next user given its UID.
    say "the user $NAME is left in place (userdel $NAME removes it)"
    exit 0
fi

# The distribution decides where the mail log is and how its reader gets in.
family=debian
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    ids=$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")
    case " $ids " in
        *" rhel "*|*" fedora "*|*" centos "*) family=rhel ;;
    esac
fi
if [ -z "$log" ]; then
    if [ "$family" = rhel ]; then log=/var/log/maillog; else log=/var/log/mail.log; fi
fi

# A Python the package supports: RHEL 9's python3 is 3.9, its python3.11 fits.
if [ -z "$python" ]; then
    for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            python=$(command -v "$candidate")
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "install.sh: no Python 3.10 or later found (RHEL 9: dnf install python3.11)" >&2
        exit 1
    fi
fi
# Debian and Ubuntu split venv's pip bootstrap into python3-venv.
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ -z "$prefix" ] && command -v apt-get >/dev/null 2>&1; then
        say "installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
    else
        echo "install.sh: $python cannot make a virtualenv (Debian, Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

# 1. The program: a virtualenv of its own, so the system's Python packages
# (PEP 668) are not touched. Binary wheels only for the dependencies: no
# compiler is needed. An existing virtualenv is upgraded in place.
if [ ! -x "$prefix$VENV/bin/python" ] || ! "$prefix$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "creating the virtualenv $VENV with $python"
    rm -rf "$prefix$VENV"
    "$python" -m venv "$prefix$VENV"
fi
pip() { "$prefix$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q "$@"; }
if [ -z "$wheel" ]; then
    # The checkout is built into a wheel first, so the dependencies can be
    # held to binary wheels while the package itself comes from source.
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    pip wheel --no-deps --wheel-dir "$build" "$SOURCE"
    wheel=$(echo "$build"/*.whl)
fi
pip install --upgrade --only-binary :all: "$wheel"
# pip keeps an installed program of the same version: a checkout changed
# since the last run would not replace it. The program itself is put in anew.
pip install --force-reinstall --no-deps "$wheel"
"$prefix$VENV/bin/$NAME" --version

# 2. The user: systemd-sysusers creates it (in group adm) from the same file
# the Debian package ships.
install -D -m 0644 "$SOURCE/deploy/systemd/$NAME.sysusers.conf" "$prefix$SYSUSERS"
if [ -n "$prefix" ]; then
    systemd-sysusers --root="$prefix" "$prefix$SYSUSERS"
else
    systemd-sysusers "$SYSUSERS"
fi

# 3. The configuration: the example, pointed at this host's log. An existing
# file is the postmaster's and is left as it is.
if [ -e "$prefix$CONFIG" ]; then
    say "keeping the existing $CONFIG"
else
    install -d -m 0755 "$prefix$CONFIG_DIR"
    if [ -n "$journal_unit" ]; then
        source_line="  - journal: {units: [$journal_unit]}"
    else
        source_line="  - path: $log"
    fi
    # The example's first source is the only line that names /var/log/mail.log.
    sed "s|^  - path: /var/log/mail.log\$|$source_line|" \
        "$SOURCE/config/$NAME.example.yml" > "$prefix$CONFIG.new"
    chmod 0644 "$prefix$CONFIG.new"
    mv "$prefix$CONFIG.new" "$prefix$CONFIG"
    say "wrote $CONFIG (reading ${journal_unit:-$log})"
fi
# The state directory, which systemd's StateDirectory= would also make: here
# so that the check below, and a start without systemd, find it.
if [ -n "$prefix" ]; then
    install -d -m 0750 "$prefix$STATE_DIR"
    # A staged config still names the real paths; check it against the staged state directory.
    "$prefix$VENV/bin/$NAME" --config "$prefix$CONFIG" --state-file "$prefix$STATE_DIR/state.json" --check-config
else
    install -d -m 0750 -o "$NAME" -g "$NAME" "$STATE_DIR"
    "$prefix$VENV/bin/$NAME" --config "$CONFIG" --check-config
fi

# 4. Read access to the log.
if [ -n "$journal_unit" ]; then
    install -d -m 0755 "$prefix$DROPIN_DIR"
    printf '# Written by install.sh --journal: journald is read as group systemd-journal.\n[Service]\nSupplementaryGroups=systemd-journal\n' \
        > "$prefix$JOURNAL_DROPIN"
else
    rm -f "$prefix$JOURNAL_DROPIN"
    if [ "$family" = rhel ]; then
        # /var/log/maillog is 0600 root. An ACL entry for the service's user
        # opens it for reading; logrotate copies a log's ACL to the new file
        # it creates, so the entry survives rotation.
        if [ -e "$prefix$log" ]; then
            setfacl -m "u:$NAME:r" "$prefix$log"
            say "granted $NAME read access to $log (ACL)"
        else
            say "$log does not exist yet: once it does, run setfacl -m u:$NAME:r $log"
        fi
    elif [ -e "$prefix$log" ]; then
        # Debian's rsyslog writes the mail log as root:adm 0640, and the
        # sysusers file puts the service's user in adm.
        group=$(stat -c %G "$prefix$log")
        if [ "$group" != adm ]; then
            say "warning: $log belongs to group $group, not adm: the service may not read it"
        fi
    fi
fi

# 5. The unit, pointing at the virtualenv.
install -D -m 0644 "$SOURCE/deploy/systemd/$NAME.service" "$prefix$UNIT"
if systemd_runs; then
    systemctl daemon-reload
    systemctl enable "$NAME.service" >/dev/null
    if [ "$start" = yes ]; then
        systemctl restart "$NAME.service"
        say "started: systemctl status $NAME; curl -s http://127.0.0.1:10925/metrics"
    fi
elif [ -z "$prefix" ]; then
    say "systemd does not run here: start $VENV/bin/$NAME --config $CONFIG yourself"
fi
say "installed $("$prefix$VENV/bin/$NAME" --version)"
