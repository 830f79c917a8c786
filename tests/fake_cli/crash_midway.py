"""A CLI that crashes mid-reply: the real CLI runs, its output is passed on line by line,
and after ``FAKE_CRASH_AFTER`` (default 3) streamed text deltas it is killed and this exits 1."""

from __future__ import annotations

import os
import signal
import sys

import _proxy

limit = int(os.environ.get("FAKE_CRASH_AFTER", "3"))
child = _proxy.start_real_cli(stdout=_proxy.subprocess.PIPE)  # stdin is shared with the child
assert child.stdout is not None
seen = 0
for line in child.stdout:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    if b'"text_delta"' in line:
        seen += 1
        if seen >= limit:
            break
child.send_signal(signal.SIGKILL)
child.wait()
sys.stderr.write("claude: segmentation fault in /opt/private/claude (simulated)\n")
sys.exit(1)
