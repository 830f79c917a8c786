"""Keeps :class:`~clawrap.core._login.LoginState` current by running the CLI's status command.

``claude --setting-sources "" auth status --json`` reads the CLI's own
credentials as every CLI process clawrap runs sees them (the environment, the
config dir's ``.credentials.json``, the Keychain; no settings files) and makes
no model call; it takes about 2 s of wall time and 0.3 s of CPU. The
monitor runs it at start, every ``auth_probe_interval`` seconds, and early when
an upstream call was refused with a 401 (:meth:`LoginMonitor.auth_failed`).
The command runs with the environment every CLI process gets, is bounded in
time, and is killed if the server stops while it runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

import trio

from clawrap.core._auth import cli_info
from clawrap.core._config import Settings
from clawrap.core._errors import ClawrapError
from clawrap.core._login import LoginProbe, LoginState, parse_status

log = logging.getLogger("clawrap.login")

PROBE_LIMIT = 20.0  # the status command's bound (it takes ~2 s)
# Least time between two probes, however many upstream 401s ask for one.
MIN_GAP = 1.0


class LoginMonitor:
    """Runs the status command in the background and records what it says."""

    def __init__(self, settings: Settings, env: Mapping[str, str], cwd: str) -> None:
        self.settings = settings
        self.env = dict(env)
        self.cwd = cwd  # a neutral directory: the CLI reads project settings from its cwd
        self.state = LoginState()
        self._wake = trio.Event()
        self._probed = trio.Event()
        self._scope = trio.CancelScope()

    def stop(self) -> None:
        """End :meth:`run` (a status command running is killed)."""
        self._scope.cancel()

    @property
    def enabled(self) -> bool:
        return self.settings.auth_probe_interval > 0

    def auth_failed(self, error: ClawrapError) -> None:
        """An upstream call was refused for its credentials: record it, probe soon."""
        self.state.failed(error, time.time())
        self._wake.set()

    async def wait_probes(self, count: int) -> None:
        """Wait until ``count`` probes have finished in all (bound it with ``fail_after``)."""
        while self.state.probes < count:
            await self._probed.wait()

    async def run(self) -> None:
        """Probe until :meth:`stop` or cancelled."""
        with self._scope:
            await self._loop()

    async def _loop(self) -> None:
        while True:
            self._wake = trio.Event()
            self.state.probed(await self.probe())
            self._probed.set()
            self._probed = trio.Event()
            interval = self.settings.auth_probe_interval
            gap = min(MIN_GAP, interval)
            await trio.sleep(gap)
            with trio.move_on_after(interval - gap):
                await self._wake.wait()

    async def probe(self) -> LoginProbe:
        """One run of the status command."""
        path = cli_info(self.settings, run=False).path
        if path is None:
            return LoginProbe(None, None, None, time.time(), "no Claude Code CLI found")
        env = {**os.environ, **self.env}
        try:
            with trio.fail_after(PROBE_LIMIT):
                done = await trio.run_process(
                    # No settings files, as every CLI process clawrap runs: the same login.
                    [path, "--setting-sources", "", "auth", "status", "--json"],
                    env=env,
                    cwd=self.cwd,
                    stdin=b"",
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        except trio.TooSlowError:
            return LoginProbe(None, None, None, time.time(), "the status command timed out")
        except OSError as exc:
            log.warning("cannot run the CLI's status command: %r", exc)
            return LoginProbe(None, None, None, time.time(), "the status command could not run")
        probe = parse_status(done.stdout, time.time())
        if probe.logged_in is not self.state.logged_in:
            if probe.logged_in is False:
                log.warning("the Claude Code CLI reports no login: completions answer 401")
            elif probe.logged_in:
                log.info("the Claude Code CLI reports a login (%s)", probe.auth_method)
        return probe


__all__ = ["PROBE_LIMIT", "LoginMonitor"]
