"""The import contracts in pyproject.toml hold, and each one fails when its rule is broken.

Each case copies the package to a temporary directory, puts one forbidden import back
and runs ``lint-imports`` there: a contract that cannot fail would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "clawrap", tmp_path / "clawrap")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("protocol/_sse.py", "import trio", "no trio, hypercorn, sqlite3"),
        ("core/_events.py", "import sqlite3", "no trio, hypercorn, sqlite3"),
        ("agent/_workdir.py", "import claude_agent_sdk", "no trio, hypercorn, sqlite3"),
        (
            "http/_asgi.py",
            "from clawrap.claude import _cli_process",
            "HTTP reaches a backend only through",
        ),
        ("sessions/_records.py", "from clawrap.http import _asgi", "Layers:"),
        (
            "protocol/_json_fences.py",
            "from clawrap.protocol import _output_pipeline",
            "Sibling modules inside a layer form no cycle",
        ),
        (
            "sessions/_lifetime.py",
            "if TYPE_CHECKING:\n    from clawrap.sessions import _store",
            "Sibling modules inside a layer form no cycle",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / "clawrap" / module
    prefix = "from typing import TYPE_CHECKING\n" if "TYPE_CHECKING" in line else ""
    path.write_text(path.read_text() + f"\n{prefix}{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(contract in ln for ln in broken) or contract in result.stdout.split("Broken")[-1]
