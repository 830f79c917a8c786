"""Build dist/clawrap.pyz: clawrap and all its dependencies in one file, run with `python3`.

    python contrib/zipapp/build.py [--uncompressed] [--measure] [--output PATH]

Uses shiv, because clawrap's dependencies include compiled extensions
(pydantic-core, rpds-py, ...) that cannot be imported from inside a zip: shiv
unpacks the bundled site-packages once, on first run, into ``~/.shiv`` (or
``$SHIV_ROOT``) and reuses it afterwards. shiv is a build-time tool only; it is
installed into a build venv under ``build/zipapp/`` and is never a dependency
of clawrap itself.

The result runs on a machine with the same Python minor version and platform
as the build (the compiled extensions and the bundled Claude Code CLI binary
are platform-specific); nothing else needs to be installed there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "zipapp"
DEFAULT_OUTPUT = ROOT / "dist" / "clawrap.pyz"
ENTRY_POINT = "clawrap.cli._main:main"
SHIV_REQUIREMENT = "shiv>=1.0.5"

_started = time.monotonic()


def step(message: str) -> None:
    print(f"[{time.monotonic() - _started:7.1f} s] {message}", flush=True)


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build_venv() -> Path:
    """A venv of the running interpreter with shiv in it, kept for the next build."""
    env_dir = BUILD / f"venv-py{sys.version_info[0]}{sys.version_info[1]}"
    python = venv_python(env_dir)
    if not python.exists():
        step(f"creating the build venv {env_dir.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    probe = subprocess.run([str(python), "-c", "import shiv"], capture_output=True, check=False)
    if probe.returncode != 0:
        step(f"installing {SHIV_REQUIREMENT} into the build venv")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U", "pip"],
            check=True,
        )
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                SHIV_REQUIREMENT,
            ],
            check=True,
        )
    return python


def run_shiv(python: Path, output: Path, *, compressed: bool) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    command = [
        str(python),
        "-m",
        "shiv",
        "--entry-point",
        ENTRY_POINT,
        "--output-file",
        str(partial),
        "--python",
        "/usr/bin/env python3",
        "--compressed" if compressed else "--uncompressed",
        "--reproducible",
        # The rest goes to `pip install`: clawrap from this tree, with its dependencies.
        "--disable-pip-version-check",
        "--quiet",
        str(ROOT),
    ]
    step("shiv: pip-installing clawrap and its dependencies, then zipping them")
    subprocess.run(command, check=True, cwd=ROOT)
    partial.replace(output)


def report(output: Path) -> None:
    with zipfile.ZipFile(output) as archive:
        infos = archive.infolist()
    raw = sum(i.file_size for i in infos)
    stored = sum(i.compress_size for i in infos)
    biggest = sorted(infos, key=lambda i: i.file_size, reverse=True)[:3]
    step(f"wrote {output} : {mib(output.stat().st_size)} on disk")
    step(f"  {len(infos)} files, {mib(raw)} unpacked, {mib(stored)} stored in the zip")
    for info in biggest:
        step(f"  {info.filename}: {mib(info.file_size)} -> {mib(info.compress_size)}")


def measure(output: Path) -> None:
    """Time a first run (unpacking into an empty SHIV_ROOT) and a second one."""
    with tempfile.TemporaryDirectory(prefix="clawrap-shiv-") as root:
        env = {**os.environ, "SHIV_ROOT": root}
        for label in ("first run (unpacks)", "second run"):
            began = time.monotonic()
            done = subprocess.run(
                # The base interpreter in isolated mode: only what the pyz carries.
                [getattr(sys, "_base_executable", sys.executable), "-I", str(output), "--version"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            took = time.monotonic() - began
            said = (done.stdout or done.stderr).strip().splitlines()
            step(f"{label}: `--version` took {took:.2f} s, exit {done.returncode}: {said[-1:]}")
        unpacked = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())
        step(f"unpacked cache: {mib(unpacked)} under $SHIV_ROOT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the single-file clawrap.pyz with shiv.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--uncompressed", action="store_true", help="store files uncompressed")
    parser.add_argument("--measure", action="store_true", help="time a first and second run")
    args = parser.parse_args(argv)
    step(f"building {args.output} with Python {sys.version.split()[0]} ({sys.executable})")
    python = build_venv()
    run_shiv(python, args.output.resolve(), compressed=not args.uncompressed)
    report(args.output)
    if args.measure:
        measure(args.output)
    step("done; run it with: python3 " + os.path.relpath(args.output) + " serve")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"build failed: {exc.cmd[0]} exited with status {exc.returncode}", file=sys.stderr)
        sys.exit(1)
