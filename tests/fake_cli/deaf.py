"""A CLI that only SIGKILL ends: the real CLI runs behind this, which ignores SIGTERM and
SIGINT, swallows every ``interrupt`` control request unanswered, and keeps the real CLI's
input open after its own input ends. The real CLI's output goes straight to our stdout."""

from __future__ import annotations

import json
import signal
import sys

import _proxy

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
child = _proxy.start_real_cli(stdin=_proxy.subprocess.PIPE)
assert child.stdin is not None
for line in sys.stdin.buffer:
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if isinstance(message, dict) and message.get("type") == "control_request":
        request = message.get("request")
        if isinstance(request, dict) and request.get("subtype") == "interrupt":
            continue
    child.stdin.write(line)
    child.stdin.flush()
# Our input ended (the SDK closing it): ignore that too.
while True:
    signal.pause()
