"""Relay one CLI turn: SDK messages in, internal events out, until the turn is done.

Plain completions and agent runs read a turn the same way, so they share this
loop: translate each message, forward content until ``halt`` (after which only
the usage is wanted), interrupt when the CLI would go on past a ``max_tokens``
stop, and cut the wait short once the model has finished asking for client tools
(the deferring hook ends the run at once). A turn whose result is a failure
still reports its usage, just before the error.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_events import TurnTranslator
from clawrap.core._backend import EventSink, HaltSignal
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event

TOOL_GRACE = 10.0  # after the model asked for client tools, how long until the run ends


async def pump_turn(
    proc: CliProcess,
    translator: TurnTranslator,
    events: EventSink,
    halt: HaltSignal,
    reader: trio.CancelScope,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Forward the turn's events; ``on_event`` sees each one the client is sent."""
    tool_deadline_set = interrupted = False
    while True:
        with map_exceptions("run"):
            message = await proc.receive()
        if message is None:
            raise translator.unfinished_error()
        try:
            out = translator.feed(message)
        except ClawrapError:
            if translator.done:
                # A run that failed at its end (e.g. over its budget) still used and cost
                # something: the usage goes out before the error, for the accounting.
                await events.send(translator.usage_event())
            raise
        if halt.is_set():
            # Content after halt is discarded by the caller; only usage matters.
            if translator.done:
                await events.send(translator.usage_event())
                return
            continue
        for event in out:
            await events.send(event)
            if on_event is not None:
                on_event(event)
        if translator.done:
            return
        if translator.needs_interrupt and not interrupted:
            interrupted = True
            with map_exceptions("run"):
                await proc.interrupt()
        if (
            not tool_deadline_set
            and translator.tool_calls
            and translator.upstream_stop_reason == "tool_use"
        ):
            tool_deadline_set = True
            reader.deadline = min(reader.deadline, trio.current_time() + TOOL_GRACE)


__all__ = ["TOOL_GRACE", "pump_turn"]
