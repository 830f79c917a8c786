"""Client tools whose calls wait for the client's results, so a tool loop stays on one process.

Each CLI process spawned with client tools gets its own :class:`ToolGate` and an
in-process MCP server (:func:`gate_server`) whose ``tools/call`` handler does not
run anything: it waits, inside the live CLI process's turn, until the client's
next request delivers the result (:meth:`ToolGate.deliver`). The CLI then carries
on with the same turn: its next upstream request holds exactly the model's
``tool_use`` blocks and the client's ``tool_result`` blocks, and no process is
spawned, nothing is resumed from a transcript.

What the CLI allows (measured with CLI 2.1.337):

- An SDK MCP call has no idle timeout and a wall-clock limit of ~28 hours
  (``MCP_TOOL_TIMEOUT`` moves it), so clawrap bounds the wait itself: the pool
  frees a process whose calls stay open past ``tool_wait``.
- Calls run one after another unless the tool is annotated ``readOnlyHint``;
  then every parallel call of a model turn is open at once, and the turn resumes
  only when all have returned.
- ``tools/call`` names its call in ``_meta["claudecode/toolUseId"]``, which is
  how a result finds its call. The SDK's own tool helper hides it (and checks
  arguments against the schema, answering the model itself), hence this server.
- The CLI rewrites some results: an empty one becomes "(... completed with no
  output)", one over 50,000 characters is saved to a file and replaced by a
  preview. :func:`deliverable` says which results pass through unchanged; the
  others take the transcript path.
- Text the client sends beside its results (Cline adds the editor's state) has
  no warm way in. A user message sent while calls are open reaches the model as
  a ``{"role": "system"}`` entry in the CLI's own words ("The user sent a new
  message while you were working: ..."), after the results rather than as a
  text block beside them; folding it into a result moves it inside that
  ``tool_result``. Either way the model would not see the client's turn, so
  such a follow-up takes the transcript path too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from clawrap.core._request import ImagePart, Part, TextPart, ToolResultPart

log = logging.getLogger("clawrap.tools")

META_ID = "claudecode/toolUseId"
# Above this many characters a result is replaced by a preview (the CLI's ceiling).
MAX_RESULT_CHARS = 50_000
# The CLI's own limit on an MCP result's tokens, raised so that only the ceiling above applies.
MAX_OUTPUT_TOKENS_ENV = ("MAX_MCP_OUTPUT_TOKENS", "100000000")
GONE = "The client did not send this tool's result."


@dataclass(slots=True)
class ToolGate:
    """The open calls of one CLI process and the results delivered for them."""

    pending: dict[str, trio.Event] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)
    order: list[str] = field(default_factory=list)  # delivered, not yet returned

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def call(self, call_id: str) -> dict[str, Any]:
        """The handler's side: wait for ``call_id``'s result (cancelled when the turn is)."""
        ready = self.pending.setdefault(call_id, trio.Event())
        self._notify()
        try:
            await ready.wait()
            # Return in the client's order: the CLI lists results as its calls return, so
            # each waits until the CLI has taken the one before (:meth:`taken`).
            while call_id in self.order and self.order[0] != call_id:
                await self.changed.wait()
            return self.results.pop(call_id, _error(GONE))
        except BaseException:
            if call_id in self.order:
                self.order.remove(call_id)
            raise
        finally:
            self.pending.pop(call_id, None)
            self._notify()

    def deliver(self, results: dict[str, dict[str, Any]]) -> None:
        """The next request's side: hand over the results (MCP ``CallToolResult`` dicts)."""
        for call_id, result in results.items():
            self.results[call_id] = result
            self.order.append(call_id)
            self.pending.setdefault(call_id, trio.Event()).set()
        self._notify()

    def taken(self, call_id: str) -> None:
        """The CLI reported ``call_id``'s result (its user message): the next may return."""
        if call_id in self.order:
            self.order.remove(call_id)
            self._notify()

    def clear(self) -> None:
        self.pending.clear()
        self.results.clear()
        self.order.clear()


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


def mcp_result(part: ToolResultPart) -> dict[str, Any] | None:
    """``part`` as an MCP ``CallToolResult`` the CLI passes on unchanged, or None if it would not.

    Text and images pass through; an empty result, one over ``MAX_RESULT_CHARS`` or
    one holding an image by URL would be rewritten or refused.
    """
    content: list[dict[str, Any]] = []
    chars = 0
    for piece in part.content:
        if isinstance(piece, TextPart):
            if piece.text:
                chars += len(piece.text)
                content.append({"type": "text", "text": piece.text})
        elif isinstance(piece, ImagePart) and piece.url is None:
            content.append({"type": "image", "data": piece.data, "mimeType": piece.media_type})
        else:
            return None
    if not content or chars == 0 or chars > MAX_RESULT_CHARS:
        return None
    return {"content": content, "isError": bool(part.is_error)}


def deliverable(parts: tuple[Part, ...]) -> dict[str, dict[str, Any]] | None:
    """The results of a follow-up turn made only of tool results, by call id; None otherwise."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        if not isinstance(part, ToolResultPart) or part.tool_use_id in out:
            return None
        result = mcp_result(part)
        if result is None:
            return None
        out[part.tool_use_id] = result
    return out or None


def gate_server(name: str, tools: list[tuple[str, str, dict[str, Any]]], gate: ToolGate) -> Any:
    """An in-process MCP server (``McpSdkServerConfig``) offering ``tools`` (name without the
    MCP prefix, description, input schema); every call waits at ``gate``."""
    from claude_agent_sdk import McpSdkServerConfig
    from mcp import types
    from mcp.server import Server

    listed = [
        types.Tool(
            name=tool_name,
            description=description,
            input_schema=schema,
            # Lets the CLI open parallel calls at once instead of one after another.
            annotations=types.ToolAnnotations(read_only_hint=True),
        )
        for tool_name, description, schema in tools
    ]

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def on_call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        meta: Any = getattr(params, "meta", None)
        if meta is not None and not isinstance(meta, dict):
            meta = meta.model_dump(by_alias=True)
        call_id = meta.get(META_ID) if isinstance(meta, dict) else None
        if not isinstance(call_id, str):
            log.warning("a client tool call came without its id; answering with an error")
            return types.CallToolResult.model_validate(_error(GONE))
        return types.CallToolResult.model_validate(await gate.call(call_id))

    server = Server(name, version="1.0.0", on_list_tools=on_list_tools, on_call_tool=on_call_tool)
    return McpSdkServerConfig(type="sdk", name=name, instance=server)


__all__ = [
    "MAX_OUTPUT_TOKENS_ENV",
    "MAX_RESULT_CHARS",
    "ToolGate",
    "deliverable",
    "gate_server",
    "mcp_result",
]
