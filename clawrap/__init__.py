"""clawrap: Claude Code behind the OpenAI and Anthropic APIs, on trio and hypercorn.

The public names: :class:`Settings` (every option, also read from ``CLAWRAP_*``),
:func:`serve` (run the server until a signal), :func:`create_app` (the ASGI app
over a backend, for embedding), :class:`ClawrapError` and ``__version__``.
:func:`serve` and :func:`create_app` load the server (hypercorn, the SDK, the
dialects) only when first used, and :class:`Settings` loads pydantic-settings
when first used, so ``import clawrap`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clawrap._version import __version__
from clawrap.core._errors import ClawrapError

if TYPE_CHECKING:
    from clawrap.cli._server import serve
    from clawrap.core._config import Settings
    from clawrap.http._app import create_app

# Loaded on first use: importing the server costs about 0.3 s, pydantic-settings about 0.2 s.
_LAZY = {"create_app": ".http._app", "serve": ".cli._server", "Settings": ".core._config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClawrapError", "Settings", "__version__", "create_app", "serve"]
