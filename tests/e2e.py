"""End-to-end harness: clawrap on 127.0.0.1 port 0, the real SDK and CLI, the scripted model.

The path users take: a real client library -> clawrap (hypercorn, the dialects, the Claude
backend and its warm pool) -> claude-agent-sdk -> the bundled CLI -> the scripted model on
loopback. Only the model is simulated.

:func:`clawrap_server` starts all of it in the test's nursery and yields a :class:`Clawrap`.
On teardown it shuts the server down and asserts that no CLI process is left. Settings can be
changed per test with ``@pytest.mark.clawrap(api_key="k", pool_size=0, ...)``.

The scripted model is served behind a thin ASGI wrapper that counts the ``/v1/messages``
responses still in progress, so a test can prove that a dropped client's upstream stream was
closed (the CLI stopped generating) rather than left to run to the end.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import openai
import pytest
import trio
from procs import claude_children

from clawrap.claude._backend import ClaudeBackend
from clawrap.cli._server import serve
from clawrap.core._config import Settings
from clawrap.scripted._mock_upstream import MockUpstreamApp
from clawrap.scripted._model import RecordedRequest, ScriptedModel
from tests.pool_helpers import pids

T = TypeVar("T")

# Bounds for hangs only; a CLI cold start is ~0.3 s and a scripted reply a few ms.
TEST_LIMIT = 60.0
CLIENT_TIMEOUT = 45.0  # the client's own timeout: a thread cannot be cancelled by trio
SHUTDOWN_LIMIT = 30.0
POLL = 0.05

# claude-agent-sdk's reader (Query._read_messages) breaks out of the transport's message
# generator when a message arrives after close() began, without closing it; trio warns when
# that generator is collected. The SDK's own, harmless once the process is gone (which every
# test asserts). Nothing else is ignored.
SDK_READER_LEFT_OPEN = pytest.mark.filterwarnings(
    r"ignore:Async generator 'claude_agent_sdk\._internal\.transport\.subprocess_cli\."
    r"SubprocessCLITransport\._read_messages_impl' was garbage collected:ResourceWarning"
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _CountingApp:
    """The scripted model's ASGI app, counting ``POST /v1/messages`` responses in progress."""

    def __init__(self, model: ScriptedModel) -> None:
        self.inner = MockUpstreamApp(model)
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/v1/messages":
            await self.inner(scope, receive, send)
            return
        self.open += 1
        try:
            await self.inner(scope, receive, send)
        finally:
            self.open -= 1


@dataclass
class Upstream:
    """The scripted model on loopback, as the CLI sees it."""

    model: ScriptedModel
    url: str
    app: _CountingApp

    @property
    def open_responses(self) -> int:
        """Messages API responses still being written (a stream not yet ended or cut)."""
        return self.app.open


