"""Conversation history for the CLI: earlier turns become a transcript the CLI resumes.

The CLI only takes one new user message per turn, so a request's earlier turns
reach the model through a session transcript written where the CLI looks for
it, ``$CLAUDE_CONFIG_DIR/projects/<cwd, every non-alphanumeric as "->/<id>.jsonl``,
and a process spawned with ``resume=<id>`` (and ``fork_session``, so the CLI
writes its own continuation elsewhere and ours can go right after spawn). Every
turn then arrives upstream as its own message with real blocks: images,
documents, thinking with its signature, tool calls and their results.

Two shapes, chosen by the last user turn:

- It carries no tool results: the transcript holds the turns before it and
  ``prompt`` is that turn, to be sent as the new user message. (A transcript
  must end on an assistant turn: after a user turn the CLI inserts an assistant
  "No response requested." before the new message.)
- It carries tool results (the tool loop): the CLI drops ``tool_result`` blocks
  from a sent message, so the whole conversation goes into the transcript and
  ``prompt`` is None; ``env`` turns on the CLI's resumption of an interrupted
  turn, so it continues at once after connecting, with nothing sent. The CLI
  then adds a text block to that turn: ``CLAUDE_CODE_RESUME_PROMPT``, or its
  own line "Continue from where you left off." without it. When the client's
  turn carries one text block after its results (and that text survives the
  trip through the environment unchanged), the text goes there instead of the
  transcript, so upstream the turn is exactly the client's; a turn of results
  alone still gets the CLI's line, which no switch of the CLI removes.

Normalisation, before either: empty text and empty turns go; consecutive turns
of one role merge (OpenAI sends each tool result as its own message); a leading
assistant turn gets a short user turn before it; thinking without a signature
(OpenAI-side reasoning) is dropped, since the API refuses it; tool results come
first in their turn. A request whose last turn is the assistant's (prefill) is
refused: the CLI cannot continue an assistant message. As the Messages and Chat
Completions APIs do, a call without a result in the next turn, or a result for
no call, is refused. When the CLI gets no client tools (none sent, or
``tool_choice: "none"``), earlier calls and results are rendered as text: the
API refuses tool blocks in a request that defines no tools.

Everything here is pure except :func:`write_transcript` and
:meth:`HistoryPlan.cleanup`.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from clawrap.claude._client_tools import sdk_tool_name
from clawrap.core._errors import ClawrapError
from clawrap.core._request import (
    CompletionRequest,
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolResultPart,
    ToolUsePart,
    Turn,
)
from clawrap.protocol._conversation_shape import check_conversation, kept, tools_in_play

# The CLI's switch for continuing a resumed session whose last turn is the user's.
RESUME_ENV = {"CLAUDE_CODE_RESUME_INTERRUPTED_TURN": "1"}
# The text the CLI adds to that turn when it continues it.
RESUME_PROMPT = "CLAUDE_CODE_RESUME_PROMPT"
# An environment string well below Linux's 128 KiB cap per string.
_MAX_RESUME_PROMPT = 32 * 1024
LEADING_USER_TEXT = "(The conversation starts with the assistant's message.)"
# The CLI hashes longer project directory names in a way we cannot reproduce.
_MAX_PROJECT_KEY = 200
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]")

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """How to hand a request's conversation to a CLI process.

    ``resume``: the session id of a transcript written for the earlier turns
    (spawn with ``resume=`` it and ``fork_session=True``), or None for a fresh
    conversation. ``prompt``: the user message to send now, Messages-API shaped
    (``{"role": "user", "content": [blocks]}``), or None when the CLI continues
    the resumed conversation by itself (send nothing, just read the turn).
    ``env``: variables to add to the CLI's environment for this spawn.
    ``transcript``: the file written, removed by :meth:`cleanup`.
    ``anchors``: the uuids of the transcript's first message and last user message.
    """

    resume: str | None
    prompt: dict[str, Any] | None
    env: dict[str, str] = field(default_factory=dict)
    transcript: Path | None = None
    anchors: tuple[str, str] | None = None

    @property
    def fork_session(self) -> bool:
        return self.resume is not None

    def cleanup(self) -> None:
        """Remove the transcript (safe once the CLI has connected, and to call twice)."""
        if self.transcript is not None:
            self.transcript.unlink(missing_ok=True)


# ---------------------------------------------------------------- turns -> messages


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    return {"type": "image", "source": source}


def _document_block(part: DocumentPart) -> dict[str, Any]:
    source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.title:
        block["title"] = part.title
    return block


def _result_text(part: ToolResultPart) -> str:
    return "".join(p.text if isinstance(p, TextPart) else "[image]" for p in part.content)


def _block(part: Part, tools_offered: bool) -> dict[str, Any] | None:
    """One content block, or None when the part is dropped (:func:`kept`)."""
    if not kept(part):
        return None
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return _image_block(part)
    if isinstance(part, DocumentPart):
        return _document_block(part)
    if isinstance(part, ThinkingPart):
        return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}
    if isinstance(part, ToolUsePart):
        if not tools_offered:
            args = json.dumps(part.input, ensure_ascii=False)
            return {"type": "text", "text": f"[called tool {part.name} with {args}]"}
        return {
            "type": "tool_use",
            "id": part.id,
            "name": sdk_tool_name(part.name),
            "input": part.input,
        }
    if not tools_offered:
        kind = "error from" if part.is_error else "result of"
        return {
            "type": "text",
            "text": f"[{kind} tool call {part.tool_use_id}: {_result_text(part)}]",
        }
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_use_id}
    content = [b for b in (_block(p, True) for p in part.content) if b is not None]
    if content:
        block["content"] = content
    if part.is_error:
        block["is_error"] = True
    return block


def to_content_blocks(parts: Iterable[Part], tools_offered: bool = True) -> list[dict[str, Any]]:
    """Messages API content blocks for ``parts``; tool results first, as the API wants."""
    blocks = [b for b in (_block(p, tools_offered) for p in parts) if b is not None]
    results = [b for b in blocks if b["type"] == "tool_result"]
    return results + [b for b in blocks if b["type"] != "tool_result"]


def to_messages(turns: Iterable[Turn], tools_offered: bool = True) -> list[dict[str, Any]]:
    """Normalised Messages API messages: no empty turns, roles alternating, user first."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        blocks = to_content_blocks(turn.parts, tools_offered)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == turn.role:
            merged = messages[-1]["content"] + blocks
            results = [b for b in merged if b["type"] == "tool_result"]
            messages[-1]["content"] = results + [b for b in merged if b["type"] != "tool_result"]
        else:
            messages.append({"role": turn.role, "content": blocks})
    if messages and messages[0]["role"] == "assistant":
        messages.insert(
            0, {"role": "user", "content": [{"type": "text", "text": LEADING_USER_TEXT}]}
        )
    return messages


