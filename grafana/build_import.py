#!/usr/bin/env python3
"""Builds grafana/import/*.json from the provisioned dashboards in grafana/dashboards/.

The provisioned dashboards are the source. Their import copies are the same
dashboards in the form Grafana's "Import dashboard" page and grafana.com
expect: a `__inputs` entry DS_PROMETHEUS (the importer picks a Prometheus data
source for it, which becomes the default of the `datasource` variable) and
`__requires` listing the Grafana version, the data source and the panel
plugins used. Run it after every change to a provisioned dashboard:

    python3 grafana/build_import.py           # (re)write grafana/import/
    python3 grafana/build_import.py --check   # exit 1 if grafana/import/ is stale

The tests check that the import copies are exactly what this script writes.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE / "dashboards"
IMPORT_DIR = HERE / "import"

INPUT_NAME = "DS_PROMETHEUS"
# The oldest Grafana the dashboards are written for (schemaVersion 39 is 10.x/11.x).
GRAFANA_VERSION = "10.0.0"
# Panel plugins the dashboards may use, by id; a new panel type goes here first.
PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "gauge": "Gauge",
    "heatmap": "Heatmap",
    "piechart": "Pie chart",
    "stat": "Stat",
    "table": "Table",
    "text": "Text",
    "timeseries": "Time series",
}


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def import_copy(dashboard: dict) -> dict:
    """The import copy of one provisioned dashboard (the input is not changed)."""
    body = copy.deepcopy(dashboard)
    body["id"] = None
    for variable in body.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource" and variable.get("query") == "prometheus":
            # The importer replaces ${DS_PROMETHEUS} with the data source it was given.
            variable["current"] = {
                "selected": False,
                "text": f"${{{INPUT_NAME}}}",
                "value": f"${{{INPUT_NAME}}}",
            }
    panel_types = sorted({p["type"] for p in _panels(body.get("panels", [])) if p.get("type") != "row"})
    unknown = [t for t in panel_types if t not in PANEL_NAMES]
    if unknown:
        raise ValueError(f"panel type(s) {unknown} missing from PANEL_NAMES in {Path(__file__).name}")
    header = {
        "__inputs": [
            {
                "name": INPUT_NAME,
                "label": "Prometheus",
                "description": "The Prometheus server that scrapes smtp-reply-exporter",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ]
        + [{"type": "panel", "id": t, "name": PANEL_NAMES[t], "version": ""} for t in panel_types],
    }
    return {**header, **body}


def render(dashboard: dict) -> str:
    """JSON text as written to disk (also the form of the provisioned files)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def expected_files(source_dir: Path = SOURCE_DIR) -> dict[str, str]:
    """{file name: text} of every import copy, built from source_dir."""
    out = {}
    for path in sorted(source_dir.glob("*.json")):
        out[path.name] = render(import_copy(json.loads(path.read_text(encoding="utf-8"))))
    return out


def stale_files(source_dir: Path = SOURCE_DIR, import_dir: Path = IMPORT_DIR) -> list[str]:
    """Names of import copies that are missing, out of date, or have no source."""
    expected = expected_files(source_dir)
    present = {p.name for p in import_dir.glob("*.json")} if import_dir.is_dir() else set()
    stale = [
        name for name, text in expected.items()
        if name not in present or (import_dir / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + sorted(present - expected.keys()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale import copies; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: {IMPORT_DIR / name} (run {Path(__file__).name})", file=sys.stderr)
        return 1 if stale else 0
    IMPORT_DIR.mkdir(exist_ok=True)
    expected = expected_files()
    for name, text in expected.items():
        (IMPORT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {IMPORT_DIR / name}")
    for path in sorted(IMPORT_DIR.glob("*.json")):
        if path.name not in expected:
            path.unlink()
            print(f"removed {path} (no provisioned dashboard of that name)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
