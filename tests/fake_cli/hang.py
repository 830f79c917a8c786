"""A CLI that starts and then never answers: not the SDK's initialize, nothing at all.

It does not read its input either, so the end of its input does not end it: only a
signal does (SIGTERM keeps its default action, so a plain terminate suffices).
"""

import signal

while True:
    signal.pause()
