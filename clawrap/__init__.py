"""clawrap: Claude Code behind the OpenAI and Anthropic APIs, on trio and hypercorn.

The public names: :class:`Settings` (every option, also read from ``CLAWRAP_*``),
:func:`serve` (run the server until a signal), :func:`create_app` (the ASGI app
over a backend, for embedding), :class:`ClawrapError` and ``__version__``.
:func:`serve` and :func:`create_app` load the server (hypercorn, the SDK, the
dialects) only when first used, so ``import clawrap`` and ``clawrap --help``
stay quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._errors import ClawrapError
from ._version import __version__

if TYPE_CHECKING:
    from ._app import create_app
    from ._server import serve

# Loaded on first use: importing the server costs about 0.3 s.
_LAZY = {"create_app": "._app", "serve": "._server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClawrapError", "Settings", "__version__", "create_app", "serve"]
