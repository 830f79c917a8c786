"""clawrap: Claude Code behind the OpenAI and Anthropic APIs, on trio and hypercorn."""

from ._config import Settings
from ._errors import ClawrapError
from ._version import __version__

__all__ = ["ClawrapError", "Settings", "__version__"]
