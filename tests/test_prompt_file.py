"""A system prompt too long for one command-line argument is handed over in a private file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions

from clawrap.claude._prompt_file import ARGUMENT_LIMIT, prompt_in_file

LONG = "é" * ARGUMENT_LIMIT  # 2 bytes each in UTF-8: over the limit in bytes


def test_a_short_prompt_stays_on_the_command_line() -> None:
    options = ClaudeAgentOptions(system_prompt="be terse")
    with prompt_in_file(options) as given:
        assert given is options


def test_a_long_prompt_is_read_from_a_private_file_removed_afterwards() -> None:
    with prompt_in_file(ClaudeAgentOptions(system_prompt=LONG)) as given:
        prompt: dict[str, str] = given.system_prompt  # type: ignore[assignment]
        assert prompt["type"] == "file"
        path = Path(prompt["path"])
        assert path.read_text(encoding="utf-8") == LONG
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.parent.exists()


def test_a_long_text_appended_to_the_agent_prompt_goes_through_its_own_file() -> None:
    options = ClaudeAgentOptions(
        system_prompt={"type": "preset", "preset": "claude_code", "append": LONG}
    )
    with prompt_in_file(options) as given:
        assert given.system_prompt == {"type": "preset", "preset": "claude_code"}
        path = given.extra_args["append-system-prompt-file"]
        assert path is not None and Path(path).read_text(encoding="utf-8") == LONG
    assert not os.path.exists(path)
