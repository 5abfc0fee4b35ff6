"""Start and stop a real Sendmail 8.17 (Debian 12 binaries) beside Postfix.

The sendmail packages conflict with postfix, so they are not installed: they
are fetched and unpacked into a private root (tests/mta/debian.py). The m4
that builds sendmail.cf comes the same way, and libwrap0, which the daemon
links against and a machine without tcp wrappers lacks, so nothing on the
host changes.

Sendmail logs through syslog(3) only, and glibc sends to /dev/log with no way
to choose another socket. The daemon therefore runs in a private mount
namespace (tests/mta/namespace.py) whose /dev/log is this lab's own datagram
socket, and whose /etc overlay holds the lab's hosts and nsswitch.conf and
lets the dynamic linker find the private root's libraries. A thread
(namespace.SyslogReceiver) reads that socket and writes classic syslog lines
("Mmm dd HH:MM:SS host sm-mta[pid]: ...") to the lab's log file. The host's
/dev and /etc are not touched.

The instance is private: its own sendmail.cf (generated with m4 from
sendmail-cf), queue, maps and pid file in a directory of its own, one listener
on 127.0.0.1 at a free port, no DNS (service switch "hosts files"). Test
domains are routed by a mailertable to the scripted peer's listeners, each
through its own copy of the esmtp mailer whose only difference is the port.

STARTTLS is offered with a self-signed certificate made at start (and used
with any peer that offers it), and SMTP AUTH (PLAIN, LOGIN) through Cyrus
SASL against a password database that is never made, so every AUTH is
refused. The SASL mechanisms are the host's (libsasl2-modules, installed by
tests/run); the lab's Sendmail.conf lies in the /etc overlay.

What the inbound side rejects is fixed here (the constants below), so the
traffic script can aim at it.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import debian
from .certs import self_signed
from .namespace import SyslogLab, answers_smtp, free_port, overlay, private_dev_log, wait_settled

PACKAGES = debian.Packages(Path("/var/tmp/smtp-reply-sendmail"), "sendmail-bin", "sendmail-cf", "m4", "libwrap0")
ROOT = PACKAGES.root
SENDMAIL = ROOT / "usr/libexec/sendmail/sendmail"
MAKEMAP = ROOT / "usr/libexec/sendmail/makemap"
M4 = ROOT / "usr/bin/m4"
CF_DIR = ROOT / "usr/share/sendmail/cf"

MYHOSTNAME = "mx1.lab.test"
LOCAL_DOMAIN = "lab.test"  # a local domain: unknown users get 550 5.1.1
SYSLOG_HOST = "mx1"
SYSLOG_TAG = "sm-mta"  # Debian runs the daemon as "sm-mta -L sm-mta"
# Aliases to /dev/null; every other local part of lab.test is unknown.
LOCAL_USERS = ("postmaster", "lab", "abuse-test", "sales")

# Client addresses (all on loopback; only 127.0.0.1 may relay).
CLIENT_TRUSTED = "127.0.0.1"
CLIENT_OUTSIDE = "127.0.0.5"  # relaying denied: 550 5.7.1
CLIENT_BLOCKED = "127.0.0.9"  # access map Connect: ERROR 550 5.7.1 (check_relay)
CLIENT_TEMP = "127.0.0.10"  # access map Connect: ERROR 421 4.3.2 (check_relay)

SENDER_BLOCKED = "offers@promo-blast.example"  # From: ERROR 550 5.7.1 (check_mail)
SENDER_TEMP = "billing@slow-dns.example"  # From: ERROR 451 4.7.1 (check_mail)
SENDER_REJECTED = "spam@bulk.example"  # From: REJECT (sendmail's own 550 5.7.1)
RCPT_BLOCKED = "abuse-test@lab.test"  # To: ERROR 550 5.7.1 (check_rcpt)
RCPT_GREYLISTED = "sales@lab.test"  # To: ERROR 450 4.2.0 (check_rcpt)

ACCESS = {
    f"Connect:{CLIENT_BLOCKED}": 'ERROR:"550 5.7.1 Known spam source, see https://lab.test/bl?ip=127.0.0.9"',
    f"Connect:{CLIENT_TEMP}": 'ERROR:"421 4.3.2 Connection rate limit exceeded, 25 per 60s"',
    f"Connect:{CLIENT_TRUSTED}": "RELAY",
    f"From:{SENDER_BLOCKED}": 'ERROR:"550 5.7.1 Sender blocked by policy 2024-11"',
    f"From:{SENDER_TEMP}": 'ERROR:"451 4.7.1 Sender domain does not resolve, try again in 300 seconds"',
    f"From:{SENDER_REJECTED}": "REJECT",
    f"To:{RCPT_BLOCKED}": 'ERROR:"550 5.7.1 Mailbox closed to external mail"',
    f"To:{RCPT_GREYLISTED}": 'ERROR:"450 4.2.0 Greylisted for 300 seconds"',
}


class SendmailLabError(RuntimeError):
    pass


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or None when it can. The packages
    are fetched when the lab starts (PackagesUnavailable without network)."""
    return debian.unavailable("the Sendmail lab needs root (unshare --mount, a private /dev/log)", "ldconfig")


