"""Start and stop a real Postfix with a test configuration, loopback only.

The instance is private: its own config directory (`postfix -c DIR`), queue,
data directory and log in a new directory under /var/tmp (private_dir in
namespace.py), logging with Postfix's own logger (`maillog_file` must live
under `maillog_file_prefixes`, /var by default), on smtpd ports of its own.
/etc/postfix and /var/spool/postfix are not touched, so a Postfix the machine
runs on port 25 is left alone.
Needs root and the Debian package postfix (only built-in map types are used:
inline: and regexp:, so postfix-pcre is not needed).

Four smtpd services listen on 127.0.0.1, each on a free port:
  main    syslog_name postfix (the instance's, as every other daemon's);
          realistic settings (smtpd_delay_reject = yes: client, HELO and sender
          restrictions are applied, and logged, at RCPT)
  strict  syslog_name postfix/strict, smtpd_delay_reject = no, so the same
          restrictions reject at CONNECT, HELO/EHLO and MAIL
  screen  postscreen (syslog_name postfix) in front of an smtpd (postfix/screened);
          denylisted clients get postscreen's own "550 5.3.2" at RCPT
  submission  syslog_name postfix/submission, STARTTLS offered (a self-signed
          certificate made at start), SMTP AUTH (PLAIN, LOGIN) through Cyrus
          SASL against a password database that holds no user, so every AUTH
          is refused ("535 5.7.8"), as a password-guessing bot sees it

Which clients, HELO names, senders, recipients and subjects each restriction
hits is fixed here (the constants below), so the traffic script can aim at them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from .certs import self_signed
from .namespace import free_port, private_dir, read_text, wait_settled

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"

MYHOSTNAME = "mx1.lab.test"
LOCAL_DOMAIN = "lab.test"  # in mydestination: unknown users get 550 5.1.1

# Client addresses (all on loopback; only 127.0.0.1 is in mynetworks).
CLIENT_TRUSTED = "127.0.0.1"
CLIENT_OUTSIDE = "127.0.0.5"  # relaying denied: 454 4.7.1
CLIENT_BLOCKED = "127.0.0.9"  # check_client_access: 554 5.7.1
CLIENT_SLOW = "127.0.0.10"  # check_client_access: 450 4.7.25
CLIENT_NO_DATA = "127.0.0.11"  # smtpd_data_restrictions: 554 5.7.1 at DATA
CLIENT_NO_EOD = "127.0.0.12"  # smtpd_end_of_data_restrictions: 554 5.7.1
CLIENT_DENYLISTED = "127.0.0.13"  # postscreen_access_list: reject
CLIENT_TEMP_EOD = "127.0.0.14"  # smtpd_end_of_data_restrictions: 451 4.7.1

HELO_BLOCKED = "mail.bulk-sender.example"  # check_helo_access: 554 5.7.1
HELO_INVALID = "bad..helo"  # reject_invalid_helo_hostname: 501 5.5.2
SENDER_BLOCKED = "offers@promo-blast.example"  # check_sender_access: 554 5.7.1
SENDER_TEMP = "billing@slow-dns.example"  # check_sender_access: 451 (Postfix adds 4.7.1)
# check_recipient_access keys are "localpart@": they match in every domain.
GREYLISTED_USER = "sales"  # 450 4.2.0
MOVED_USER = "jsmith"  # "551 ..." (Postfix adds 5.7.1)
WARNED_USER = "info"  # warn_if_reject: logged as reject_warning, accepted
SUBJECT_REJECTED = "CHEAP-PILLS"  # header_checks: REJECT 5.7.1
SUBJECT_DEFERRED = "TRY-LATER"  # header_checks: REJECT 4.7.1 (a temporary reject)
BODY_REJECTED = "EICAR-LAB-SIGNATURE"  # body_checks: REJECT 5.7.0
MESSAGE_SIZE_LIMIT = 200_000

# The services the log names (syslog_name; the exporter's service label):
# the instance's own, which every daemon without one of its own logs under
# (the port-25 smtpd, postscreen, cleanup, smtp, lmtp, error), and those of
# the smtpd services set apart in master.cf.
SYSLOG_NAME = "postfix"
STRICT_NAME = "postfix/strict"
SCREENED_NAME = "postfix/screened"
SUBMISSION_NAME = "postfix/submission"


class PostfixLabError(RuntimeError):
    pass


def unavailable() -> str | None:
    """Why this machine cannot run the lab, or None when it can."""
    if os.geteuid() != 0:
        return "the Postfix lab needs root (postfix start, private queue)"
    for tool in (POSTFIX, SENDMAIL, POSTQUEUE, "/usr/lib/postfix/sbin/master"):
        if not os.path.exists(tool):
            return f"Postfix is not installed ({tool} missing; apt-get install postfix)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist (postfix package not installed?)"
    return None


def _inline(entries: dict[str, str]) -> str:
    """An inline: map; values with spaces need their own braces."""
    return "inline:{ " + ", ".join(f"{{{k}={v}}}" for k, v in entries.items()) + " }"


class PostfixLab:
    """One private Postfix instance. Use as a context manager or start()/cleanup()."""

    def __init__(self, name: str = "smtp-reply-lab", routes: dict[str, str] | None = None,
                 tls_required: list[str] | None = None) -> None:
        self.name = name
        self.base = private_dir(name)
        self.conf = self.base / "conf"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.log = self.base / "maillog"
        self.routes = dict(routes or {})  # domain -> transport:nexthop
        self.tls_required = list(tls_required or [])  # nexthops ([127.0.0.1]:port)
        self.port = self.strict_port = self.screen_port = self.submission_port = 0
        self.started = False

    # -- configuration -------------------------------------------------------

    def _main_cf(self) -> str:
        routes = dict(self.routes)
        transport = _inline(routes) if routes else ""
        tls_policy = _inline({h: "encrypt" for h in self.tls_required}) if self.tls_required else ""
        relay_domains = ", ".join(d for d in routes if not d.startswith("."))
        client_access = _inline({
            CLIENT_BLOCKED: "REJECT Known spam source, see https://lab.test/bl?ip=127.0.0.9",
            CLIENT_SLOW: "450 4.7.25 cannot find your hostname",
        })
        helo_access = _inline({HELO_BLOCKED: "REJECT You are not welcome here"})
        sender_access = _inline({
            SENDER_BLOCKED: "REJECT",
            SENDER_TEMP: "451 Sender verification in progress, come back later",
        })
        rcpt_access = _inline({
            f"{GREYLISTED_USER}@": "450 4.2.0 Greylisted, please retry in 300 seconds",
            f"{MOVED_USER}@": "551 User not local; please try <john.smith@example.net>",
        })
        warn_access = _inline({f"{WARNED_USER}@": "REJECT This address is being retired"})
        data_access = _inline({CLIENT_NO_DATA: "REJECT No mail from your network today"})
        eod_access = _inline({
            CLIENT_NO_EOD: "REJECT Message refused after inspection",
            CLIENT_TEMP_EOD: "451 4.7.1 Try again later, content scanner busy",
        })
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "meta_directory": "/etc/postfix",
            "maillog_file": str(self.log),
            "syslog_name": SYSLOG_NAME,
            "myhostname": MYHOSTNAME,
            "mydomain": LOCAL_DOMAIN,
            "myorigin": "$myhostname",
            "mydestination": f"$myhostname, localhost, {LOCAL_DOMAIN}",
            "local_recipient_maps": "proxy:unix:passwd.byname",
            "alias_maps": "",
            # Nothing is ever written to a mailbox on this machine: mail to a
            # real local user (root, nobody) is thrown away.
            "local_transport": "discard:local delivery disabled in this lab",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.1/32",
            "relay_domains": relay_domains,
            "transport_maps": transport,
            "smtp_tls_policy_maps": tls_policy,
            "smtp_tls_loglevel": "1",  # "TLS connection established to ..." (0, the default, logs none)
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_banner": "$myhostname ESMTP",
            "in_flow_delay": "0s",
            # Keep deferred mail where it is for the whole run.
            "minimal_backoff_time": "3600s",
            "maximal_backoff_time": "4000s",
            "queue_run_delay": "3600s",
            "delay_warning_time": "0h",
            "message_size_limit": str(MESSAGE_SIZE_LIMIT),
            "smtpd_helo_required": "yes",
            "smtpd_client_restrictions": f"check_client_access {client_access}",
            "smtpd_helo_restrictions": f"reject_invalid_helo_hostname, check_helo_access {helo_access}",
            "smtpd_sender_restrictions": f"check_sender_access {sender_access}",
            "smtpd_relay_restrictions": "permit_mynetworks, defer_unauth_destination",
            "smtpd_recipient_restrictions":
                f"check_recipient_access {rcpt_access}, warn_if_reject check_recipient_access {warn_access}",
            "smtpd_data_restrictions":
                f"reject_unauth_pipelining, reject_multi_recipient_bounce, check_client_access {data_access}",
            "smtpd_end_of_data_restrictions": f"check_client_access {eod_access}",
            "header_checks": f"regexp:{self.conf}/header_checks",
            "body_checks": f"regexp:{self.conf}/body_checks",
            "postscreen_access_list": f"permit_mynetworks, {_inline({CLIENT_DENYLISTED: 'reject'})}",
            "postscreen_denylist_action": "enforce",
            "postscreen_greet_wait": "1s",
            "smtpd_error_sleep_time": "0s",
        }
        return "".join(f"{k} = {v}\n" for k, v in settings.items())

    def _master_cf(self) -> str:
        # No chroot anywhere: the private queue holds no copies of /etc files.
        services = [
            f"127.0.0.1:{self.port} inet n - n - - smtpd",
            (f"127.0.0.1:{self.strict_port} inet n - n - - smtpd"
             f" -o syslog_name={STRICT_NAME} -o smtpd_delay_reject=no"),
            f"127.0.0.1:{self.screen_port} inet n - n - 1 postscreen",
            f"smtpd pass - - n - - smtpd -o syslog_name={SCREENED_NAME}",
            (f"127.0.0.1:{self.submission_port} inet n - n - - smtpd -o syslog_name={SUBMISSION_NAME}"
             " -o smtpd_sasl_auth_enable=yes -o smtpd_sasl_type=cyrus"
             f" -o cyrus_sasl_config_path={self.conf / 'sasl'} -o smtpd_sasl_path=smtpd"
             # loglevel 1: the "TLS connection established" line (0, the default, logs none).
             f" -o smtpd_tls_security_level=may -o smtpd_tls_loglevel=1"
             f" -o smtpd_tls_cert_file={self.conf / 'tls.crt'} -o smtpd_tls_key_file={self.conf / 'tls.key'}"),
            "dnsblog unix - - n - 0 dnsblog",
            "tlsproxy unix - - n - 0 tlsproxy",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp -o syslog_name=postfix/$service_name",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "virtual unix - n n - - virtual",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    def _write_config(self) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        (self.conf / "main.cf").write_text(self._main_cf())
        (self.conf / "master.cf").write_text(self._master_cf())
        (self.conf / "header_checks").write_text(
            f"/^Subject:.*{SUBJECT_REJECTED}/ REJECT 5.7.1 Message content rejected\n"
            f"/^Subject:.*{SUBJECT_DEFERRED}/ REJECT 4.7.1 Content scanner unavailable, try later\n"
        )
        # Cyrus SASL reads <smtpd_sasl_path>.conf; its sasldb file is never
        # created, so no user exists and every AUTH fails.
        (self.conf / "sasl").mkdir()
        (self.conf / "sasl" / "smtpd.conf").write_text(
            f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
            f"sasldb_path: {self.base / 'sasldb2'}\n"
        )
        self_signed(self.conf, MYHOSTNAME)
        (self.conf / "body_checks").write_text(
            f"/{BODY_REJECTED}/ REJECT 5.7.0 Virus found in message body\n"
        )

    # -- lifecycle -----------------------------------------------------------

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([POSTFIX, "-c", str(self.conf), *args],
                                capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise PostfixLabError(f"postfix {' '.join(args)} failed ({result.returncode}):\n"
                                  f"{result.stdout}{result.stderr}{self.log_text()[-2000:]}")
        return result

    def _master_pid(self) -> int | None:
        try:
            pid = int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self) -> PostfixLab:
        self.queue.mkdir(mode=0o755)  # the postfix user walks into it
        self.data.mkdir()
        shutil.chown(self.data, "postfix", "postfix")
        self.port, self.strict_port, self.screen_port = free_port(), free_port(), free_port()
        self.submission_port = free_port()
        self._write_config()
        self._postfix("check")  # creates the queue directories (post-install create-missing)
        self._postfix("start")
        self.started = True
        self._wait_listening()
        return self

    def answering(self, port: int, client: str) -> str:
        """The syslog_name of the daemon that answers `client` on `port`, and
        so logs the replies it gets: postscreen itself for a client its
        access list rejects, else the smtpd behind the port."""
        if port == self.screen_port:
            return SYSLOG_NAME if client == CLIENT_DENYLISTED else SCREENED_NAME
        return {self.port: SYSLOG_NAME, self.strict_port: STRICT_NAME, self.submission_port: SUBMISSION_NAME}[port]

    def _wait_listening(self, timeout: float = 15) -> None:
        """Wait for the smtpd ports to be in LISTEN state (without connecting,
        which would put "lost connection after CONNECT" lines in the log)."""
        wanted = {self.port, self.strict_port, self.screen_port, self.submission_port}
        deadline = time.monotonic() + timeout
        while True:
            listening = set()
            for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                fields = row.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening.add(int(fields[1].rsplit(":", 1)[1], 16))
            if wanted <= listening:
                return
            if time.monotonic() > deadline:
                raise PostfixLabError(f"Postfix does not listen on {sorted(wanted - listening)};"
                                      f" log:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if not self.started:
            return
        self._postfix("stop", check=False)
        self._wait_master_gone()
        self.started = False

    def _wait_master_gone(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self._master_pid() and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Stop the instance and remove its directory (queue, config, log)."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostfixLab:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- traffic and state ---------------------------------------------------

    def sendmail(self, recipients: list[str], message: str, sender: str = "") -> None:
        """Submit like a local program: sendmail -f SENDER -i -- RCPT..."""
        result = subprocess.run(
            [SENDMAIL, "-C", str(self.conf), "-f", sender, "-i", "--", *recipients],
            input=message.encode(), capture_output=True, timeout=30, check=False,
        )
        if result.returncode != 0:
            raise PostfixLabError(f"sendmail failed: {result.stderr.decode()}")

    def queue_command(self) -> list[str]:
        """postqueue -j of this instance: the queue probe's command."""
        return [POSTQUEUE, "-c", str(self.conf), "-j"]

    def hold(self, queue_id: str) -> None:
        """Put a message on hold (postsuper -h), as an operator parks one."""
        result = subprocess.run([POSTSUPER, "-c", str(self.conf), "-h", queue_id],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise PostfixLabError(f"postsuper -h {queue_id} failed: {result.stderr}")

    def queue_state(self) -> list[dict]:
        result = subprocess.run(self.queue_command(), capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise PostfixLabError(f"postqueue -j failed: {result.stderr}")
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def wait_idle(self, timeout: float = 60, settle: float = 0.5) -> list[dict]:
        """Wait until no message is waiting for a delivery attempt (only
        deferred mail is left, which is not retried during the run), the
        maildrop is empty, and the log has stopped growing for `settle`
        seconds. Returns the final queue listing."""
        def busy() -> list[dict]:
            return [m for m in self.queue_state() if m.get("queue_name") != "deferred"]

        def idle() -> bool:
            return not busy() and not any(any((self.queue / d).iterdir())
                                          for d in ("maildrop", "incoming", "active"))

        wait_settled(lambda: self.log.stat().st_size if self.log.exists() else 0, idle,
                     lambda: f"queue did not drain: {busy()}", timeout, settle)
        return self.queue_state()

    def log_text(self) -> str:
        return read_text(self.log)
