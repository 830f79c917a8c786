"""Agent mode's policy: who may ask for Claude Code's own tools, where, and with what.

A request's agent settings read from headers and body and checked hard (``_mode``), the
operator's roots and per-session working directories (``_workdir``), the operator's MCP
servers (``_mcp_registry``) and the tool listing (``_tools``). Both the HTTP shell and the
Claude backend use these; nothing here imports trio, hypercorn or the claude-agent-sdk.
The runs themselves are the Claude backend's (:mod:`clawrap.claude._agent_runner`).
See ``docs/ARCHITECTURE.md``.
"""
