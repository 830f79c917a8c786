"""The core every layer builds on: the internal request and events, errors, settings,
the model catalogue, Claude authentication detection and the backend protocol.

No I/O framework here: nothing in ``core`` imports trio, hypercorn, sqlite3 or the
claude-agent-sdk (an import-linter contract in ``pyproject.toml`` holds it to that).
See ``docs/ARCHITECTURE.md``.
"""
