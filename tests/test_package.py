"""The package's public names, and that importing it does not load the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import clawrap
from clawrap.cli._server import serve
from clawrap.http._app import create_app


def test_the_public_names_are_the_modules_own() -> None:
    assert sorted(clawrap.__all__) == sorted(
        ["ClawrapError", "Settings", "__version__", "create_app", "serve"]
    )
    assert (clawrap.create_app, clawrap.serve) == (create_app, serve)


def test_importing_the_package_leaves_the_server_unloaded() -> None:
    code = (
        "import clawrap, sys; "
        "print(sorted({'clawrap.cli._server', 'hypercorn'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == "[]"
