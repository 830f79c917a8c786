"""Long system prompts reach the CLI in a file, not on its command line.

The SDK passes a plain-string system prompt as one command-line argument, and
Linux refuses any single argument over 128 KiB (``E2BIG`` at exec): an IDE
agent's system prompt, or a large ``json_schema`` folded into it, would make
the CLI impossible to start. The CLI also reads its prompt from a file
(``--system-prompt-file``, and ``--append-system-prompt-file`` on top of its
own agent prompt). It reads that file once, while it starts (measured: a
process whose file was removed right after start-up kept sending the prompt
through later turns and conversation rewinds), so the file lives only for the
start: private to this user, in a private directory, removed as soon as the
process has answered the SDK's initialize, or failed to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions

# Prompts longer than this (UTF-8 bytes) go through a file; well under the kernel's
# 128 KiB per argument, so the flag name and any escaping never tip one over.
ARGUMENT_LIMIT = 64 * 1024


def _too_long(text: str) -> bool:
    # Cheap test first: a str of fewer than limit/4 characters cannot reach the limit.
    return len(text) * 4 > ARGUMENT_LIMIT and len(text.encode("utf-8")) > ARGUMENT_LIMIT


@contextlib.contextmanager
def prompt_in_file(options: ClaudeAgentOptions) -> Iterator[ClaudeAgentOptions]:
    """``options``, with a system prompt too long for the command line moved into a file.

    The file exists for the ``with`` block only: spawn the CLI and wait for its
    start inside it.
    """
    prompt: Any = options.system_prompt
    text: str | None = None
    append = False
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, dict) and prompt.get("type") == "preset":
        text, append = prompt.get("append"), True
    if text is None or not _too_long(text):
        yield options
        return
    directory = tempfile.mkdtemp(prefix="clawrap-prompt-")  # mode 0700
    try:
        path = os.path.join(directory, "system-prompt.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        if append:
            preset: Any = {k: v for k, v in prompt.items() if k != "append"}
            extra = dict(options.extra_args) | {"append-system-prompt-file": path}
            yield replace(options, system_prompt=preset, extra_args=extra)
        else:
            yield replace(options, system_prompt={"type": "file", "path": path})
    finally:
        shutil.rmtree(directory, ignore_errors=True)


__all__ = ["ARGUMENT_LIMIT", "prompt_in_file"]
