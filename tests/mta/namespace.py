"""A lab daemon in a private mount namespace.

The Debian binaries the labs run have paths compiled in (/etc files, spool
directories, /dev/log for syslog(3)). Each lab therefore starts its daemon
with `unshare --mount`, under a shell script that first lays the lab's own
files over the host's (overlays and bind mounts that only that namespace
sees) and then execs the daemon, so the process started is the daemon
itself. The host's files are never written.

SyslogReceiver stands in for the syslog daemon behind such a private
/dev/log, for the MTAs that log only through syslog(3).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path


class DaemonError(RuntimeError):
    pass


def overlay(target: str, upper: Path) -> str:
    """Shell lines laying a writable overlay over `target`: what the lab put
    in `upper` shows through, and what the daemon writes lands there."""
    work = upper.with_name(f"{upper.name}.work")
    options = f"lowerdir={target},upperdir={upper},workdir={work}"
    return (f"mkdir -p {shlex.quote(str(upper))} {shlex.quote(str(work))}\n"
            f"mount -t overlay smtp-reply-lab -o {shlex.quote(options)} {shlex.quote(target)}\n")


def bind(source: Path, target: str) -> str:
    """Shell lines putting the file `source` at `target`."""
    return f"touch {shlex.quote(target)}\nmount --bind {shlex.quote(str(source))} {shlex.quote(target)}\n"


def private_dev_log(socket_path: Path, upper: Path) -> str:
    """Shell lines making `socket_path` the namespace's /dev/log, which
    syslog(3) writes to with no way to choose another socket."""
    return overlay("/dev", upper) + bind(socket_path, "/dev/log")


def answers_smtp(port: int) -> bool:
    """Whether 127.0.0.1:port greets with 220."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


def in_namespace(setup: str, command: list[str]) -> list[str]:
    """The command line running `command` inside `unshare --mount` after the
    shell lines `setup`; the process started becomes `command` itself."""
    script = "set -e\n" + setup + "exec " + shlex.join(command) + "\n"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


class NamespaceDaemon:
    """One daemon started by `setup` (shell lines) and then `command`,
    inside `unshare --mount`. Its output goes to base/daemon.out."""

    def __init__(self, base: Path, what: str) -> None:
        self.base = base
        self.what = what  # the daemon's name, for messages
        self.process: subprocess.Popen | None = None

    @property
    def output_file(self) -> Path:
        return self.base / "daemon.out"

    def start(self, setup: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.output_file, "wb") as output:
            self.process = subprocess.Popen(in_namespace(setup, command), env=env, stdout=output,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return read_text(self.output_file)

    def entered(self, command: list[str]) -> list[str]:
        """The command line running `command` in the running daemon's mount
        namespace: with its /etc, libraries and private /run."""
        assert self.process is not None, f"{self.what} is not running"
        return ["nsenter", "--target", str(self.process.pid), "--mount", "--", *command]

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 15,
                   details: Callable[[], str] = str) -> None:
        """Wait until ready() says the daemon serves; stop it and raise if it
        exits or takes longer than `timeout`, with its output and details()."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DaemonError(f"{self.what} did not start: {self.output()}\n{details()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # the daemon stops its own children
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def wait_settled(progress: Callable[[], int], done: Callable[[], bool], describe: Callable[[], str],
                 timeout: float, settle: float) -> None:
    """Wait until done() holds and progress() (the log's size or line count)
    has not moved for `settle` seconds; raise DaemonError(describe()) after
    `timeout`."""
    deadline = time.monotonic() + timeout
    quiet_since, last = None, -1
    while True:
        now = progress()
        if now != last or not done():
            quiet_since, last = None, now
        else:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return
        if time.monotonic() > deadline:
            raise DaemonError(describe())
        time.sleep(0.05)


# Sockets holding the ports free_port gave out, for the life of this process.
_reserved: list[socket.socket] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no other process gets while this one runs,
    so a test run beside this one cannot take it between now and the moment a
    daemon of this run listens there, nor answer on a port meant to refuse.

    A socket bound to it with SO_REUSEADDR, never listening, holds it: the
    kernel hands the port to no other bind to port 0 and to no outgoing
    connection, connections to it are refused until a daemon listens, and a
    daemon may bind and listen there when it sets SO_REUSEADDR too, as
    Postfix, Exim, Sendmail, OpenSMTPD, Prometheus and the exporter do."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _reserved.append(s)
    return s.getsockname()[1]


def private_dir(name: str) -> Path:
    """A new directory /var/tmp/<name>-<random> for one lab of one run, so runs
    side by side never share one. Under /var: Postfix writes its maillog_file
    only there (maillog_file_prefixes). Readable by all: the daemons' users
    walk into it."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/var/tmp"))
    path.chmod(0o755)
    return path


