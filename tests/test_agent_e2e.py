"""Agent mode end to end: openai-python -> clawrap -> SDK -> the CLI's own tools -> scripted model.

The scripted model answers with tool_use for the CLI's Read and Bash tools; the real CLI runs
them inside the agent root and the client watches each step arrive as a note in
``reasoning_content``. A working directory outside every root is refused, and a client that
drops mid-Bash leaves no process of its run behind.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio
from e2e import TEST_LIMIT, Clawrap, in_thread, serving_claude, start_upstream, wait_until
from openai.types.chat import ChatCompletionChunk
from procs import claude_children, cmdline

from clawrap.claude.pool._process_tree import descendants, is_alive
from clawrap.core._config import Settings
from clawrap.scripted._model import Reply, ToolUse

pytestmark = pytest.mark.e2e

# The bound: no process of a dropped run may remain this long after the drop.
DROP_LIMIT = 2.0
# Two sleeps in a script, so the run's tree has a shell, a background child and a foreground one.
SLEEPER = "sleep 300 & sleep 301\nwait\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The agent root: a project with a file to read and a script that sleeps."""
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    (root / "project" / "notes.txt").write_text("AGENT-NOTES-CONTENT\nsecond line\n")
    (root / "project" / "sleeper.sh").write_text(SLEEPER)
    return root.resolve()


@pytest.fixture
async def agent_server(nursery: trio.Nursery, tmp_path: Path, root: Path) -> AsyncIterator[Clawrap]:
    """clawrap with agent mode on (``root``; approval rules allowed) and no warm processes."""
    settings = Settings(
        port=0,
        pool_size=0,
        upstream_retries=0,
        data_dir=tmp_path / "data",
        agent_roots=(str(root),),
        agent_allow_bypass=True,
    )
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    async with serving_claude(nursery, tmp_path, upstream, settings) as server:
        yield server


def reasoning_of(chunk: ChatCompletionChunk) -> str:
    if not chunk.choices:
        return ""
    extra = chunk.choices[0].delta.model_extra or {}
    value = extra.get("reasoning_content")
    return value if isinstance(value, str) else ""


def content_of(chunk: ChatCompletionChunk) -> str:
    return (chunk.choices[0].delta.content or "") if chunk.choices else ""


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def tool_results(server: Clawrap, marker: str) -> list[str]:
    """The text of every tool_result the CLI sent upstream in the run marked ``marker``."""
    found: list[str] = []
    for request in server.requests(marker):
        for message in request.body.get("messages", []):
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, list):
                        inner = "".join(b.get("text", "") for b in inner if isinstance(b, dict))
                    found.append(str(inner))
    return found


async def test_read_and_bash_run_inside_the_root_and_the_client_sees_both_steps(
    agent_server: Clawrap, root: Path
) -> None:
    project = root / "project"
    agent_server.model.when(
        "AGENT-READ",
        Reply(
            text="Let me look.", tool_uses=[ToolUse("Read", {"file_path": f"{project}/notes.txt"})]
        ),
        Reply(tool_uses=[ToolUse("Bash", {"command": "pwd && ls", "description": "where"})]),
        Reply(text="All done."),
    )

    def stream() -> list[ChatCompletionChunk]:
        with agent_server.openai() as client:
            return list(
                client.chat.completions.create(
                    model="sonnet",
                    messages=ask("AGENT-READ the notes"),
                    stream=True,
                    extra_headers={"X-Claude-Cwd": str(project)},
                    extra_body={"enable_tools": True},
                )
            )

    with trio.fail_after(TEST_LIMIT):
        chunks = await in_thread(stream)
    notes = "".join(reasoning_of(c) for c in chunks).splitlines()
    assert notes == [
        "[tool: Read] notes.txt",
        "[result: Read] 3 lines",
        "[tool: Bash] pwd && ls",
        f"[result: Bash] {project} (+2 more lines)",
    ]
    assert "".join(content_of(c) for c in chunks) == "Let me look.\n\nAll done."
    assert chunks[-1].choices[0].finish_reason == "stop"
    # What the tools really did, as the model was told: the file's text, the root's listing.
    read, listing = tool_results(agent_server, "AGENT-READ")[-2:]
    assert "AGENT-NOTES-CONTENT" in read
    assert listing.split("\n") == [str(project), "notes.txt", "sleeper.sh"]


@pytest.mark.parametrize("where", ["symlink", "dotdot", "elsewhere"])
async def test_a_cwd_outside_every_root_is_refused_before_anything_runs(
    agent_server: Clawrap, root: Path, tmp_path: Path, where: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "project" / "escape").symlink_to(outside)
    cwd = {
        "symlink": str(root / "project" / "escape"),
        "dotdot": f"{root}/project/../../outside",
        "elsewhere": str(outside),
    }[where]

    def ask_for_it() -> None:
        with agent_server.openai() as client:
            client.chat.completions.create(
                model="sonnet", messages=ask("AGENT-ESCAPE"), extra_headers={"X-Claude-Cwd": cwd}
            )

    with trio.fail_after(TEST_LIMIT), pytest.raises(openai.BadRequestError) as caught:
        await in_thread(ask_for_it)
    assert caught.value.status_code == 400
    assert "not inside" in caught.value.message
    assert agent_server.requests("AGENT-ESCAPE") == []


def sleeping(pids: list[int]) -> bool:
    return any(cmdline(pid)[:2] in (["sleep", "300"], ["sleep", "301"]) for pid in pids)


