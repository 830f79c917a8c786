"""A short soak: clients walking away at every stage among normal ones, on both surfaces.

The same mix and checks as ``python -m bench.soak`` (which runs 200 disconnects among 16
clients), smaller: every normal reply exact, no upstream stream left open, the CLI
processes alive exactly the pool's, and no traceback logged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ lives beside tests/

from bench.soak import running_clawrap, soak

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_a_short_soak_leaves_nothing_behind_and_answers_every_normal_request_exactly(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(240):
        async with running_clawrap(nursery, tmp_path, max_concurrency=2) as (
            port,
            upstream,
            backend,
        ):
            result = await soak(port, upstream, backend, requests=40, drops=20, clients=6)
    assert result.ok, result.report() + "\n" + (result.first_traceback or "")
    assert result.normal == 20 and sum(result.dropped.values()) == 20
