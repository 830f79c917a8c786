"""The Claude Code backend: runs internal requests on CLI processes through the
claude-agent-sdk.

The SDK's types and errors are translated at this boundary. ``pool/`` owns the CLI
processes; ``_agent_runner`` runs agent mode (Claude Code's own tools, fenced by the
policy in :mod:`clawrap.agent`).
See ``docs/ARCHITECTURE.md``.
"""
