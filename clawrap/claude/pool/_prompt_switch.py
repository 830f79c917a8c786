"""Lending a warm process to a request whose system prompt it was not started with.

A process's system prompt is part of its spawn key, fixed when it starts; clients
that vary it (a plugin adds the workspace's name, a date, a file list) would each
cost a cold start (~0.3 s of CPU, more on a busy machine). The CLI replaces the
prompt of a live process on request (``set_model``'s ``system_prompt`` field, see
:func:`~clawrap.claude._sdk_adapter.set_system_prompt`), in 2-5 ms and with no
upstream call; a conversation keeps the prompt it started with, so only a warm
process with an empty conversation (an idle one) is switched. Its next upstream
request then carries the new prompt and nothing of the old one, the same request
a process started with it would send.

:func:`take_switchable` picks the idle process to switch: one whose spawn key is
the request's but for the system prompt, on the request's model when that matters;
from a key holding more idle processes than it wants warm if there is one; the
longest idle first. :func:`switch` does it, and reports a refusal as False: the
caller ends that process (it may hold either prompt) and looks further.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_options import SpawnKey, SpawnSpec
from clawrap.claude.pool._held import IdleSet
from clawrap.core._errors import ClawrapError

log = logging.getLogger("clawrap.processes")

SWITCH_TIMEOUT = 2.0  # the CLI answers in a few ms; no upstream call is made


def differs_in_prompt_only(key: SpawnKey, other: SpawnKey) -> bool:
    """Whether ``other`` is ``key`` with another system prompt."""
    return key != other and dataclasses.replace(other, system_prompt=key.system_prompt) == key


def take_switchable(
    idle: IdleSet, spec: SpawnSpec, *, any_model: bool, surplus: Callable[[SpawnKey], bool]
) -> CliProcess | None:
    """An idle process that could serve ``spec`` once its prompt is switched, taken out of
    ``idle``; None if there is none. ``any_model``: one on another model will do (the
    caller switches its model); ``surplus(key)``: ``key`` has more idle processes than
    it keeps warm, so taking one of them leaves nothing to replace."""
    found = [p for p in idle.all() if differs_in_prompt_only(spec.key, p.key)]
    if not any_model:
        found = [p for p in found if p.model == spec.model]
    if not found:
        return None
    proc = min(found, key=lambda p: (p.model != spec.model, not surplus(p.key), p.idle_since))
    idle.remove(proc)
    return proc


async def switch(proc: CliProcess, key: SpawnKey) -> bool:
    """Give ``proc`` (idle, taken out of the idle set) ``key``'s system prompt; False if the
    CLI refused or did not answer (``proc`` is then of no use: end it)."""
    try:
        with map_exceptions("run"), trio.fail_after(SWITCH_TIMEOUT):
            await proc.switch_prompt(key, answer_within=SWITCH_TIMEOUT)
    except (ClawrapError, trio.TooSlowError):
        log.warning("CLI process %s refused a system prompt switch", proc.pid, exc_info=True)
        return False
    return True


__all__ = ["SWITCH_TIMEOUT", "differs_in_prompt_only", "switch", "take_switchable"]
