"""Node.js clients end to end: openai-node and @anthropic-ai/sdk against clawrap and the real CLI.

The drivers in tests/node/ stream one completion with the SDK's own helper
(``chat.completions.stream()``, ``messages.stream()``) and print, as JSON, what the client
made of it; these tests assert on that. The packages are pinned in tests/node/package.json
and installed once per session with ``npm ci`` (from the committed lock file) into
tests/node/node_modules. Without ``node`` and ``npm`` the tests are skipped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from e2e import SDK_READER_LEFT_OPEN, TEST_LIMIT, Clawrap

from clawrap.scripted._model import Reply, ToolUse

pytestmark = [pytest.mark.e2e, pytest.mark.node, SDK_READER_LEFT_OPEN]

NODE_DIR = Path(__file__).parent / "node"
STAMP = NODE_DIR / "node_modules" / ".installed-lock-sha256"
INSTALL_LIMIT = 300  # seconds; npm fetches a few MB from the registry the first time


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """tests/node with its pinned packages installed (skips when Node.js is absent)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node.js client tests")
    lock = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            timeout=INSTALL_LIMIT,
            capture_output=True,
        )
        STAMP.write_text(lock)
    return NODE_DIR


async def run_driver(directory: Path, script: str, *args: str) -> dict[str, Any]:
    """Run a driver script and return the JSON it printed (it fails the test if node fails)."""
    node = shutil.which("node")
    assert node is not None
    with trio.fail_after(TEST_LIMIT):
        done = await trio.run_process(
            [node, script, *args], cwd=directory, capture_stdout=True, capture_stderr=True
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


PARIS = ToolUse("get_weather", {"city": "Paris", "unit": "C"}, "toolu_node_paris")
ROME = ToolUse("get_weather", {"city": "Rome"}, "toolu_node_rome")


async def test_openai_node_streams_text_through_chat_completion_stream(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    reply = Reply(tokens=20)
    clawrap_server.model.when("NODETEXT", reply)
    out = await run_driver(
        node_clients, "openai_stream.mjs", clawrap_server.url + "/v1", "NODETEXT"
    )
    assert out["deltas"] == reply.text_deltas()
    assert out["content"] == "".join(reply.text_deltas())
    assert out["roles"] == 1
    assert out["finish_reason"] == "stop"
    assert out["tool_calls"] == []


async def test_openai_node_assembles_two_parallel_tool_calls(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    clawrap_server.model.when("NODECALLS", Reply(tool_uses=[PARIS, ROME]))
    out = await run_driver(
        node_clients, "openai_stream.mjs", clawrap_server.url + "/v1", "NODECALLS", "tools"
    )
    expected = [
        {"id": u.id, "type": "function", "name": u.name, "arguments": u.input}
        for u in (PARIS, ROME)
    ]
    assert out["tool_calls"] == expected
    assert out["arguments_done"] == [
        {"index": i, "name": u.name, "arguments": u.input} for i, u in enumerate((PARIS, ROME))
    ]
    assert out["finish_reason"] == "tool_calls"


async def test_anthropic_node_streams_text_to_a_final_message(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    reply = Reply(tokens=15, input_tokens=40, output_tokens=15)
    clawrap_server.model.when("NODEMSG", reply)
    out = await run_driver(node_clients, "anthropic_stream.mjs", clawrap_server.url, "NODEMSG")
    assert out["texts"] == reply.text_deltas()
    content = [{k: v for k, v in b.items() if v is not None} for b in out["content"]]
    assert content == [{"type": "text", "text": "".join(reply.text_deltas())}]
    assert out["stop_reason"] == "end_turn"
    assert out["usage"]["output_tokens"] == 15
    assert out["events"][0] == "message_start"
    assert out["events"][-1] == "message_stop"


async def test_anthropic_node_assembles_a_tool_use_block(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    call = ToolUse("get_weather", {"city": "Oslo", "days": 2}, "toolu_node_oslo")
    clawrap_server.model.when("NODETOOL", Reply(text="Checking.", tool_uses=[call]))
    out = await run_driver(
        node_clients, "anthropic_stream.mjs", clawrap_server.url, "NODETOOL", "tools"
    )
    assert [b for b in out["content"] if b["type"] == "tool_use"] == [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
    ]
    assert out["stop_reason"] == "tool_use"


async def test_openai_node_response_stream_accumulates_text(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    reply = Reply(tokens=12)
    clawrap_server.model.when("NODERESP", reply)
    out = await run_driver(
        node_clients, "openai_responses.mjs", clawrap_server.url + "/v1", "NODERESP"
    )
    assert out["deltas"] == reply.text_deltas()
    assert out["output_text"] == "".join(reply.text_deltas())
    assert out["status"] == "completed"
    assert out["types"][0] == "response.created"
    assert out["types"][-1] == "response.completed"


async def test_openai_node_response_stream_accumulates_a_function_call(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    clawrap_server.model.when("NODERESPCALL", Reply(text="Looking.", tool_uses=[PARIS]))
    out = await run_driver(
        node_clients,
        "openai_responses.mjs",
        clawrap_server.url + "/v1",
        "NODERESPCALL",
        "tools",
    )
    assert out["calls"] == [{"call_id": PARIS.id, "name": PARIS.name, "arguments": PARIS.input}]
    assert out["arguments_done"] == [PARIS.input]
    assert out["output_text"] == "Looking."


async def test_ai_sdk_openai_provider_runs_a_tool_loop_until_stop_when(
    clawrap_server: Clawrap, node_clients: Path
) -> None:
    call = ToolUse("get_weather", {"city": "Lyon"}, "toolu_ai_lyon")
    clawrap_server.model.when("AISDKRESP", Reply(text="Let me check.", tool_uses=[call]))
    clawrap_server.model.when("cloudy in Lyon", Reply(text="Lyon is cloudy."))
    out = await run_driver(
        node_clients, "ai_sdk_responses.mjs", clawrap_server.url + "/v1", "AISDKRESP weather?"
    )
    assert out["calls"] == ["Lyon"]
    assert out["steps"] == 2
    assert out["text"].endswith("Lyon is cloudy.")
    assert out["finish_reason"] == "stop"
    # The second step referenced the stored text item and resent the call and its result.
    second = clawrap_server.requests("cloudy in Lyon")[-1]
    assert "Let me check." in json.dumps(second.body)
