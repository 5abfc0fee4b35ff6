"""A real Prometheus server for tests: one process on 127.0.0.1 with its own
storage directory, scraping given targets and loading given rule files (or serving a data
directory made beforehand: data_dir).

    prom = PrometheusServer(tmp_path, job="smtp-reply-exporter",
                            targets=["127.0.0.1:10925"], rule_files=paths)
    try:
        prom.query("up")                       # result list of /api/v1/query
    finally:
        prom.stop()

Needs the `prometheus` binary (Debian package `prometheus`); PROMETHEUS is
its path or None.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import yaml

from exporter.rule_backfill import stop_process, wait_ready
from mta.namespace import free_port

PROMETHEUS = shutil.which("prometheus")


class PrometheusError(RuntimeError):
    """The HTTP API answered with status "error" (a bad query, a timeout)."""


class PrometheusServer:
    def __init__(
        self,
        tmp: Path,
        *,
        job: str,
        targets: Iterable[str],
        rule_files: Iterable[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        start_timeout: float = 30,
        data_dir: Path | None = None,
    ) -> None:
        if PROMETHEUS is None:
            raise RuntimeError("prometheus is not installed")
        self.dir = tmp / "prometheus"
        self.dir.mkdir()
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
        config_file = self.dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={data_dir or self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        if not wait_ready(self.url, self.proc, start_timeout):
            self.stop()
            raise RuntimeError("prometheus did not become ready:\n" + self.log_text())

    def api(self, path: str, **params) -> dict | list:
        """GET /api/v1/PATH; the `data` of a success, else PrometheusError.
        A list value is sent as a repeated parameter (match[])."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:  # 400/422/503 carry the error as JSON
            body = json.load(e)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """The result of an instant query (a vector: [{metric, value}])."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: str) -> list[dict]:
        """The result of a range query (a matrix: [{metric, values}])."""
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)["result"]

    def alerts(self) -> list[dict]:
        """Active alerts (pending and firing) of /api/v1/alerts."""
        return self.api("alerts")["alerts"]

    def log_text(self) -> str:
        self.log.flush()
        return (self.dir / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
        self.log.close()
