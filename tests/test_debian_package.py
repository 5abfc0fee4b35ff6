"""The Debian package from deploy/debian/build.py: its name and fields, lintian
with no errors, and, as root, a real `dpkg -i` on this machine: the installed
program counts a real log, serves with basic auth checked by Debian's bcrypt,
and `dpkg --purge` leaves nothing but the service's user.

This machine's dpkg database is shared: the install runs under a lock file
in /var/lock, and is skipped when the package is already installed by
someone else."""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest

from exporter import __version__
from helpers import REPO
from installed import assert_counts_like_checkout, real_log
from daemontest import Exporter
from webtest import basic

pytestmark = pytest.mark.slow

NAME = "smtp-reply-exporter"
BUILD = REPO / "deploy" / "debian" / "build.py"
LOCK = Path("/var/lock") / f"{NAME}-deb-test.lock"
CONFIG = Path("/etc") / NAME / "config.yml"
STATE_DIR = Path("/var/lib") / NAME
# What deb-systemd-helper enable leaves, and purge must take away.
ENABLED_LINK = Path("/etc/systemd/system/multi-user.target.wants") / f"{NAME}.service"
HELPER_STATE = Path("/var/lib/systemd/deb-systemd-helper-enabled") / f"{NAME}.service.dsh-also"
DEBIAN_PYTHON = Path("/usr/lib/python3/dist-packages")

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None,
                                reason="dpkg-deb is not installed: not a Debian system")


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    result = subprocess.run([sys.executable, str(BUILD), "--out", str(out)],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.split()[-1])


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


@needs_dpkg
def test_package_is_named_by_the_version_and_arch_independent(deb):
    assert deb.name == f"{NAME}_{__version__}_all.deb"
    assert (field(deb, "Package"), field(deb, "Version"), field(deb, "Architecture")) == (NAME, __version__, "all")
    assert "python3-bcrypt" in field(deb, "Depends")
    control = subprocess.run(["dpkg-deb", "--info", str(deb), "conffiles"], capture_output=True, text=True, check=True)
    assert control.stdout.split() == [str(CONFIG)]
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = {line.split()[-1].removeprefix(".") for line in contents.splitlines()}
    assert {f"/usr/bin/{NAME}", f"/lib/systemd/system/{NAME}.service", f"/usr/lib/sysusers.d/{NAME}.conf",
            str(CONFIG), f"/usr/share/doc/{NAME}/copyright"} <= paths
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".so")]


@needs_dpkg
def test_lintian_finds_no_errors(deb):
    lintian = shutil.which("lintian")
    if lintian is None:
        pytest.skip("lintian is not installed (Debian package lintian; tests/run installs it as root)")
    result = subprocess.run([lintian, "--fail-on", "error", "--no-tag-display-limit", str(deb)],
                            capture_output=True, text=True, check=False, timeout=300)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    assert result.returncode == 0 and not [t for t in tags if t.startswith("E:")], result.stdout + result.stderr


def dpkg(*args: str) -> subprocess.CompletedProcess:
    """dpkg, waiting while another apt or dpkg run holds its lock."""
    deadline = time.monotonic() + 180
    while True:
        result = subprocess.run(["dpkg", *args], capture_output=True, text=True, check=False, timeout=300)
        if result.returncode == 0 or "lock" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(2)


def installed_status() -> str:
    result = subprocess.run(["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}", NAME],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "not known"


@pytest.fixture
def dpkg_lock():
    """Serialize with other runs of this test on the machine."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_basic_auth(program: str, tmp: Path, log: Path) -> None:
    """The installed exporter checks basic auth with Debian's bcrypt (older
    than the wheel asks for)."""
    web_config = tmp / "web-config.yml"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web_config.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    exporter = Exporter(tmp, "--web.config.file", str(web_config), "--state-file", str(tmp / "auth-state.json"),
                        str(log), command=[program])
    try:
        assert exporter.fetch(headers=basic("prometheus", "s3cret")).status == 200
        assert exporter.fetch().status == 401
        assert exporter.fetch(headers=basic("prometheus", "wrong")).status == 401
    finally:
        exporter.stop()


@needs_dpkg
def test_install_run_and_purge(deb, tmp_path, dpkg_lock):
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    missing = [p for p in ("yaml", "bcrypt") if not (DEBIAN_PYTHON / p / "__init__.py").exists()]
    if missing:
        pytest.skip(f"the package's dependencies are not installed: Debian's python3-{', python3-'.join(missing)} "
                    "(tests/run installs them as root)")
    if installed_status() not in ("not known", "un", "pn"):
        pytest.skip(f"{NAME} is already installed on this machine ({installed_status()}): not ours to purge")

    install = dpkg("--install", str(deb))
    try:
        assert install.returncode == 0, install.stdout + install.stderr
        assert installed_status() == "ii"
        owned = [Path(p) for p in dpkg("--listfiles", NAME).stdout.split()]

        # postinst: the user in group adm, its state directory, the unit enabled.
        user = pwd.getpwnam(NAME)
        assert NAME in grp.getgrnam("adm").gr_mem
        assert (STATE_DIR.stat().st_uid, STATE_DIR.stat().st_mode & 0o777) == (user.pw_uid, 0o750)
        assert ENABLED_LINK.is_symlink()

        program = f"/usr/bin/{NAME}"
        check = subprocess.run([program, "--config", str(CONFIG), "--check-config"],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0 and check.stdout.startswith("configuration OK"), check.stdout + check.stderr
        log = real_log(tmp_path / "log")
        assert_counts_like_checkout([program], tmp_path, log, "--config", str(CONFIG),
                                    "--state-file", str(tmp_path / "state.json"), str(log))
        check_basic_auth(program, tmp_path, log)
    finally:
        purge = dpkg("--purge", NAME)
    assert purge.returncode == 0, purge.stdout + purge.stderr

    assert installed_status() in ("not known", "un", "pn")
    left = [p for p in owned if p.is_file() or (p.is_dir() and NAME in p.name)]
    assert not left, f"left after purge: {left}"
    for path in (CONFIG.parent, STATE_DIR, ENABLED_LINK, HELPER_STATE, Path("/usr/lib") / NAME):
        assert not path.exists() and not path.is_symlink(), f"{path} is left after purge"
    assert not list(Path("/var/lib/dpkg/info").glob(f"{NAME}.*"))
    # What a purge leaves, as Debian's packages do: the user and its group.
    assert pwd.getpwnam(NAME)
