"""A scripted SMTP/LMTP server on 127.0.0.1 that answers the codes it is told to.

The reply a recipient gets is written in its local part, so the traffic script
chooses what the remote side answers our Postfix, one recipient at a time:

    c550_5_1_1_<tag>   RCPT gets "550 5.1.1 ..."
    n550_<tag>         RCPT gets "550 ..." (no enhanced code)
    m550_5_7_1_<tag>   RCPT gets a three-line reply "550-5.7.1 ...", "550-5.7.1 ...", "550 5.7.1 ..."
    x451_4_3_0_<tag>   RCPT accepted; the DATA command gets "451 4.3.0 ..."
    d554_5_7_1_<tag>   RCPT accepted; end of data gets "554 5.7.1 ..." (LMTP: this
                       recipient's own reply after the message)
    anything else      accepted everywhere with 250 (2.1.5 at RCPT, 2.0.0 after data)

The enhanced part is optional for every kind (`x451_<tag>`, `d250_<tag>`), and
<tag> must start with a letter. `SmtpPeer.script` can also map whole addresses
to a (kind, Reply), for traffic whose addresses should look like real ones.
Whole-session behaviour (greeting, EHLO/HELO, STARTTLS and MAIL FROM replies,
LMTP) is chosen per listener, each on its own port: Postfix has already sent
MAIL before the recipients are known. A listener whose STARTTLS reply is 2xx
does the TLS handshake after it, with a self-signed certificate, and records
the version negotiated (Session.tls).

Every reply sent is recorded twice: flat in `SmtpPeer.sent` as (listener, stage,
code, enhanced), and structured per session and transaction in
`SmtpPeer.sessions`, which is what the expected log lines are derived from.
Standard library only, and the openssl command for a listener that does TLS.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .certs import self_signed

HOST = "127.0.0.1"

# Reply texts keyed by enhanced code, then by basic code. Several hold digits
# and addresses on purpose: a log parser must not take them for codes.
_TEXT_BY_ENHANCED = {
    "2.0.0": "Ok: queued as {qid}",
    "2.1.0": "Sender OK",
    "2.1.5": "Recipient OK",
    "2.6.0": "Message accepted for delivery, id={qid}",
    "4.2.0": "Greylisted, see https://greylist.example.test/help/ok.test.html and retry in 300 seconds",
    "4.2.1": "Mailbox temporarily disabled",
    "4.2.2": "The email account that you tried to reach is over quota (452 of 500 MB)",
    "4.3.0": "Temporary local problem, please try again later",
    "4.3.2": "System not accepting network messages, try again in 15 min",
    "4.4.5": "Insufficient system storage",
    "4.5.3": "Too many recipients",
    "4.7.0": "TLS not available due to local problem",
    "4.7.1": "Too many messages from 127.0.0.1, slow down",
    "4.7.28": "Our system has detected an unusual rate of unsolicited mail, try later",
    "5.1.1": "The email account that you tried to reach does not exist",
    "5.1.2": "Bad destination system address",
    "5.1.3": "Bad destination mailbox address syntax",
    "5.1.6": "Recipient no longer on server",
    "5.2.1": "Mailbox disabled, not accepting messages",
    "5.2.2": "Mailbox full, quota 2048 MB exceeded",
    "5.3.4": "Message size exceeds fixed limit of 10485760 bytes",
    "5.4.1": "Recipient address rejected: Access denied. AS(201806281) [host 127.0.0.1]",
    "5.5.1": "Error: no valid recipients",
    "5.7.0": "Authentication required",
    "5.7.1": "Message rejected under policy, see https://policy.example.test/554",
    "5.7.26": "Unauthenticated email from lab.test is not accepted due to domain's DMARC policy",
    "5.7.606": "Access denied, banned sending IP [127.0.0.1]",
}
_TEXT_BY_CODE = {
    220: "peer.test ESMTP ready",
    221: "Bye",
    250: "Requested mail action okay, completed: id=1MBkYe-1poErv1HjA-00C76O",
    354: "End data with <CR><LF>.<CR><LF>",
    421: "Service not available, closing transmission channel",
    450: "Requested mail action not taken: mailbox unavailable",
    451: "Requested action aborted: local error in processing",
    452: "Requested action not taken: insufficient system storage",
    550: "Requested action not taken: mailbox unavailable",
    551: "User not local; please try <forward@example.test>",
    552: "Requested mail action aborted: exceeded storage allocation",
    553: "Requested action not taken: mailbox name not allowed",
    554: "Transaction failed: 3 spam points over 2.5",
}
_MULTILINE_TEXT = (
    "Our system has detected that this message is likely unsolicited mail. To",
    "reduce the amount of spam sent to this domain, this message has been blocked.",
    "Please visit https://support.example.test/mail/answer/188131 for more information.",
)

_DIRECTIVE = re.compile(
    r"^(?P<kind>[cnmxd])(?P<code>[2-5]\d\d)(?:_(?P<a>[245])_(?P<b>\d{1,3})_(?P<c>\d{1,3}))?_[a-z]",
)


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: code, optional enhanced code, its text line(s)."""

    code: int
    enhanced: str = ""
    text: tuple[str, ...] = ()

    @classmethod
    def make(cls, code: int, enhanced: str = "", text: str | tuple[str, ...] | None = None,
             **fmt: str) -> Reply:
        if text is None:
            text = _TEXT_BY_ENHANCED.get(enhanced) or _TEXT_BY_CODE.get(code, "Ok")
        if isinstance(text, str):
            text = (text,)
        fmt.setdefault("qid", "4F2A9C1E07")
        return cls(code, enhanced, tuple(t.format(**fmt) for t in text))

    @property
    def multiline(self) -> bool:
        return len(self.text) > 1

    def wire(self) -> bytes:
        out = []
        for i, line in enumerate(self.text):
            sep = "-" if i < len(self.text) - 1 else " "
            head = f"{self.code}{sep}"
            out.append(head + (f"{self.enhanced} " if self.enhanced else "") + line + "\r\n")
        return "".join(out).encode("utf-8")

    def __str__(self) -> str:
        return " / ".join(f"{self.code} {self.enhanced} {t}".replace("  ", " ") for t in self.text)


