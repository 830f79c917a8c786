"""Drive one CLI turn: send the message, relay SDK messages as internal events, honour halt.

Plain completions and agent runs drive a turn the same way, so they share this
module. :func:`drive_turn` sends the user message (or lets a resumed
conversation carry on by itself) and relays the turn; :func:`pump_turn` is its
loop: translate each message, forward content until ``halt`` (after which only
the usage is wanted), interrupt when the CLI would go on past a ``max_tokens``
stop, and cut the wait short once the model has finished asking for client tools
(the deferring hook ends the run at once; tools that wait for the client's results
end the relay at the model's message stop, the CLI run left open). A turn whose
result is a failure still reports its usage, just before the error.

On ``halt`` the turn is interrupted and given
:data:`~clawrap.core._backend.HALT_GRACE` to report its usage; then the relay
stops, the process left mid-turn for its owner to reset or end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from clawrap.claude._cli_process import CliProcess
from clawrap.claude._sdk_errors import map_exceptions
from clawrap.claude._sdk_events import TurnTranslator
from clawrap.core._backend import HALT_GRACE, EventSink, HaltSignal
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, Finished

log = logging.getLogger("clawrap.backend")

TOOL_GRACE = 10.0  # after the model asked for client tools, how long until the run ends


async def drive_turn(
    proc: CliProcess,
    content: str | list[Any] | None,
    translator: TurnTranslator,
    events: EventSink,
    halt: HaltSignal,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Send ``content`` to ``proc`` and relay the turn it starts into ``events``.

    ``content`` None: the resumed conversation ends on tool results and the CLI
    carries on by itself. Returns when the turn is done (``translator.done``), or
    was halted, or ended in client tool calls the CLI never closed or that wait
    for the client's results (then ``Finished("tool_calls")`` is sent). Raises
    ClawrapError, unwrapped.
    """
    if content is None:
        proc.in_turn = True
    else:
        with map_exceptions("run"):
            await proc.send(content)
    error: ClawrapError | None = None
    reader = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_halt, halt, proc, reader)
        try:
            with reader:
                await pump_turn(proc, translator, events, halt, reader, on_event)
        except ClawrapError as exc:
            error = exc  # raised outside the nursery, so callers see it unwrapped
        finally:
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    if translator.stopped_for_tools and not translator.done and not halt.is_set():
        # The calls wait in the live process for the client's results.
        await events.send(translator.message_usage())
        await events.send(Finished("tool_calls"))
        return
    if not translator.done and translator.tool_calls and not halt.is_set():
        # The model asked for client tools but the CLI never closed the turn.
        await events.send(Finished("tool_calls"))


async def _watch_halt(halt: HaltSignal, proc: CliProcess, reader: trio.CancelScope) -> None:
    """On ``halt``: give the relay ``HALT_GRACE`` more, and interrupt the turn."""
    await halt.wait()
    reader.deadline = min(reader.deadline, trio.current_time() + HALT_GRACE)
    if proc.in_turn:
        with trio.move_on_after(HALT_GRACE):
            try:
                with map_exceptions("run"):
                    await proc.interrupt()
            except ClawrapError:
                # The relay notices a dead process itself; halting only wanted it to stop.
                log.debug("interrupt after halt failed", exc_info=True)


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
        if translator.done or translator.stopped_for_tools:
            # Waiting tools: the turn goes on once the client's next request brings results.
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


__all__ = ["TOOL_GRACE", "drive_turn", "pump_turn"]