async def test_a_client_dropped_during_a_bash_run_leaves_no_process_of_that_run(
    agent_server: Clawrap, root: Path
) -> None:
    project = root / "project"
    agent_server.model.when(
        "AGENT-SLEEP",
        Reply(tool_uses=[ToolUse("Bash", {"command": "sh sleeper.sh", "description": "wait"})]),
        Reply(text="never reached"),
    )
    run_pids: list[int] = []

    async def snapshot_when_sleeping() -> None:
        with trio.fail_after(TEST_LIMIT):
            while not run_pids or not sleeping(run_pids):
                [cli] = [p.pid for p in agent_server.backend.pool.dedicated.active] or [0]
                run_pids[:] = [cli, *descendants(cli)] if cli else []
                await trio.sleep(0.05)

    def read_until_bash_runs_then_leave() -> str:
        with agent_server.openai() as client:
            stream = client.chat.completions.create(
                model="sonnet",
                messages=ask("AGENT-SLEEP"),
                stream=True,
                extra_headers={
                    "X-Claude-Cwd": str(project),
                    # Running a script needs an approval rule (the operator allowed rules).
                    "X-Claude-Allowed-Tools": "Bash(sh:*)",
                },
            )
            seen = ""
            for chunk in stream:
                seen += reasoning_of(chunk)
                if "[tool: Bash]" in seen:
                    break
            trio.from_thread.run(snapshot_when_sleeping)
            stream.close()
            return seen

    with trio.fail_after(TEST_LIMIT):
        seen = await in_thread(read_until_bash_runs_then_leave)
    assert "[tool: Bash] sh sleeper.sh" in seen
    assert len(run_pids) >= 4  # the CLI, its shell, the script's shell, two sleeps
    with trio.fail_after(DROP_LIMIT):
        await wait_until(lambda: not any(is_alive(pid) for pid in run_pids))
    assert claude_children() == []
    assert not sleeping([p for p in descendants(os.getpid())])


async def test_the_anthropic_client_sees_the_steps_as_notes_in_the_text(
    agent_server: Clawrap, root: Path
) -> None:
    project = root / "project"
    agent_server.model.when(
        "AGENT-ANTHROPIC",
        Reply(tool_uses=[ToolUse("Read", {"file_path": f"{project}/notes.txt"})]),
        Reply(text="Read it."),
    )

    def stream() -> str:
        with (
            agent_server.anthropic() as client,
            client.messages.stream(
                model="sonnet",
                max_tokens=256,
                messages=ask("AGENT-ANTHROPIC"),
                extra_headers={"X-Claude-Cwd": str(project)},
                extra_body={"claude": {"enable_tools": True, "max_turns": 4}},
            ) as events,
        ):
            return "".join(events.text_stream)

    with trio.fail_after(TEST_LIMIT):
        text = await in_thread(stream)
    assert "[Read: notes.txt]" in text
    assert "[Read result: 3 lines]" in text
    assert text.endswith("Read it.")


async def test_a_session_without_a_cwd_keeps_its_own_directory_until_it_is_deleted(
    agent_server: Clawrap,
) -> None:
    session = "agent-dir-session"
    agent_server.model.when(
        "SESSION-ONE",
        Reply(tool_uses=[ToolUse("Bash", {"command": "echo KEPT-TEXT > kept.txt"})]),
        Reply(text="Wrote it."),
    )

    def turn(messages: list[Any], allowed: str) -> str:
        with agent_server.openai() as client:
            reply = client.chat.completions.create(
                model="sonnet",
                messages=messages,
                extra_headers={"X-Session-Id": session, "X-Claude-Allowed-Tools": allowed},
                extra_body={"enable_tools": True},
            )
            return reply.choices[0].message.content or ""

    first = ask("SESSION-ONE write a file")
    with trio.fail_after(TEST_LIMIT):
        said = await in_thread(lambda: turn(first, "Bash(echo:*)"))
    where = agent_server.backend.agent.session_dirs.path(session)
    assert where is not None
    assert (where / "kept.txt").read_text() == "KEPT-TEXT\n"
    assert where.stat().st_mode & 0o777 == 0o700

    agent_server.model.when(
        "SESSION-TWO",
        Reply(tool_uses=[ToolUse("Read", {"file_path": f"{where}/kept.txt"})]),
        Reply(text="Read it."),
    )
    second = [*first, {"role": "assistant", "content": said}, *ask("SESSION-TWO read it")]
    with trio.fail_after(TEST_LIMIT):
        await in_thread(lambda: turn(second, "Read"))
    assert "KEPT-TEXT" in tool_results(agent_server, "SESSION-TWO")[-1]
    assert agent_server.backend.agent.session_dirs.path(session) == where

    def delete() -> int:
        url = f"{agent_server.url}/v1/sessions/{session}"
        return httpx.delete(url, timeout=TEST_LIMIT).status_code

    with trio.fail_after(TEST_LIMIT):
        assert await in_thread(delete) == 200
    assert not where.exists()
    assert agent_server.backend.agent.session_dirs.path(session) is None


async def test_bypass_permissions_runs_a_tool_without_an_approval_rule(
    agent_server: Clawrap, root: Path
) -> None:
    project = root / "project"
    agent_server.model.when(
        "AGENT-BYPASS",
        Reply(tool_uses=[ToolUse("Bash", {"command": "touch bypassed.txt"})]),
        Reply(text="Done."),
    )

    def run() -> str:
        with agent_server.openai() as client:
            reply = client.chat.completions.create(
                model="sonnet",
                messages=ask("AGENT-BYPASS"),
                extra_headers={
                    "X-Claude-Cwd": str(project),
                    "X-Claude-Permission-Mode": "bypassPermissions",
                },
            )
            return reply.choices[0].message.content or ""

    with trio.fail_after(TEST_LIMIT):
        said = await in_thread(run)
    assert said.endswith("Done.")
    assert (project / "bypassed.txt").exists()
