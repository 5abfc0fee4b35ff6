"""The wheel and the sdist: `python -m build` makes both, `twine check` passes
them, their metadata is what a package index shows, and the wheel installs
into a fresh virtualenv from binary wheels only (no compiler) and runs:
--version, --once on the bundled demo log, and the daemon over HTTP."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from exporter import __version__
from installed import assert_counts_like_checkout
from helpers import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """An sdist, and a wheel built from that sdist (build's default), so the
    sdist is proven complete."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def the(dist: Path, pattern: str) -> Path:
    (path,) = dist.glob(pattern)
    return path


def wheel_metadata(wheel: Path):  # noqa: ANN201
    with zipfile.ZipFile(wheel) as z:
        return Parser().parsestr(z.read(f"smtp_reply_exporter-{__version__}.dist-info/METADATA").decode())


def test_build_makes_a_wheel_and_an_sdist_named_by_the_version(dist):
    assert sorted(p.name for p in dist.iterdir()) == [
        f"smtp_reply_exporter-{__version__}-py3-none-any.whl",
        f"smtp_reply_exporter-{__version__}.tar.gz",
    ]


def test_twine_check_passes(dist):
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_metadata_is_what_an_index_shows(dist):
    meta = wheel_metadata(the(dist, "*.whl"))
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "prometheus" in meta["Keywords"].split(",")
    classifiers = meta.get_all("Classifier")
    assert "Topic :: System :: Monitoring" in classifiers
    assert "Intended Audience :: System Administrators" in classifiers
    # PEP 639: the licence expression replaces licence classifiers.
    assert not [c for c in classifiers if c.startswith("License ::")]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert meta["Description-Content-Type"] == "text/markdown"
    with zipfile.ZipFile(the(dist, "*.whl")) as z:
        names = z.namelist()
    assert f"smtp_reply_exporter-{__version__}.dist-info/licenses/LICENSE" in names
    assert "exporter/demo/postfix.log" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "deploy/"))]


def test_sdist_carries_the_licence_config_and_deploy_files(dist):
    with tarfile.open(the(dist, "*.tar.gz")) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = {"LICENSE", "README.md", "pyproject.toml", "config/smtp-reply-exporter.example.yml",
                "deploy/install.sh", "deploy/systemd/smtp-reply-exporter.service", "deploy/debian/build.py",
                "exporter/demo/postfix.log"}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_installs_without_a_compiler_and_runs(dist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Binary wheels only, for the dependencies too: nothing is compiled.
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--only-binary", ":all:", str(the(dist, "*.whl"))],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    program = venv / "bin" / "smtp-reply-exporter"
    version = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split() == ["smtp-reply-exporter", __version__]
    # The demo log the installed package carries, not the checkout's.
    demo = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import exporter, pathlib; print(pathlib.Path(exporter.__file__).parent / 'demo' / 'postfix.log')"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip())
    assert demo.is_relative_to(venv) and demo.is_file()
    assert_counts_like_checkout([str(program)], tmp_path, demo, str(demo))