async def start_upstream(nursery: trio.Nursery) -> Upstream:
    """Serve a fresh scripted model on 127.0.0.1 port 0 until ``nursery`` is cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    model = ScriptedModel()
    app = _CountingApp(model)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5
    asgi: Any = app
    bound: list[str] = await nursery.start(partial(serve, asgi, config, mode="asgi"))
    return Upstream(model, bound[0], app)


def cli_env(upstream_url: str, config_dir: Path) -> dict[str, str]:
    """The CLI's environment, for conftest's ``claude_env`` too: the scripted model only."""
    config_dir.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": upstream_url,
        "ANTHROPIC_API_KEY": "sk-scripted",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_UPDATES": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_INSTALLATION_CHECKS": "1",
    }


@dataclass
class Clawrap:
    """A running clawrap and the scripted model behind it."""

    url: str  # http://127.0.0.1:<port>, no /v1
    upstream: Upstream
    backend: ClaudeBackend
    settings: Settings
    stop: trio.Event = field(default_factory=trio.Event)
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def model(self) -> ScriptedModel:
        return self.upstream.model

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        """A sync OpenAI client that validates every response against its own models."""
        kwargs.setdefault("api_key", "unused")
        return openai.OpenAI(
            base_url=self.url + "/v1",
            max_retries=0,
            timeout=CLIENT_TIMEOUT,
            _strict_response_validation=True,
            **kwargs,
        )

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        """A sync Anthropic client that validates every response against its own models."""
        kwargs.setdefault("api_key", "unused")
        return anthropic.Anthropic(
            base_url=self.url,
            max_retries=0,
            timeout=CLIENT_TIMEOUT,
            _strict_response_validation=True,
            **kwargs,
        )

    def requests(self, marker: str) -> list[RecordedRequest]:
        """Upstream requests whose messages mention ``marker``."""
        return [r for r in self.model.requests if marker in r.text]

    def pool_status(self) -> dict[str, Any]:
        return self.backend.status()

    def stray_cli_pids(self) -> list[int]:
        """CLI processes alive that the pool does not hold as its own (idle or busy)."""
        return sorted(set(claude_children()) - pids(self.backend.pool))

    async def shutdown(self) -> None:
        """Stop the server (idempotent) and wait until it has stopped."""
        self.stop.set()
        with trio.fail_after(SHUTDOWN_LIMIT):
            await self.stopped.wait()


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking client call in a worker thread (clients bound themselves with a timeout)."""
    return await trio.to_thread.run_sync(fn)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds; bound the wait with ``trio.fail_after``.

    For state with no event to wait on: process tables, another loop's counters.
    """
    while not condition():  # noqa: ASYNC110
        await trio.sleep(POLL)


def sse_data(lines: list[str]) -> list[str]:
    """The ``data:`` payloads of an SSE body's lines, in order."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clawrap(**settings): Settings fields for the clawrap_server fixture"
    )


@asynccontextmanager
async def serving_claude(
    nursery: trio.Nursery,
    tmp_path: Path,
    upstream: Upstream,
    settings: Settings,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Clawrap]:
    """clawrap with ``settings`` serving the Claude backend against ``upstream``.

    The CLI's config goes in ``tmp_path/claude``; ``env`` is laid over the CLI's
    environment. On exit the server shuts down and no CLI process may be left.
    """
    stop, stopped = trio.Event(), trio.Event()
    environment = cli_env(upstream.url, tmp_path / "claude") | (env or {})
    backend = ClaudeBackend(settings, cli_env=environment)

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as pool_nursery:
                await backend.start(pool_nursery)
                await serve(
                    settings,
                    backend=backend,
                    shutdown_trigger=stop.wait,
                    out=None,
                    task_status=task_status,
                )
        finally:
            stopped.set()

    with trio.fail_after(TEST_LIMIT):
        [url] = await nursery.start(run)
    server = Clawrap(url, upstream, backend, settings, stop=stop, stopped=stopped)
    try:
        yield server
    finally:
        await server.shutdown()
        assert claude_children() == []


@pytest.fixture
async def clawrap_server(
    nursery: trio.Nursery, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Clawrap]:
    """clawrap serving the Claude backend (one warm process) against a fresh scripted model."""
    overrides: dict[str, Any] = {}
    marker = request.node.get_closest_marker("clawrap")
    if marker is not None:
        overrides = dict(marker.kwargs)
    settings = Settings(
        port=0,
        pool_size=overrides.pop("pool_size", 1),
        upstream_retries=overrides.pop("upstream_retries", 0),
        # Running requests at teardown end after as long as the old shutdown grace.
        drain_seconds=overrides.pop("drain_seconds", 5.0),
        data_dir=tmp_path / "data",
        **overrides,
    )
    with trio.fail_after(TEST_LIMIT):
        upstream = await start_upstream(nursery)
    try:
        async with serving_claude(nursery, tmp_path, upstream, settings) as server:
            yield server
    finally:
        # Collect now, so an SDK generator left unfinished is reported by the test that left it.
        gc.collect()


__all__ = [
    "SDK_READER_LEFT_OPEN",
    "TEST_LIMIT",
    "Clawrap",
    "Upstream",
    "clawrap_server",
    "cli_env",
    "in_thread",
    "serving_claude",
    "sse_data",
    "start_upstream",
    "wait_until",
]