def add_users(etc: Path, homes: dict[str, str], gecos: str, candidates: Iterable[int]) -> dict[str, int]:
    """Write etc/passwd and etc/group (to lay over /etc): the host's, plus each
    user of homes (name -> home) with a group of its name, both with the first
    candidate id that no user or group has. Returns name -> id."""
    taken = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    ids = (i for i in candidates if i not in taken)
    passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
    made = {}
    for user, home in homes.items():
        made[user] = uid = next(ids)
        passwd += f"{user}:x:{uid}:{uid}:{gecos}:{home}:/usr/sbin/nologin\n"
        group += f"{user}:x:{uid}:\n"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    return made


def read_text(path: Path) -> str:
    """The file's text, "" while it does not exist."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class PrivateLab:
    """What the namespace labs share: a directory of its own (private_dir)
    holding everything of one run, the daemon, and the port it listens on at
    127.0.0.1. Use as a context manager or start()/cleanup()."""

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.base = private_dir(name)
        self.port = 0
        self.daemon = NamespaceDaemon(self.base, what)

    def start(self) -> PrivateLab:
        raise NotImplementedError

    def stop(self) -> None:
        self.daemon.stop()

    def cleanup(self) -> None:
        """Stop the daemon and remove its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def submit(self, recipients: list[str], message: str, sender: str = "",
               client: str = "127.0.0.1") -> None:
        """Relay one message from `client` (the null sender by default: no bounces)."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30, source_address=(client, 0)) as smtp:
            smtp.ehlo("submit.lab.test")
            smtp.sendmail(sender, recipients, message)  # a str: smtplib sends its lines with CRLF


# A classic syslog time stamp. The day is two characters wide: padded with a
# space by syslog daemons ("Dec  6"), with a zero by Postfix's own maillog_file
# ("Dec 06"), so a line's fields cannot be told by splitting at spaces.
CLASSIC_STAMP = r"(?P<month>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<time>\d\d:\d\d:\d\d)"
# An RFC 3339 one, as Debian 12's rsyslog writes: "2026-12-06T10:00:00.123456+01:00".
RFC3339_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"
_SYSLOG_LINE = re.compile(
    rf"(?P<stamp>{CLASSIC_STAMP}|{RFC3339_STAMP}) (?P<host>\S+) (?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ")


def syslog_tag(line: str) -> str | None:
    """The tag of a syslog line ("smtpd" of "Dec  6 10:00:00 mx3 smtpd[7]: ..."),
    read by pattern whatever its time stamp; None for a line of another shape."""
    m = _SYSLOG_LINE.match(line)
    return m["tag"] if m else None


def classic_stamp(when: float) -> str:
    """`when` (seconds since the epoch) as a syslog daemon stamps a line, in local time."""
    return time.strftime("%b %e %H:%M:%S", time.localtime(when))


class SyslogReceiver:
    """A /dev/log stand-in: reads syslog(3) datagrams, writes classic syslog lines.

    glibc sends "<PRI>Mmm dd HH:MM:SS tag[pid]: message"; a syslog daemon
    writes the time it received the message (rsyslog's default for the local
    socket) and its host name before the tag, and so does this one. `clock`
    gives that time: a test can make it any date.
    """

    def __init__(self, socket_path: Path, log_path: Path, hostname: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.hostname = hostname
        self.clock = clock
        self.lines = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    _HEAD = re.compile(rf"<\d+>{CLASSIC_STAMP} ")

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o666)  # the daemons' children drop privileges
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
        m = self._HEAD.match(datagram)  # none when not from syslog(3): kept whole
        message = datagram[m.end():] if m else datagram
        return f"{classic_stamp(self.clock())} {self.hostname} {message.rstrip(chr(10))}\n"

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


class SyslogLab(PrivateLab):
    """A lab whose daemon logs through syslog(3): a SyslogReceiver on
    base/syslog.sock (its /dev/log) writes the log, base/maillog by default."""

    def __init__(self, name: str, what: str, host: str, log: Path | None = None) -> None:
        super().__init__(name, what)
        self.syslog = SyslogReceiver(self.base / "syslog.sock", log or self.base / "maillog", host)

    def stop(self) -> None:
        super().stop()
        self.syslog.stop()
