"""Shared fixtures: the scripted model on loopback, and the environment that keeps the CLI on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from clawrap.scripted._mock_upstream import serve_mock_upstream
from clawrap.scripted._model import ScriptedModel

pytest_plugins = [
    "e2e",  # the clawrap_server fixture of the end-to-end tests
    "storage_fixtures",  # the stores on SQLite and PostgreSQL
]


@dataclass(frozen=True, slots=True)
class RunningScriptedModel:
    """A scripted model served on 127.0.0.1 for the length of one test."""

    model: ScriptedModel
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def scripted_model(nursery: trio.Nursery) -> AsyncIterator[RunningScriptedModel]:
    model = ScriptedModel()
    cancel_scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with cancel_scope:
            await serve_mock_upstream(model, task_status=task_status)

    port: int = await nursery.start(run)
    try:
        yield RunningScriptedModel(model, port)
    finally:
        cancel_scope.cancel()


@pytest.fixture
def claude_env(scripted_model: RunningScriptedModel, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: only the scripted model, a throwaway config dir, nothing else."""
    # Imported here: e2e is loaded as a plugin below, after this module, to get its asserts
    # rewritten.
    from e2e import cli_env

    return cli_env(scripted_model.url, tmp_path / "claude-config")
