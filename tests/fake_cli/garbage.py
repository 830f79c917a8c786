"""A CLI that prints garbage on stdout. The mode is ``FAKE_GARBAGE_MODE``:

- ``before-init``: broken JSON instead of the answer to the SDK's ``initialize``;
- ``after-init-json``: answers ``initialize``, then meets the first user message with a
  line that starts like JSON but is not;
- ``after-init-shape``: answers ``initialize``, then meets the first user message with
  valid JSON of the wrong shape (an assistant message whose content is not a list).

Afterwards it hangs, reading and ignoring its input, until a signal ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

mode = os.environ["FAKE_GARBAGE_MODE"]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


for raw in sys.stdin:
    try:
        message = json.loads(raw)
    except ValueError:
        continue
    if not isinstance(message, dict):
        continue
    request = message.get("request")
    if message.get("type") == "control_request" and isinstance(request, dict):
        if request.get("subtype") == "initialize":
            if mode == "before-init":
                say('{"type": "control_response", "response": {"subtype": "succ')
                break
            response = {"subtype": "success", "request_id": message["request_id"], "response": {}}
            say(json.dumps({"type": "control_response", "response": response}))
        continue
    if message.get("type") == "user":
        if mode == "after-init-json":
            say('{"type": "assistant", "message": {"content": [{"type": "te')
        else:
            say(json.dumps({"type": "assistant", "message": {"content": "surprise"}}))
        break
while True:
    signal.pause()
