"""Recording rules over backfilled history: `promtool tsdb create-blocks-from
rules` evaluates each rule through the query API of a Prometheus holding the
data, and sees only what is stored there. A rule that reads another rule's
series (a ratio of recorded rates, a baseline of recorded 1 h rates) must
therefore be backfilled after that rule's blocks are loaded. The rules are
split into levels (level 0 reads only exporter series; level n reads series
of levels below n), and each level is backfilled in turn by a private
Prometheus started on the blocks made so far.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

# A series name in PromQL; recorded names carry a colon (level:metric:operations).
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def rule_levels(rule_files: Iterable[str]) -> list[list[dict]]:
    """The recording rules of the files, by level; alert rules left out."""
    rules = [rule for path in rule_files
             for group in (yaml.safe_load(Path(path).read_text()) or {}).get("groups", [])
             for rule in group.get("rules", []) if "record" in rule]
    recorded = {rule["record"] for rule in rules}
    level: dict[int, int] = {}

    def level_of(i: int, seen: frozenset[int] = frozenset()) -> int:
        if i not in level:
            if i in seen:
                raise ValueError(f"recording rule {rules[i]['record']} depends on itself")
            needs = set(_NAME.findall(str(rules[i]["expr"]))) & recorded
            below = [level_of(j, seen | {i}) for j, rule in enumerate(rules) if rule["record"] in needs]
            level[i] = 1 + max(below) if below else 0
        return level[i]

    levels: list[list[dict]] = []
    for i, rule in enumerate(rules):
        n = level_of(i)
        while len(levels) <= n:
            levels.append([])
        levels[n].append(rule)
    return levels


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Prometheus:
    """A private Prometheus on data_dir, scraping nothing, for promtool's queries."""

    def __init__(self, prometheus: str, data_dir: str, work: Path) -> None:
        config = work / "prometheus.yml"
        config.write_text("global: {}\n")
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._log = open(work / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
             f"--web.listen-address={self.url[len('http://'):]}", "--storage.tsdb.retention.time=100y"],
            stdout=self._log, stderr=subprocess.STDOUT)
        if not wait_ready(self.url, self.proc, 60):
            self.stop()
            raise RuntimeError(f"prometheus on {data_dir} did not start; see {work / 'prometheus.log'}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the Prometheus at url answers /-/ready; False if proc exits or timeout passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (a Prometheus then closes its TSDB cleanly), SIGKILL after timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backfill_rules(rule_files: list[str], data_dir: str, start: float, end: float, eval_seconds: int,
                   progress: Callable[[str], None], promtool: str = "promtool",
                   prometheus: str = "prometheus") -> None:
    """Backfill the recording rules of rule_files over [start, end] into data_dir, level by level."""
    with tempfile.TemporaryDirectory(prefix="smtp-reply-rules-") as scratch:
        work = Path(scratch)
        for n, rules in enumerate(rule_levels(rule_files)):
            level_file = work / f"level-{n}.yml"
            level_file.write_text(yaml.safe_dump({"groups": [{"name": f"backfill-level-{n}", "rules": rules}]},
                                                 sort_keys=False))
            blocks = work / f"blocks-{n}"
            server = _Prometheus(prometheus, data_dir, work)
            try:
                progress(f"recording rules, level {n}: {', '.join(rule['record'] for rule in rules)}")
                subprocess.run(
                    [promtool, "tsdb", "create-blocks-from", "rules", "--quiet", f"--url={server.url}",
                     f"--start={int(start)}", f"--end={int(end)}", f"--eval-interval={eval_seconds}s",
                     f"--output-dir={blocks}", str(level_file)],
                    check=True)
            finally:
                server.stop()
            for block in blocks.iterdir():
                shutil.move(str(block), data_dir)
