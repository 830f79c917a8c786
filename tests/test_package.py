"""The package's public names, and that importing it does not load the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import clawrap
from clawrap._app import create_app
from clawrap._server import serve


def test_the_public_names_are_the_modules_own() -> None:
    assert sorted(clawrap.__all__) == sorted(
        ["ClawrapError", "Settings", "__version__", "create_app", "serve"]
    )
    assert (clawrap.create_app, clawrap.serve) == (create_app, serve)


def test_importing_the_package_leaves_the_server_unloaded() -> None:
    code = "import clawrap, sys; print(sorted({'clawrap._server', 'hypercorn'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == "[]"
