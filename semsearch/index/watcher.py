"""The watcher of a watch: watchfiles' file events as bursts, kept going through what it cannot
follow.

watchfiles fails on a name that is not UTF-8 (its events are strings), and a watcher follows
what it was started on, so a watched path that vanishes or is replaced leaves it blind. Then
the watcher is started again and its first burst says to look at everything (a rescan round),
so nothing that happened meanwhile is missed; an ingest reads such names losslessly. Where the
file system's events cannot be had at all (a folder whose name is not UTF-8 fails watchfiles'
inotify watcher at every start) it polls instead. A watched path that is gone is watched again
once it is back. ``WatchStatus`` says, to any thread, whether the watch is down and why; after
``RESTART_TRIES`` failures in a row of a watcher that never came up, the watch gives up with
WatchError.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_DEBOUNCE_MS as DEBOUNCE_MS
from ..documents.formats import SUFFIXES
from ..documents.reading import is_within
from ..documents.walk import IGNORE_FILES
from ..errors import WatchError, first_line

POLL_MS = 500  # how often a quiet watch looks for a stop request, and at its watched paths
POLL_FALLBACK_MS = 2_000  # how often a watch that cannot have the file system's events polls
RESTART_TRIES = 6  # failures in a row (of a watcher that never came up) before a watch gives up
RESTART_PAUSE_S = 0.5  # the pause before starting a watcher that failed to come up, doubled each time


@dataclass(frozen=True)
class Burst:
    """What starts a round: ``changes`` file events (0: look at everything, as the first round
    and the first after the watcher was started again do), and ``note``, what happened to the
    watch itself since the last round, if anything."""

    changes: int
    note: str | None = None


def rounds(
    roots: Sequence[Path],
    *,
    own: Sequence[Path] = (),
    debounce_ms: int = DEBOUNCE_MS,
    stop: threading.Event | None = None,
    status: WatchStatus | None = None,
) -> Iterator[Burst]:
    """A burst of 0 changes (look at everything) each time the watcher is up, the first time
    and after each restart (see the module's docstring), then the number of relevant events in
    each burst: events less than ``debounce_ms`` apart are one burst (cut after ten times that).
    Ends when ``stop`` is set or on Ctrl-C; raises WatchError when the watcher cannot be started
    again. ``status`` is kept up to date."""
    yield from _Rounds(roots, own, debounce_ms, stop, status or WatchStatus(roots))


class _Rounds:
    """A watch across the restarts of its watcher (watchfiles' ``watch``)."""

    def __init__(
        self,
        roots: Sequence[Path],
        own: Sequence[Path],
        debounce_ms: int,
        stop: threading.Event | None,
        status: WatchStatus,
    ) -> None:
        self.roots, self.own, self.debounce_ms, self.stop, self.status = list(roots), own, debounce_ms, stop, status
        self.failures = 0  # failures in a row, those of a watcher that never came up included
        self.polling: str | None = None  # why it polls instead of taking the file system's events
        self.up = False  # the current watcher has come up

    def __iter__(self) -> Iterator[Burst]:
        note: str | None = None  # what happened to the watch, said with the next burst
        while not self._stopped():
            identity = _identity(self.roots)
            present = [root for root, found in zip(self.roots, identity, strict=True) if found is not None]
            self.status.missing([str(r) for r in self.roots if r not in present])
            if not present:  # nothing to watch until a watched path is back
                if note is not None:
                    yield Burst(0, note)
                if not self._wait_for_change(identity):
                    return
                note = "a watched path is back: looking at everything again"
                continue
            try:
                note = yield from self._watch(present, identity, note)
            except (RuntimeError, OSError) as exc:  # watchfiles' own errors are RuntimeErrors
                if self._stopped():
                    return
                note = self._failed(exc)
                continue
            if note is None:
                return

    def _watch(
        self, present: list[Path], identity: list[tuple[int, int] | None], note: str | None
    ) -> Generator[Burst, None, str | None]:
        """One watcher over the ``present`` roots, until it stops (None) or a watched path
        vanishes, comes back or is replaced (why, to be said when the next one is up)."""
        import watchfiles

        self.up = False
        events = watchfiles.watch(
            *present,
            watch_filter=Relevant(self.roots, self.own),
            debounce=max(10 * self.debounce_ms, 1_600),
            step=self.debounce_ms,
            stop_event=self.stop,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
            force_polling=self.polling is not None,
            poll_delay_ms=POLL_FALLBACK_MS,
        )
        try:
            for found in events:
                now = _identity(self.roots)  # before the round: the status is current while it runs
                self.status.missing([str(root) for root, there in zip(self.roots, now, strict=True) if there is None])
                if not self.up:  # it first answers within POLL_MS, events or none
                    self.up, self.failures = True, 0
                    self.status.up(self.polling)
                    yield Burst(0, note)
                elif found:
                    yield Burst(len(found))
                if now != identity:
                    return _moved(self.roots, identity, now)
        finally:
            events.close()
        return None

    def _failed(self, exc: BaseException) -> str:
        """Record a failure of the watcher, wait before the next start (longer each time it
        fails to come up), and say what was done; WatchError after RESTART_TRIES in a row."""
        reason = first_line(exc)
        self.failures = 1 if self.up else self.failures + 1
        if not self.up and self.polling is None:  # the file system's events cannot be had here
            self.polling = reason
            self.status.down(f"The watcher could not start ({reason}); polling for changes instead")
            return f"the watcher could not start ({reason}): polling for changes instead; looking at everything"
        if self.failures >= RESTART_TRIES:
            tries = self.failures
            message = f"The watch stopped: its watcher failed to start {tries} times in a row, last with: {reason}"
            self.status.stop(message)
            raise WatchError(message)
        self.status.down(f"The watcher failed ({reason}); starting it again")
        if not self.up:
            self._pause(RESTART_PAUSE_S * 2 ** (self.failures - 2))
        return f"the watcher failed ({reason}) and was started again: looking at everything"

    def _wait_for_change(self, identity: list[tuple[int, int] | None]) -> bool:
        """Wait until a watched path appears or changes; False when stopped first."""
        while _identity(self.roots) == identity:
            if self._pause(POLL_MS / 1000):
                return False
        return True

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when stopped meanwhile."""
        if self.stop is None:
            time.sleep(seconds)
            return False
        return self.stop.wait(seconds)

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def _identity(roots: Sequence[Path]) -> list[tuple[int, int] | None]:
    """Each root's device and inode (None when it is gone): a watcher follows what it was
    started on, so a root deleted, made again or replaced (a file saved by renaming another over
    it) needs a new one."""
    found: list[tuple[int, int] | None] = []
    for root in roots:
        try:
            info = os.stat(root)
        except OSError:
            found.append(None)
        else:
            found.append((info.st_dev, info.st_ino))
    return found


def _moved(roots: Sequence[Path], before: list[tuple[int, int] | None], now: list[tuple[int, int] | None]) -> str:
    """What became of the watched paths whose identity changed, in a few words."""
    changed = [(root, now[n]) for n, root in enumerate(roots) if before[n] != now[n]]
    gone = [str(root) for root, found in changed if found is None]
    back = [str(root) for root, found in changed if found is not None]
    parts = [f"{', '.join(gone)} gone: its documents are removed, and it is watched again once back"] if gone else []
    parts += [f"{', '.join(back)} made again or replaced: watching it anew, looking at everything"] if back else []
    return "; ".join(parts)


class WatchStatus:
    """How a watch is doing, for anyone to read from any thread (``snapshot``): watching, or
    degraded while its watcher is being started again or a watched path is gone, with why; or
    stopped for good."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self._lock = threading.Lock()
        self.paths = [str(p) for p in paths]
        self._state = "starting"
        self._problem: str | None = None  # why the watcher is down while it is
        self._gone: list[str] = []
        self._since: float | None = None
        self._polling: str | None = None
        self.restarts = 0

    def up(self, polling: str | None) -> None:
        """The watcher is up (polling instead of taking events, because of ``polling``)."""
        with self._lock:
            if self._state == "stopped":
                return
            self._state, self._problem, self._polling = "watching", None, polling
            self._since = time.time() if self._gone else None

    def down(self, why: str) -> None:
        """The watcher failed and is being started again."""
        with self._lock:
            self.restarts += 1
            self._problem, self._since = why, self._since or time.time()

    def missing(self, gone: list[str]) -> None:
        """These watched paths are gone (none: all are there)."""
        with self._lock:
            if gone != self._gone:
                self._gone, self._since = gone, (time.time() if gone else None)

    def stop(self, why: str) -> None:
        """The watch stopped for good."""
        with self._lock:
            self._state, self._problem, self._since = "stopped", why, time.time()

    def snapshot(self) -> dict[str, Any]:
        """``state`` (starting, watching, degraded or stopped), ``summary`` (why, in words
        that name no path: what /health may say to anyone), ``problem`` (why, in full), ``since``
        (when it went wrong), ``events`` (``notify`` or ``polling``, with ``polling_because``),
        ``restarts``, ``paths`` and ``gone``."""
        with self._lock:
            state, summary, problem = self._state, None, self._problem
            if state == "stopped":
                summary = "the watcher has stopped"
            elif self._gone:  # before a failure: with nothing left to watch, no watcher is restarted
                state, summary = "degraded", "a watched path is gone"
                problem = f"{', '.join(self._gone)} gone: watched again once back"
            elif problem is not None:
                state, summary = "degraded", "the watcher is being started again after an error"
            return {
                "state": state,
                "summary": summary,
                "problem": problem,
                "since": self._since if summary else None,
                "events": "polling" if self._polling else "notify",
                "polling_because": self._polling,
                "restarts": self.restarts,
                "paths": list(self.paths),
                "gone": list(self._gone),
            }


class Relevant:
    """watchfiles' filter: whether an event under the watched ``roots`` can change what an
    ingest of them finds (see the module's docstring)."""

    def __init__(self, roots: Sequence[Path], own: Sequence[Path]) -> None:
        self.roots = [str(r) for r in roots]
        self.own = [os.path.abspath(p) for p in own]

    def __call__(self, change: Any, path: str) -> bool:
        if any(is_within(path, own) for own in self.own):
            return False
        root = next((r for r in self.roots if is_within(path, r)), None)
        parts = Path(os.path.relpath(path, root)).parts if root and root != path else ()
        if any(part.startswith(".") for part in parts[:-1]):
            return False
        name = os.path.basename(path)
        if name in IGNORE_FILES:
            return True
        suffix = os.path.splitext(name)[1].lower()
        return not name.startswith(".") and (suffix in SUFFIXES or not suffix)