@dataclass
class Txn:
    """One mail transaction: MAIL, the RCPTs, DATA and the end-of-data reply(ies)."""

    sender: str
    mail: Reply
    rcpts: list[tuple[str, Reply]] = field(default_factory=list)
    data: Reply | None = None
    # Reply per accepted recipient after the message: the same reply for every
    # recipient in SMTP, one reply each in LMTP.
    eod: list[tuple[str, Reply]] = field(default_factory=list)

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.rcpts if reply.code // 100 == 2]


@dataclass
class Session:
    listener: str
    lmtp: bool
    greeting: Reply
    hello: list[tuple[str, Reply]] = field(default_factory=list)  # (verb, reply)
    starttls: Reply | None = None
    tls: str | None = None  # the TLS version of the handshake after STARTTLS ("TLSv1.3")
    txns: list[Txn] = field(default_factory=list)
    closed: bool = False


@dataclass
class Listener:
    """Per-port behaviour. None means "the normal, successful answer"."""

    name: str
    lmtp: bool = False
    greeting: Reply | None = None
    ehlo: Reply | None = None  # EHLO (and LHLO) reply
    helo: Reply | None = None  # HELO reply (the fallback after a refused EHLO)
    starttls: Reply | None = None  # set: STARTTLS is offered and answered with this (2xx: TLS follows)
    mail: Reply | None = None
    port: int = 0


def directive(address: str) -> tuple[str, Reply] | None:
    """The (kind, reply) a recipient address asks for, or None for a plain 250."""
    local = address.strip("<>").rsplit("@", 1)[0]
    m = _DIRECTIVE.match(local)
    if not m:
        return None
    kind, code = m["kind"], int(m["code"])
    enhanced = f"{m['a']}.{m['b']}.{m['c']}" if m["a"] else ""
    if kind == "n" and enhanced:
        raise ValueError(f"{address}: kind n takes no enhanced code")
    if enhanced and enhanced[0] != str(code)[0]:
        raise ValueError(f"{address}: code and enhanced code classes differ")
    return reply_for(kind, code, enhanced, address)


def reply_for(kind: str, code: int, enhanced: str, address: str) -> tuple[str, Reply]:
    """The (kind, Reply) of a directive, with a realistic text."""
    if kind == "m":
        return kind, Reply.make(code, enhanced, _MULTILINE_TEXT)
    text = None
    if kind in "cn" and code // 100 != 2 and enhanced in ("", "5.1.1", "4.2.2", "5.2.2"):
        base = _TEXT_BY_ENHANCED.get(enhanced) or _TEXT_BY_CODE.get(code, "Rejected")
        text = f"<{address.strip('<>')}>: Recipient address rejected: {base}"
    return kind, Reply.make(code, enhanced, text)