# ---------------------------------------------------------------- messages -> transcript


def project_key(cwd: str) -> str:
    """The CLI's directory name under ``projects/`` for ``cwd`` (already resolved)."""
    return _NON_ALNUM.sub("-", unicodedata.normalize("NFC", cwd))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transcript_entries(
    messages: list[dict[str, Any]],
    *,
    session_id: str,
    cwd: str,
    model: str,
    timestamp: str,
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> list[dict[str, Any]]:
    """One transcript line per message, each pointing at the one before."""
    entries: list[dict[str, Any]] = []
    parent: str | None = None
    for index, message in enumerate(messages):
        entry_uuid = new_uuid()
        body: dict[str, Any] = message
        if message["role"] == "assistant":
            calls = any(b["type"] == "tool_use" for b in message["content"])
            body = {
                "id": f"msg_history_{index}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": message["content"],
                "stop_reason": "tool_use" if calls else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        entries.append(
            {
                "type": message["role"],
                "uuid": entry_uuid,
                "parentUuid": parent,
                "sessionId": session_id,
                "timestamp": timestamp,
                "cwd": cwd,
                "isSidechain": False,
                "userType": "external",
                "message": body,
            }
        )
        parent = entry_uuid
    return entries


def write_transcript(
    config_dir: Path, cwd: str, session_id: str, entries: list[dict[str, Any]]
) -> Path:
    """Write ``entries`` where a CLI running in ``cwd`` finds session ``session_id``.

    Directories this creates are private (0700), the file is 0600 and must not exist yet.
    """
    key = project_key(os.path.realpath(cwd))
    if len(key) > _MAX_PROJECT_KEY:
        raise ClawrapError("api_error", "The server's working directory path is too long.")
    directory = config_dir / "projects" / key
    for path in (config_dir, config_dir / "projects", directory):
        if not path.is_dir():
            path.mkdir(mode=0o700, exist_ok=True)
            path.chmod(0o700)
    target = directory / f"{session_id}.jsonl"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
    return target


# ---------------------------------------------------------------- the plan


def split_history(
    request: CompletionRequest,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(messages for the transcript, prompt to send or None) — the pure half of the plan.
    A conversation of the wrong shape is a 400 (:func:`check_conversation`)."""
    check_conversation(request)
    messages = to_messages(request.turns, tools_in_play(request))
    last = messages[-1]
    if any(b["type"] == "tool_result" for b in last["content"]):
        return messages, None
    return messages[:-1], last


def resume_text(last: dict[str, Any]) -> str | None:
    """The text to hand the CLI as its resume prompt for ``last``, a turn of tool results.

    Only when the turn is its results and then one text block, and the text comes back
    from the CLI's environment unchanged (no surrounding whitespace, no NUL, not huge).
    """
    others = [b for b in last["content"] if b["type"] != "tool_result"]
    if len(others) != 1 or others[0]["type"] != "text":
        return None
    text: str = others[0]["text"]
    if text != text.strip() or "\0" in text or len(text.encode()) > _MAX_RESUME_PROMPT:
        return None
    return text


def plan_history(request: CompletionRequest, config_dir: Path, cwd: str) -> HistoryPlan:
    """Write what the CLI needs to see the earlier turns; return how to start it.

    Raises :class:`ClawrapError` (400) for a conversation the API would refuse.
    """
    history, prompt = split_history(request)
    if not history:
        return HistoryPlan(None, prompt)
    env: dict[str, str] = {}
    if prompt is None:
        env = dict(RESUME_ENV)
        text = resume_text(history[-1])
        if text is not None:
            results = [b for b in history[-1]["content"] if b["type"] == "tool_result"]
            history = [*history[:-1], {"role": "user", "content": results}]
            env[RESUME_PROMPT] = text
    session_id = str(uuid.uuid4())
    entries = transcript_entries(
        history, session_id=session_id, cwd=cwd, model=request.model, timestamp=_now()
    )
    path = write_transcript(config_dir, cwd, session_id, entries)
    last_user = next(e["uuid"] for e in reversed(entries) if e["type"] == "user")
    return HistoryPlan(session_id, prompt, env, path, (entries[0]["uuid"], last_user))


__all__ = [
    "RESUME_ENV",
    "RESUME_PROMPT",
    "HistoryPlan",
    "plan_history",
    "project_key",
    "resume_text",
    "split_history",
    "to_content_blocks",
    "to_messages",
    "transcript_entries",
    "write_transcript",
]
