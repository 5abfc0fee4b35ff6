"""Concurrent scrapers against the real daemon, over plain HTTP and HTTPS: p50, p99 and errors.

    python3 benchmarks/bench_scrape.py [--scrapers 20] [--seconds 10]

Each scraper is a process of its own (so that the clients' GIL adds nothing to
the latencies measured); all start at the same moment and scrape /metrics back
to back, asking for gzip as Prometheus does. Each scheme runs twice: with a
new connection for each scrape (a burst of connections: the listen queue's
test) and over one kept-alive connection per scraper (what Prometheus does).
The daemon follows the bundled demo log from its first line, so /metrics
holds real series.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_LOG = REPO / "exporter" / "demo" / "postfix.log"
MODES = (("new connection per scrape", False), ("keep-alive", True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def connect(port: int, ca: str | None) -> http.client.HTTPConnection:
    if ca is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cafile=ca))


def scrape_for(port: int, ca: str | None, keep_alive: bool, start_at: float,
               seconds: float) -> tuple[list[float], list[str]]:
    """One scraper: the latencies of its good scrapes (s) and its errors."""
    latencies: list[float] = []
    errors: list[str] = []
    conn: http.client.HTTPConnection | None = None
    time.sleep(max(0.0, start_at - time.time()))
    end = start_at + seconds
    while time.time() < end:
        started = time.perf_counter()
        try:
            if conn is None:
                conn = connect(port, ca)
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                errors.append(f"HTTP {reply.status}")
            else:
                latencies.append(time.perf_counter() - started)
            if not keep_alive or reply.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as err:
            errors.append(repr(err))
            if conn is not None:
                conn.close()
                conn = None
    if conn is not None:
        conn.close()
    return latencies, errors


class Daemon:
    def __init__(self, port: int, workdir: Path, web_config: Path | None, config: Path | None = None) -> None:
        web = ["--web.config.file", str(web_config)] if web_config else []
        if config is not None:
            web += ["--config.file", str(config)]
        self.stderr = open(workdir / f"daemon-{port}.err", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--from-beginning", "--web.listen-address", f"127.0.0.1:{port}",
             *web, str(DEMO_LOG)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.stderr,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the daemon did not start: {Path(self.stderr.name).read_text()}") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.stderr.close()


TARGET_P99_MS = 250


def run(scheme: str, port: int, ca: str | None, daemon: Daemon, scrapers: int, seconds: float) -> bool:
    """Both modes against one daemon; prints a line each. True if no scrape failed."""
    clean = True
    with multiprocessing.get_context("fork").Pool(scrapers) as pool:
        for mode, keep_alive in MODES:
            cpu_before = daemon.cpu_seconds()
            start_at = time.time() + 1.0  # every scraper process is ready by then
            results = pool.starmap(scrape_for, [(port, ca, keep_alive, start_at, seconds)] * scrapers)
            cpu = daemon.cpu_seconds() - cpu_before
            latencies = sorted(t * 1000 for got, _ in results for t in got)
            errors = [e for _, errs in results for e in errs]
            p50, p99 = (statistics.quantiles(latencies, n=100)[i] for i in (49, 98)) if len(latencies) > 1 else (0, 0)
            verdict = "PASS" if p99 < TARGET_P99_MS else "MISS"
            print(f"{scheme + ', ' + mode:33}: {len(latencies):,} scrapes, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                  f"errors {len(errors)}   (daemon CPU {cpu / seconds:.0%} of a core; "
                  f"p99 target < {TARGET_P99_MS} ms: {verdict})")
            if errors:
                print(f"    first errors: {sorted(set(errors))[:3]}")
                clean = False
    return clean


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scrapers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0, help="per scheme and mode")
    ap.add_argument("--hung-queue-probe", action="store_true",
                    help="the daemon also runs a queue probe whose listing always hangs past its 1 s timeout "
                         "(issue 13: scrapes must not wait for it)")
    ap.add_argument("--tmpdir", help="where the TLS material and the daemon's log go (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        workdir = Path(tmp)
        cert, key = make_certificate(workdir)
        web_config = workdir / "web.yml"
        web_config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
        config = None
        if args.hung_queue_probe:
            config = workdir / "config.yml"
            config.write_text("queue: {mta: postfix, command: [sleep, '600'], interval_seconds: 0.5, "
                              "timeout_seconds: 1}\n")
        size = None
        clean = True
        print(f"{args.scrapers} scrapers, {args.seconds:g} s per run, {os.cpu_count()} CPUs; "
              f"the daemon follows {DEMO_LOG.relative_to(REPO)} from its beginning")
        for scheme, web, ca in (("plain", None, None), ("tls", web_config, str(cert))):
            port = free_port()
            daemon = Daemon(port, workdir, web, config)
            try:
                if size is None:
                    conn = connect(port, ca)
                    conn.request("GET", "/metrics")
                    size = len(conn.getresponse().read())
                    conn.close()
                    print(f"/metrics: {size:,} bytes before gzip")
                clean = run(scheme, port, ca, daemon, args.scrapers, args.seconds) and clean
            finally:
                daemon.stop()
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
