"""CPU one warm Claude Code CLI process spends per turn and per conversation reset.

Run: ``python -m bench.cli_cpu [--turns 30] [--reset rewind|clear] [--env NAME=VALUE ...]``.
It starts the scripted model in-process, connects one ``ClaudeSDKClient`` with
clawrap's lean options, then times (in CPU, from /proc/<pid>/stat, Linux only) each
short turn and each reset: the ``rewind_conversation`` control request clawrap uses
(default), or ``/clear`` for comparison. Extra ``--env`` entries go to the CLI, to
compare its feature switches. Throughput on a small machine is bounded by these
figures: it is the CLI, not the server, that spends most of the CPU of a request.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from claude_agent_sdk.types import ResultMessage

from clawrap.scripted._mock_upstream import serve_mock_upstream
from clawrap.scripted._model import ScriptedModel

PROMPT = 'hello [[mock:{"tokens": 5}]]'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_result(messages: AsyncIterator[Any]) -> None:
    async for message in messages:
        if isinstance(message, ResultMessage):
            return


def user_message(text: str, message_uuid: str) -> AsyncIterator[dict[str, Any]]:
    async def one() -> AsyncIterator[dict[str, Any]]:
        yield {
            "type": "user",
            "message": {"role": "user", "content": text},
            "parent_tool_use_id": None,
            "session_id": "default",
            "uuid": message_uuid,
        }

    return one()


async def measure(extra_env: dict[str, str], turns: int, reset: str) -> tuple[float, float]:
    """Mean CPU milliseconds of one turn and of one reset."""
    model = ScriptedModel()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_mock_upstream, model)
        env = {
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "ANTHROPIC_API_KEY": "sk-scripted",
            "CLAUDE_CONFIG_DIR": tempfile.mkdtemp(prefix="clawrap-bench-"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **extra_env,
        }
        options = ClaudeAgentOptions(
            tools=[],
            setting_sources=[],
            system_prompt="You are a helpful assistant.",
            include_partial_messages=True,
            env=env,
            max_turns=1,
            thinking={"type": "disabled"},
            cwd=tempfile.mkdtemp(prefix="clawrap-bench-"),
        )
        client = ClaudeSDKClient(options)
        await client.connect()
        try:
            pid: int = client._transport._process.pid  # type: ignore[union-attr]
            messages = client.receive_messages()
            turn_cpu = reset_cpu = 0.0
            for i in range(turns + 3):  # the first 3 warm the process up
                first = str(uuid.uuid4())
                before = cpu_seconds(pid)
                await client.query(user_message(PROMPT, first))
                await until_result(messages)
                middle = cpu_seconds(pid)
                if reset == "clear":
                    await client.query("/clear")
                    await until_result(messages)
                else:
                    request = {
                        "subtype": "rewind_conversation",
                        "target_message_uuid": first,
                        "last_seen_user_message_uuid": first,
                    }
                    response = await client._query._send_control_request(request)  # type: ignore[union-attr]
                    assert response.get("rewound") is True, response
                after = cpu_seconds(pid)
                if i >= 3:
                    turn_cpu += middle - before
                    reset_cpu += after - middle
        finally:
            with trio.CancelScope(shield=True):
                await client.disconnect()
        nursery.cancel_scope.cancel()
    return 1000 * turn_cpu / turns, 1000 * reset_cpu / turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--reset", choices=("rewind", "clear"), default="rewind")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    turn, reset = trio.run(measure, extra, args.turns, args.reset)
    print(
        f"CLI CPU per turn {turn:.1f} ms, per {args.reset} reset {reset:.1f} ms, {args.turns} turns"
    )


if __name__ == "__main__":
    main()