class SendmailLab(SyslogLab):
    """One private Sendmail daemon. Use as a context manager or start()/cleanup().

    routes: domain -> (mailer name, port of the scripted peer). Every mailer
    is a copy of Sendmail's esmtp mailer that connects to 127.0.0.1 at that
    port; its name shows in the log as mailer=<name>.
    """

    def __init__(self, log: Path, name: str = "smtp-reply-sendmail-lab",
                 routes: dict[str, tuple[str, int]] | None = None) -> None:
        super().__init__(name, "Sendmail", SYSLOG_HOST, log)
        self.queue = self.base / "queue"
        self.etc = self.base / "etc"  # what the overlay adds to /etc
        self.log = log
        self.routes = dict(routes or {})

    # -- configuration -------------------------------------------------------

    def _mc(self) -> str:
        b = self.base
        return f"""divert(-1)
divert(0)dnl
VERSIONID(`smtp-reply-exporter lab')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{MYHOSTNAME}')dnl
define(`confSERVICE_SWITCH_FILE', `{b}/service.switch')dnl
define(`confHOSTS_FILE', `{self.etc}/hosts')dnl
define(`QUEUE_DIR', `{self.queue}')dnl
define(`confPID_FILE', `{b}/sendmail.pid')dnl
define(`STATUS_FILE', `{b}/sendmail.st')dnl
define(`ALIAS_FILE', `{b}/aliases')dnl
define(`confCW_FILE', `{b}/local-host-names')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confDEAD_LETTER_DROP', `{b}/dead.letter')dnl
define(`confDOUBLE_BOUNCE_ADDRESS', `')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit,MapInUnsafeDirPath')dnl
define(`confDELIVERY_MODE', `background')dnl
define(`confLOG_LEVEL', `9')dnl
define(`confPRIVACY_FLAGS', `authwarnings,noexpn,novrfy')dnl
define(`confTO_CONNECT', `5s')dnl
define(`confTO_INITIAL', `10s')dnl
define(`confTO_ICONNECT', `5s')dnl
define(`confMIN_QUEUE_AGE', `1h')dnl
define(`confBIND_OPTS', `-DNSRCH -DEFNAMES')dnl
define(`confSMTP_LOGIN_MSG', `$j Sendmail $v; $b')dnl
define(`CERT_DIR', `{b}')dnl
define(`confCACERT_PATH', `CERT_DIR')dnl
define(`confCACERT', `CERT_DIR/tls.crt')dnl
define(`confSERVER_CERT', `CERT_DIR/tls.crt')dnl
define(`confSERVER_KEY', `CERT_DIR/tls.key')dnl
define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl
TRUST_AUTH_MECH(`PLAIN LOGIN')dnl
FEATURE(`nocanonify')dnl
FEATURE(`use_cw_file')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`access_db', `hash {b}/access')dnl
FEATURE(`blocklist_recipients')dnl  # after access_db, which it needs
FEATURE(`mailertable', `hash {b}/mailertable')dnl
DAEMON_OPTIONS(`Port={self.port}, Addr=127.0.0.1, Name=MTA')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""

    def _with_mailers(self, cf: str) -> str:
        """Add one copy of the esmtp mailer per route, connecting to its port."""
        m = re.search(r"^Mesmtp,.*?\n(?:\t\t.*\n)*", cf, re.M)
        if m is None:
            raise SendmailLabError("no esmtp mailer in the generated sendmail.cf")
        esmtp = m.group()
        copies = []
        for mailer, port in sorted(set(self.routes.values())):
            copy = esmtp.replace("Mesmtp,", f"M{mailer},", 1)
            copy = re.sub(r"A=TCP \$h\s*$", f"A=TCP $h {port}", copy.rstrip("\n")) + "\n"
            copies.append(copy)
        return cf[: m.end()] + "".join(copies) + cf[m.end():]

    def _write_config(self) -> Path:
        b = self.base
        (b / "service.switch").write_text("hosts files\naliases files\n")
        # Sendmail looks up the machine's own name at start and waits until it
        # resolves: the namespace's /etc/hosts names it, and no name or
        # address lookup goes to DNS.
        self.etc.mkdir()
        self_signed(b, MYHOSTNAME)
        # Cyrus SASL reads <app>.conf from /etc/sasl2 (first of its search
        # path); the password database is never made: every AUTH fails.
        (self.etc / "sasl2").mkdir()
        (self.etc / "sasl2" / "Sendmail.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {b / 'sasldb2'}\n")
        (self.etc / "hosts").write_text(f"127.0.0.1\t{MYHOSTNAME} {socket.gethostname()} localhost\n")
        (self.etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
        (b / "local-host-names").write_text(f"{LOCAL_DOMAIN}\n{MYHOSTNAME}\n")
        (b / "aliases").write_text("".join(f"{u}: /dev/null\n" for u in LOCAL_USERS))
        (b / "access").write_text("".join(f"{k}\t{v}\n" for k, v in ACCESS.items()))
        (b / "mailertable").write_text(
            "".join(f"{domain}\t{mailer}:[127.0.0.1]\n" for domain, (mailer, _) in self.routes.items()))
        (b / "lab.mc").write_text(self._mc())
        m4 = subprocess.run(
            [str(M4), f"-D_CF_DIR_={CF_DIR}/", str(CF_DIR / "m4/cf.m4"), str(b / "lab.mc")],
            capture_output=True, text=True, check=False)
        if m4.returncode != 0:
            raise SendmailLabError(f"m4 failed: {m4.stderr}")
        cf = b / "sendmail.cf"
        cf.write_text(self._with_mailers(m4.stdout))
        for table in ("access", "mailertable"):
            with open(b / table, "rb") as src:
                made = subprocess.run([str(MAKEMAP), "-C", str(cf), "hash", str(b / table)],
                                      stdin=src, capture_output=True, text=True, check=False)
            if made.returncode != 0:
                raise SendmailLabError(f"makemap {table} failed: {made.stderr}")
        return cf

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> SendmailLab:
        PACKAGES.unpacked()
        self.queue.mkdir(mode=0o700)
        self.port = free_port()
        cf = self._write_config()
        self.syslog.start()
        # Outside, Sendmail waits a minute for the machine's own name to
        # resolve: name lookups are private too. Then the alias database.
        setup = (private_dev_log(self.syslog.socket_path, self.base / "dev")
                 + overlay("/etc", self.etc) + PACKAGES.linker_setup(self.etc)
                 + shlex.join([str(SENDMAIL), "-C", str(cf), "-bi"]) + "\n")
        self.daemon.start(setup, [str(SENDMAIL), "-C", str(cf), "-L", SYSLOG_TAG, "-bD"])
        self.daemon.wait_ready(lambda: answers_smtp(self.port), timeout=20)
        return self


    def sendmail(self, *args: str) -> list[str]:
        """The command line of `sendmail -C <this lab's sendmail.cf> ARGS` (-bp
        is mailq), run in the daemon's mount namespace, where the linker finds
        the private libraries."""
        return self.daemon.entered([str(SENDMAIL), "-C", str(self.base / "sendmail.cf"), *args])

    def settle(self, busy: Callable[[], bool], timeout: float = 60) -> None:
        """Wait until busy() is false and the log has been quiet for a moment."""
        wait_settled(self.syslog.count, lambda: not busy(), lambda: "the Sendmail lab did not settle",
                     timeout, settle=1.0)
