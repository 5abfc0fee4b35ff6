"""Start and stop a real Sendmail 8.17 (Debian 12 binaries) beside Postfix.

The sendmail packages conflict with postfix, so they are not installed: their
.deb files are fetched with `apt-get download` and unpacked with `dpkg -x`
into /var/tmp/smtp-reply-sendmail/root (kept between runs). The m4 that
builds sendmail.cf comes the same way, so nothing on the host changes.

Sendmail logs through syslog(3) only, and glibc sends to /dev/log with no way
to choose another socket. The daemon therefore runs under `unshare --mount`:
in its private mount namespace /dev is an overlay whose /dev/log is a
bind mount of this lab's own datagram socket. A thread (SyslogReceiver)
reads that socket and writes classic syslog lines ("Mmm dd HH:MM:SS host
sm-mta[pid]: ...") to the lab's log file. The host's /dev is not touched.

The instance is private: its own sendmail.cf (generated with m4 from
sendmail-cf), queue, maps and pid file under /var/tmp/<name>, one listener
on 127.0.0.1 at a free port, no DNS (service switch "hosts files"). Test
domains are routed by a mailertable to the scripted peer's listeners, each
through its own copy of the esmtp mailer whose only difference is the port.

What the inbound side rejects is fixed here (the constants below), so the
traffic script can aim at it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from .postfix_lab import free_port

STORE = Path("/var/tmp/smtp-reply-sendmail")
ROOT = STORE / "root"
PACKAGES = ("sendmail-bin", "sendmail-cf", "m4")
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
    """Why this machine cannot run the lab, or None when it can (fetching the
    packages first if they are not unpacked yet)."""
    if os.geteuid() != 0:
        return "the Sendmail lab needs root (unshare --mount, a private /dev/log)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing"
    try:
        fetch()
    except SendmailLabError as e:
        return str(e)
    return None


def fetch() -> None:
    """Unpack the sendmail and m4 packages into ROOT, downloading them once."""
    if SENDMAIL.exists() and M4.exists() and (CF_DIR / "m4/cf.m4").exists():
        return
    debs = STORE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    # apt's sandbox user cannot write here; that only costs a warning.
    result = subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise SendmailLabError(f"apt-get download {' '.join(PACKAGES)} failed: {reason[0]}")
    staging = STORE / "root.new"
    shutil.rmtree(staging, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(staging)], check=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    staging.rename(ROOT)


class SyslogReceiver:
    """A /dev/log stand-in: reads syslog(3) datagrams, writes classic syslog lines.

    glibc sends "<PRI>Mmm dd HH:MM:SS tag[pid]: message"; a syslog daemon
    inserts its host name after the time stamp, and so does this one.
    """

    def __init__(self, socket_path: Path, log_path: Path, hostname: str = SYSLOG_HOST) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.hostname = hostname
        self.lines = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    _HEAD = re.compile(r"<\d+>(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o666)  # sendmail's children drop privileges
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="syslog-receiver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        with open(self.log_path, "a", encoding="utf-8") as out:
            while not self._stop.is_set():
                try:
                    data = self._sock.recv(65536)
                except TimeoutError:
                    continue
                out.write(self.format(data.decode("utf-8", "replace")))
                out.flush()
                with self._lock:
                    self.lines += 1

    def format(self, datagram: str) -> str:
        m = self._HEAD.match(datagram)
        if m is None:  # not from syslog(3); keep it whole, stamped now
            return time.strftime("%b %e %H:%M:%S ") + f"{self.hostname} {datagram.rstrip()}\n"
        return f"{m['stamp']} {self.hostname} {datagram[m.end():].rstrip(chr(10))}\n"

    def count(self) -> int:
        with self._lock:
            return self.lines

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        self.socket_path.unlink(missing_ok=True)


# Runs inside `unshare --mount`: a private /dev whose /dev/log is our socket,
# and private name lookups (outside, Sendmail waits a minute for the
# machine's own name to resolve). Then the alias database and the daemon.
_NAMESPACE_SCRIPT = """set -e
mount -t tmpfs tmpfs "$LAB_DEV"
mkdir "$LAB_DEV/upper" "$LAB_DEV/work"
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$LAB_DEV/upper,workdir=$LAB_DEV/work" /dev
touch /dev/log
mount --bind "$LAB_SYSLOG" /dev/log
mount --bind "$LAB_HOSTS" /etc/hosts
mount --bind "$LAB_NSSWITCH" /etc/nsswitch.conf
"$LAB_SENDMAIL" -C "$LAB_CF" -bi
exec "$LAB_SENDMAIL" -C "$LAB_CF" -L "$LAB_TAG" -bD
"""


class SendmailLab:
    """One private Sendmail daemon. Use as a context manager or start()/stop().

    routes: domain -> (mailer name, port of the scripted peer). Every mailer
    is a copy of Sendmail's esmtp mailer that connects to 127.0.0.1 at that
    port; its name shows in the log as mailer=<name>.
    """

    def __init__(self, log: Path, name: str = "smtp-reply-sendmail-lab",
                 routes: dict[str, tuple[str, int]] | None = None) -> None:
        self.name = name
        self.base = Path("/var/tmp") / name
        self.queue = self.base / "queue"
        self.log = log
        self.routes = dict(routes or {})
        self.port = 0
        self.syslog = SyslogReceiver(self.base / "syslog.sock", log)
        self._proc: subprocess.Popen | None = None

    # -- configuration -------------------------------------------------------

    def _mc(self) -> str:
        b = self.base
        return f"""divert(-1)
