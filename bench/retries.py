"""Who should retry upstream overloads: the CLI or clawrap? Latency and accounting, both ways.

Run: ``python -m bench.retries [--overloads 2] [--retries 2] [--rounds 3]``.
The scripted model (in-process) answers each round's first ``--overloads`` calls
with 529 and then a 5-token reply. Each mode gets ``--retries`` retries:

- ``cli``: the CLI retries (``CLAUDE_CODE_MAX_RETRIES``), clawrap runs once;
- ``clawrap``: the CLI never retries, clawrap's retry runner does (backoff with
  full jitter, base 0.5 s).

It prints, per mode, the median time to the answer, the upstream calls made,
whether the client got the answer, and the usage and cost the SDK reported (what
clawrap would account). A 401 round shows how many calls an invalid key costs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile

import trio

from clawrap.claude._backend import open_claude_backend
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._events import Event, TextDelta, Usage
from clawrap.core._request import CompletionRequest, TextPart, Turn
from clawrap.http._upstream_retry import UpstreamRetries
from clawrap.scripted._mock_upstream import serve_mock_upstream
from clawrap.scripted._model import Reply, ScriptedModel

from ._stack import offline_env


async def one(
    model: ScriptedModel,
    port: int,
    mode: str,
    overloads: int,
    retries: int,
    status: int,
    marker: str,
) -> tuple[float, int, bool, Usage | None]:
    failing = Reply(status=status, error_type="overloaded_error", message="Overloaded")
    model.when(marker, *([failing] * overloads), Reply(tokens=5))
    settings = Settings(pool_size=2, upstream_retries=retries if mode == "clawrap" else 0)
    with tempfile.TemporaryDirectory(prefix="bench-retries-") as config:
        env = offline_env(f"http://127.0.0.1:{port}", config)
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries if mode == "cli" else 0)
        request = CompletionRequest("sonnet", "sonnet", (Turn("user", (TextPart(marker),)),))
        async with open_claude_backend(settings, cli_env=env) as backend:
            send, receive = trio.open_memory_channel[Event](math.inf)
            runner = UpstreamRetries(settings)
            with trio.fail_after(120):
                # Warm processes in both modes: time retries only.
                await backend.pool.wait_for(
                    lambda: backend.pool.status()["warm"] >= settings.pool_size
                )
            before = len(model.requests)
            started = trio.current_time()
            answered = True
            try:
                with trio.fail_after(120):
                    await runner.run(backend, request, send, trio.Event())
            except ClawrapError:
                answered = False
            elapsed = trio.current_time() - started
            send.close()
            usage = None
            async for event in receive:
                if isinstance(event, Usage):
                    usage = event
                elif isinstance(event, TextDelta):
                    pass
            return elapsed, len(model.requests) - before, answered, usage


async def main_async(args: argparse.Namespace) -> None:
    model = ScriptedModel()
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(serve_mock_upstream, model)
        for status, overloads in ((529, args.overloads), (401, 1)):
            for mode in ("cli", "clawrap"):
                times, calls, ok = [], [], []
                usage = None
                for n in range(args.rounds):
                    marker = f"R-{status}-{mode}-{n}"
                    elapsed, count, answered, usage = await one(
                        model, port, mode, overloads, args.retries, status, marker
                    )
                    times.append(elapsed)
                    calls.append(count)
                    ok.append(answered)
                tokens = (
                    f"in={usage.input_tokens} out={usage.output_tokens} cost={usage.cost_usd}"
                    if usage is not None
                    else "no usage"
                )
                print(
                    f"{status} x{overloads} then 200, {mode:7} retries={args.retries}: "
                    f"median {statistics.median(times) * 1000:7.0f} ms, "
                    f"upstream calls {calls}, answered {sum(ok)}/{len(ok)}, {tokens}",
                    flush=True,
                )
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retries")
    parser.add_argument("--overloads", type=int, default=2)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
