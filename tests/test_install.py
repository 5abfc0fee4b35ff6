"""deploy/install.sh, run on this machine into a staging root (--prefix), so
the real /opt, /etc and systemd are never touched: the files it places, the
installed exporter running with the installed configuration on a real log,
a second run changing nothing the postmaster owns, --uninstall, and the unit
under systemd-analyze (verify, and its security exposure)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter import __version__
from helpers import REPO
from installed import assert_counts_like_checkout, real_log

pytestmark = pytest.mark.slow

INSTALL = REPO / "deploy" / "install.sh"
NAME = "smtp-reply-exporter"
UNIT = Path("etc/systemd/system") / f"{NAME}.service"
CONFIG = Path("etc") / NAME / "config.yml"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# `systemd-analyze security` of the unit before PrivateMounts= and RemoveIPC=
# was 1.6; it must not get worse.
EXPOSURE_AT_MOST = 1.4


def system_python() -> str:
    """The distribution's Python, as a postmaster has it, when it is recent
    enough; else the one running the tests."""
    system = Path("/usr/bin/python3")
    if system.exists() and subprocess.run(
        [str(system), "-c", "import sys, ensurepip; sys.exit(sys.version_info < (3, 10))"], check=False
    ).returncode == 0:
        return str(system)
    return sys.executable


def install(prefix: Path, *options: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(INSTALL), "--prefix", str(prefix), "--python", system_python(), *options],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def under(prefix: Path, path: str | Path) -> Path:
    return prefix / Path(path).relative_to("/")


def exec_start(unit_text: str) -> list[str]:
    (line,) = re.findall(r"(?m)^ExecStart=(.+)$", unit_text)
    return line.split()


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[Path, Path]:
    """(staging root, the real log its configuration names)."""
    tmp = tmp_path_factory.mktemp("install")
    log = real_log(tmp / "log")
    prefix = tmp / "root"
    install(prefix, "--log", str(log))
    return prefix, log


def test_the_unit_starts_the_installed_program_with_the_installed_config(staged):
    prefix, _ = staged
    program, *args = exec_start((prefix / UNIT).read_text())
    assert program == f"/opt/{NAME}/bin/{NAME}"
    assert args == ["--config", f"/{CONFIG}"]
    version = subprocess.run([str(under(prefix, program)), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split() == [NAME, __version__]
    # The staged config names the real state directory; the staged one stands in for it.
    state = prefix / f"var/lib/{NAME}"
    assert state.is_dir()
    check = subprocess.run([str(under(prefix, program)), "--config", str(prefix / CONFIG),
                            "--state-file", str(state / "state.json"), "--check-config"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("configuration OK"), check.stdout


def test_the_service_user_is_made_in_group_adm(staged):
    prefix, _ = staged
    sysusers = prefix / "etc/sysusers.d" / f"{NAME}.conf"
    assert sysusers.read_text() == (REPO / "deploy/systemd" / f"{NAME}.sysusers.conf").read_text()
    passwd = {line.split(":")[0]: line.split(":") for line in (prefix / "etc/passwd").read_text().splitlines()}
    assert passwd[NAME][5:] == [f"/var/lib/{NAME}", "/usr/sbin/nologin"]
    group_lines = (prefix / "etc/group").read_text().splitlines()
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in group_lines}
    assert NAME in groups["adm"]


def test_the_config_follows_the_chosen_log(staged):
    prefix, log = staged
    config = yaml.safe_load((prefix / CONFIG).read_text())
    assert config["sources"] == [{"path": str(log), "format": "auto"}]
    assert config["web"]["listen_addresses"] == ["127.0.0.1:10925"]


def test_the_installed_exporter_counts_the_log_with_the_installed_config(staged, tmp_path):
    prefix, log = staged
    program = under(prefix, exec_start((prefix / UNIT).read_text())[0])
    # The port and the state file are moved off the real ones; the sources
    # are the installed config's.
    assert_counts_like_checkout([str(program)], tmp_path, log,
                                "--config", str(prefix / CONFIG), "--state-file", str(tmp_path / "state.json"))


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, check=False, timeout=60)


needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")


@needs_systemd_analyze
def test_systemd_analyze_verify_passes_on_the_installed_unit(staged, tmp_path):
    prefix, _ = staged
    # verify checks that ExecStart's program exists: point it into the stage.
    unit = tmp_path / f"{NAME}.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=/", f"ExecStart={prefix}/", (prefix / UNIT).read_text()))
    result = systemd_analyze("verify", str(unit))
    # Unknown keys are only reported, so any output fails too.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr

    unit.write_text(re.sub(r"(?m)^ExecStart=/", f"ExecStart={tmp_path}/missing/", (prefix / UNIT).read_text()))
    assert systemd_analyze("verify", str(unit)).returncode != 0, "verify would not notice a missing program"


@needs_systemd_analyze
def test_systemd_analyze_security_exposure_does_not_grow():
    result = systemd_analyze("security", "--offline=yes", str(REPO / "deploy/systemd" / f"{NAME}.service"))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= EXPOSURE_AT_MOST, result.stdout


def test_journal_install_reads_journald_as_group_systemd_journal(tmp_path):
    prefix = tmp_path / "root"
    install(prefix, "--journal", "postfix.service")
    config = yaml.safe_load((prefix / CONFIG).read_text())
    assert config["sources"] == [{"journal": {"units": ["postfix.service"]}, "format": "auto"}]
    dropin = (prefix / "etc/systemd/system" / f"{NAME}.service.d" / "journal.conf").read_text()
    assert re.search(r"(?m)^SupplementaryGroups=systemd-journal$", dropin)


def test_a_second_run_keeps_the_config_and_uninstall_removes_the_rest(staged):
    """Last in this file: it uninstalls the staged install."""
    prefix, _ = staged
    config = prefix / CONFIG
    edited = config.read_text() + "# the postmaster's edit\n"
    config.write_text(edited)
    unit = (prefix / UNIT).read_text()
    # The installed program as an older build of the same version would differ:
    # the second run must put this checkout's in its place.
    [installed] = (prefix / "opt" / NAME).glob("lib/python3*/site-packages/exporter/__init__.py")
    shipped = installed.read_text()
    installed.write_text(shipped + "# an older build\n")
    second = install(prefix)
    assert f"keeping the existing /{CONFIG}" in second.stdout
    assert config.read_text() == edited and (prefix / UNIT).read_text() == unit
    assert installed.read_text() == shipped

    install(prefix, "--uninstall")
    assert not (prefix / "opt" / NAME).exists() and not (prefix / UNIT).exists()
    assert not (prefix / "etc/sysusers.d" / f"{NAME}.conf").exists()
    assert config.read_text() == edited, "--uninstall without --purge keeps the configuration"
    install(prefix, "--uninstall", "--purge")
    assert not config.parent.exists()