divert(0)dnl
VERSIONID(`smtp-reply-exporter lab')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{MYHOSTNAME}')dnl
define(`confSERVICE_SWITCH_FILE', `{b}/service.switch')dnl
define(`confHOSTS_FILE', `{b}/hosts')dnl
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
        (b / "hosts").write_text(f"127.0.0.1\t{MYHOSTNAME} {socket.gethostname()} localhost\n")
        (b / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
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

    def start(self) -> None:
        fetch()
        shutil.rmtree(self.base, ignore_errors=True)
        self.queue.mkdir(parents=True, mode=0o700)
        (self.base / "dev").mkdir()
        self.port = free_port()
        cf = self._write_config()
        self.syslog.start()
        env = dict(os.environ, LAB_DEV=str(self.base / "dev"), LAB_SYSLOG=str(self.syslog.socket_path),
                   LAB_SENDMAIL=str(SENDMAIL),
                   LAB_HOSTS=str(self.base / "hosts"), LAB_NSSWITCH=str(self.base / "nsswitch.conf"), LAB_CF=str(cf), LAB_TAG=SYSLOG_TAG)
        self._proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _NAMESPACE_SCRIPT],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                out = self._proc.stdout.read().decode() if self._proc.stdout else ""
                self.stop()
                raise SendmailLabError(f"sendmail exited with {self._proc.returncode}: {out}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SendmailLabError(f"sendmail did not answer on 127.0.0.1:{self.port}")

    def queue_files(self) -> list[str]:
        """Queue ids of the messages still in the queue (deferred or in delivery)."""
        return sorted(p.name[2:] for p in self.queue.glob("qf*"))

    def settle(self, busy: "callable", timeout: float = 60) -> None:
        """Wait until the log has been quiet for a moment and busy() is false."""
        deadline = time.monotonic() + timeout
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.syslog.count()
            if n != last:
                last, quiet_since = n, time.monotonic()
            elif not busy() and time.monotonic() - quiet_since > 1.0:
                return
            time.sleep(0.1)
        raise SendmailLabError("the Sendmail lab did not settle")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            # The daemon (exec'd by the namespace's shell) stops its children.
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdout:
            self._proc.stdout.close()
        self.syslog.stop()

    def __enter__(self) -> SendmailLab:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