class SmtpPeer:
    """Listeners on 127.0.0.1, one thread per connection, everything recorded."""

    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}
        self.sessions: list[Session] = []
        self.sent: list[tuple[str, str, int, str]] = []
        self.errors: list[str] = []  # exceptions in the peer's own code
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._conns: set[socket.socket] = set()
        self._tls_of: dict[socket.socket, ssl.SSLSocket] = {}  # accepted connection -> its TLS
        self._qids = itertools.count(0x4F2A9C1E07)
        self.script: dict[str, tuple[str, Reply]] = {}  # address -> (kind, reply)
        self._tls: ssl.SSLContext | None = None  # made with the first listener that does TLS

    def directive(self, address: str) -> tuple[str, Reply] | None:
        return self.script.get(address.strip("<>").lower()) or directive(address)

    # -- setup ---------------------------------------------------------------

    def add(self, name: str, **behaviour) -> int:
        """Open a listener; returns its port."""
        listener = Listener(name, **behaviour)
        if listener.starttls is not None and listener.starttls.code // 100 == 2 and self._tls is None:
            self._tls = _server_context()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        sock.listen(128)
        sock.settimeout(0.2)
        listener.port = sock.getsockname()[1]
        self.listeners[name] = listener
        self._socks.append(sock)
        t = threading.Thread(target=self._accept_loop, args=(sock, listener),
                             name=f"peer-{name}", daemon=True)
        t.start()
        self._threads.append(t)
        return listener.port

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in self._socks:
            s.close()
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> SmtpPeer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self.sessions if not s.closed)

    # -- serving -------------------------------------------------------------

    def _accept_loop(self, sock: socket.socket, listener: Listener) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(60)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve_safely, args=(conn, listener),
                             name=f"peer-{listener.name}-conn", daemon=True).start()

    def _serve_safely(self, conn: socket.socket, listener: Listener) -> None:
        session = None
        try:
            session = Session(listener.name, listener.lmtp,
                              listener.greeting or Reply.make(220, "", "peer.test ESMTP ready"))
            with self._lock:
                self.sessions.append(session)
            self._serve(conn, listener, session)
        except OSError:
            pass
        except Exception as e:  # a bug in the script: make the test see it
            with self._lock:
                self.errors.append(f"{listener.name}: {e!r}")
        finally:
            if session is not None:
                session.closed = True
            with self._lock:
                live = self._tls_of.pop(conn, conn)
                self._conns.discard(live)
            if isinstance(live, ssl.SSLSocket):
                with contextlib.suppress(OSError, ValueError):
                    live.settimeout(2)
                    live.unwrap()  # close_notify, as a server ends TLS before closing
            live.close()

    def _start_tls(self, conn: socket.socket) -> ssl.SSLSocket:
        """The server side of the handshake on an accepted connection; the TLS
        socket takes its place (the plain one is left detached)."""
        assert self._tls is not None
        tls = self._tls.wrap_socket(conn, server_side=True)
        with self._lock:
            self._conns.discard(conn)
            self._conns.add(tls)
            self._tls_of[conn] = tls
        return tls

    def _send(self, conn, listener: Listener, stage: str, reply: Reply) -> None:
        with self._lock:
            self.sent.append((listener.name, stage, reply.code, reply.enhanced))
        conn.sendall(reply.wire())

    def _serve(self, conn: socket.socket, listener: Listener, session: Session) -> None:
        reader = conn.makefile("rb")

        def send(stage: str, reply: Reply) -> None:
            self._send(conn, listener, stage, reply)

        send("connect", session.greeting)
        if session.greeting.code == 421:
            return  # 421: the server closes the channel
        refused = session.greeting.code // 100 != 2
        txn: Txn | None = None
        helo_ok = False
        while True:
            raw = reader.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                send("other", Reply.make(221, "2.0.0", "Bye"))
                return
            if refused:
                send("other", Reply.make(503, "5.5.1", "Error: no service"))
                continue
            if verb in ("EHLO", "LHLO", "HELO"):
                reply = self._hello(listener, verb)
                session.hello.append((verb, reply))
                helo_ok = reply.code // 100 == 2
                send("helo", reply)
                if reply.code == 421:
                    return
            elif verb == "STARTTLS" and listener.starttls is not None:
                session.starttls = listener.starttls
                send("starttls", listener.starttls)
                if listener.starttls.code // 100 == 2:
                    conn = self._start_tls(conn)
                    session.tls = conn.version()
                    reader = conn.makefile("rb")
                    txn, helo_ok = None, False  # RFC 3207: the client starts over with EHLO
            elif verb == "MAIL":
                if not helo_ok:
                    send("mail", Reply.make(503, "5.5.1", "Error: send HELO/EHLO first"))
                    continue
                reply = listener.mail or Reply.make(250, "2.1.0")
                txn = Txn(_address(arg), reply)
                session.txns.append(txn)
                send("mail", reply)
                if reply.code // 100 != 2:
                    txn = _RejectedTxn(txn)
            elif verb == "RCPT":
                if txn is None or isinstance(txn, _RejectedTxn):
                    reply = Reply.make(503, "5.5.1", "Error: need MAIL command")
                    if txn is not None:
                        txn.inner.rcpts.append((_address(arg), reply))
                    send("rcpt", reply)
                    continue
                rcpt = _address(arg)
                d = self.directive(rcpt)
                if d is not None and d[0] in "cnm":
                    reply = d[1]
                else:
                    reply = Reply.make(250, "2.1.5", f"<{rcpt}> Recipient OK")
                txn.rcpts.append((rcpt, reply))
                send("rcpt", reply)
            elif verb == "DATA":
                if txn is None or isinstance(txn, _RejectedTxn):
                    send("data", Reply.make(503, "5.5.1", "Error: need RCPT command"))
                    continue
                accepted = txn.accepted
                if not accepted:
                    reply = Reply.make(554, "5.5.1")
                    txn.data = reply
                    send("data", reply)
                    continue
                reply = next((d[1] for d in map(self.directive, accepted) if d and d[0] == "x"),
                             Reply.make(354, "", "End data with <CR><LF>.<CR><LF>"))
                txn.data = reply
                send("data", reply)
                if reply.code != 354:
                    continue
                self._read_message(reader)
                qid = f"{next(self._qids):X}"
                if listener.lmtp:
                    for rcpt in accepted:
                        d = self.directive(rcpt)
                        reply = d[1] if d and d[0] == "d" else Reply.make(
                            250, "2.0.0", f"<{rcpt}> {qid} Saved")
                        txn.eod.append((rcpt, reply))
                        send("end_of_data", reply)
                else:
                    reply = next((d[1] for d in map(self.directive, accepted) if d and d[0] == "d"),
                                 Reply.make(250, "2.0.0", qid=qid))
                    txn.eod.extend((rcpt, reply) for rcpt in accepted)
                    send("end_of_data", reply)
                txn = None
            elif verb == "RSET":
                txn = None
                send("other", Reply.make(250, "2.0.0", "Ok"))
            elif verb == "NOOP":
                send("other", Reply.make(250, "2.0.0", "Ok"))
            else:
                send("other", Reply.make(502, "5.5.2", "Error: command not recognized"))

    def _hello(self, listener: Listener, verb: str) -> Reply:
        override = listener.helo if verb == "HELO" else listener.ehlo
        if override is not None:
            return override
        if verb == "HELO":
            return Reply.make(250, "", "peer.test")
        lines = ["peer.test", "PIPELINING", "SIZE 52428800", "ENHANCEDSTATUSCODES", "8BITMIME"]
        if listener.starttls is not None:
            lines.insert(3, "STARTTLS")
        return Reply(250, "", tuple(lines))

    @staticmethod
    def _read_message(reader) -> None:
        while True:
            raw = reader.readline(65536)
            if not raw or raw in (b".\r\n", b".\n"):
                return


class _RejectedTxn:
    """Stands for a transaction whose MAIL was refused."""

    def __init__(self, inner: Txn) -> None:
        self.inner = inner


def _server_context() -> ssl.SSLContext:
    """A TLS server context with a self-signed certificate for peer.test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    directory = Path(tempfile.mkdtemp(prefix="smtp-peer-tls-"))
    try:
        context.load_cert_chain(*self_signed(directory, "peer.test"))
    finally:
        shutil.rmtree(directory)
    return context


def _address(arg: str) -> str:
    """The address in "FROM:<a> SIZE=..." / "TO:<a>"."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ", 1)[0]
