#!/usr/bin/env python3
"""Build the Debian package smtp-reply-exporter_VERSION_all.deb with dpkg-deb.

    deploy/debian/build.py [--wheel FILE] [--out DIR]

The package holds the exporter and the pure-Python libraries it needs that
Debian does not ship at the versions it needs (prometheus-client, watchdog)
in /usr/lib/smtp-reply-exporter, with /usr/bin/smtp-reply-exporter to start
it; PyYAML and bcrypt, which are compiled, come from Debian's packages. So the
package is Architecture: all and installs on Debian 12 and Ubuntu 24.04
alike. Besides: the systemd unit, the sysusers file, a default configuration
in /etc as a conffile, and maintainer scripts (beside this file) that create
the user in group adm, enable and start the service, and stop and clean up.

The wheel is built from this checkout unless --wheel names one; the version
is the wheel's, so it comes from exporter/__init__.py alone.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

NAME = "smtp-reply-exporter"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LIB = Path("usr/lib") / NAME
# The unit directory of Debian 12's systemd; later releases read it too.
UNIT_DIR = Path("lib/systemd/system")
MAINTAINER = "smtp-reply-exporter maintainers <maintainers@smtp-reply-exporter.example.org>"
HOMEPAGE = "https://smtp-reply-exporter.example.org/"
# Requirements met by Debian's packages: the compiled ones, so that the
# package stays Architecture: all. Debian 12's python3-bcrypt is 3.2, older
# than the wheel asks for; the exporter uses only hashpw, gensalt and
# checkpw, which it has (the package's test checks basic auth with it).
FROM_DEBIAN = {"pyyaml": "python3-yaml (>= 6)", "bcrypt": "python3-bcrypt"}
DEPENDS = ["python3 (>= 3.10)", *FROM_DEBIAN.values(), "systemd | systemd-sysusers"]
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")
CONFIG = Path("etc") / NAME / "config.yml"

LAUNCHER = f"""\
#!/usr/bin/python3
# smtp-reply-exporter from the Debian package: the program and the libraries
# it brings live in /{LIB}.
import sys

sys.path.insert(0, "/{LIB}")

from exporter.cli import main  # noqa: E402

sys.exit(main())
"""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--wheel-dir", str(out), str(REPO)], check=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def wheel_metadata(wheel: Path):  # noqa: ANN201 (an email.message.Message)
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode())


def vendored_requirements(metadata) -> list[str]:  # noqa: ANN001
    """The wheel's run-time requirements that the package carries itself."""
    out = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        if ";" in requirement:  # extras (test) and markers are not run-time needs here
            continue
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        if normalized(name) not in FROM_DEBIAN:
            out.append(requirement.replace(" ", ""))
    return out


def install_libraries(wheel: Path, requirements: list[str], lib: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-compile",
         "--only-binary", ":all:", "--python-version", "3.10", "--target", str(lib), str(wheel), *requirements],
        check=True,
    )
    # pip's console scripts name the building Python; /usr/bin has the launcher.
    shutil.rmtree(lib / "bin", ignore_errors=True)
    for cache in list(lib.rglob("__pycache__")):
        shutil.rmtree(cache)
    compiled = [str(p.relative_to(lib)) for p in lib.rglob("*") if p.suffix in (".so", ".pyd")]
    if compiled:
        raise SystemExit(f"build.py: compiled files would make the package architecture-dependent: {compiled}")


def check_copyright_covers(lib: Path) -> None:
    """Every carried library has its own stanza in the copyright file."""
    text = (HERE / "copyright").read_text()
    for top in sorted(p.name for p in lib.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")):
        if top != "exporter" and f"Files: {LIB}/{top}/*" not in text:
            raise SystemExit(f"build.py: deploy/debian/copyright has no stanza for {LIB}/{top}")


def changelog(version: str) -> bytes:
    """A native package's changelog: one entry for this version, dated by the
    commit it is built from (SOURCE_DATE_EPOCH when set)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    ).stdout.strip()
    date = email.utils.formatdate(float(epoch) if epoch else None)
    text = f"{NAME} ({version}) unstable; urgency=medium\n\n  * Release {version}.\n\n -- {MAINTAINER}  {date}\n"
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def put(root: Path, path: Path | str, data: bytes | str, mode: int = 0o644) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    target.chmod(mode)


def control(metadata, files: list[Path]) -> str:  # noqa: ANN001
    size_kib = sum(p.stat().st_size for p in files) // 1024 + 1
    # The synopsis must stay under 80 characters; the wheel's Summary is longer.
    summary = "Prometheus exporter of SMTP reply codes from mail server logs"
    long = textwrap.fill(
        "It follows the mail server's log (Postfix, Exim, Sendmail, OpenSMTPD; files or journald), "
        "counts every SMTP reply code and RFC 3463 enhanced status code by direction, SMTP stage and "
        "remote provider, and serves them to Prometheus on 127.0.0.1:10925. The package runs it as "
        "the systemd service smtp-reply-exporter, as its own user in group adm.",
        width=72, initial_indent=" ", subsequent_indent=" ",
    )
    return (
        f"Package: {NAME}\nVersion: {metadata['Version']}\nArchitecture: all\nMaintainer: {MAINTAINER}\n"
        f"Installed-Size: {size_kib}\nDepends: {', '.join(DEPENDS)}\nSection: net\nPriority: optional\n"
        f"Homepage: {HOMEPAGE}\nDescription: {summary}\n{long}\n"
    )


def build(wheel: Path, out: Path) -> Path:
    metadata = wheel_metadata(wheel)
    version = metadata["Version"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        install_libraries(wheel, vendored_requirements(metadata), root / LIB)
        check_copyright_covers(root / LIB)
        put(root, Path("usr/bin") / NAME, LAUNCHER, 0o755)
        unit = (REPO / "deploy/systemd" / f"{NAME}.service").read_text()
        unit, changed = re.subn(r"(?m)^ExecStart=\S+", f"ExecStart=/usr/bin/{NAME}", unit)
        assert changed == 1, "the unit has no single ExecStart line to point at /usr/bin"
        put(root, UNIT_DIR / f"{NAME}.service", unit)
        put(root, Path("usr/lib/sysusers.d") / f"{NAME}.conf",
            (REPO / "deploy/systemd" / f"{NAME}.sysusers.conf").read_bytes())
        put(root, CONFIG, (REPO / "config" / f"{NAME}.example.yml").read_bytes())
        doc = Path("usr/share/doc") / NAME
        put(root, doc / "copyright", (HERE / "copyright").read_bytes())
        put(root, doc / "changelog.gz", changelog(version))
        web_config = REPO / "config" / "web-config.example.yml"
        put(root, doc / "examples" / web_config.name, web_config.read_bytes())
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)

        files = sorted(p for p in root.rglob("*") if p.is_file())
        debian = root / "DEBIAN"
        put(root, "DEBIAN/md5sums", "".join(
            f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n"  # noqa: S324 (dpkg's format)
            for p in files if not p.is_relative_to(root / CONFIG.parts[0])
        ))
        put(root, "DEBIAN/conffiles", f"/{CONFIG}\n")
        for script in MAINTAINER_SCRIPTS:
            put(root, f"DEBIAN/{script}", (HERE / script).read_bytes(), 0o755)
        put(root, "DEBIAN/control", control(metadata, files))
        debian.chmod(0o755)

        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"{NAME}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                       check=True, stdout=subprocess.DEVNULL)
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="the wheel to package (default: build this checkout's)")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the .deb goes (default: dist/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel.resolve() if args.wheel else build_wheel(Path(tmp))
        print(build(wheel, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
