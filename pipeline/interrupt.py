"""SIGTERM and Ctrl-C during a release: noted at once, acted on at the next safe point.

A signal that killed the process in the middle of a push or an apply would leave exactly the half-done
state the chain exists to avoid, so :func:`handled` (entered by ``release.py`` around an operation)
replaces the handlers of SIGINT and SIGTERM with one that only records the signal. :func:`check` raises
:class:`~pipeline.errors.Interrupted` where stopping is safe: between stages (``release.py``), at every
tick of the rollout wait (``rollout.waiter``) and between smoke attempts (``smoke``), which also use
:func:`requested` to cut their retries short. The rollback that follows runs :func:`shielded`, so that it
is not interrupted in turn; a second signal while shielded restores the default behaviour and acts at
once (a user who presses Ctrl-C twice means it). SIGKILL cannot be caught: the next run converges from
the history record and the Lease's expiry instead.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _State:
    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.shield = 0
        self.active = 0


_state = _State()


def _note(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _state.signal_name is not None and _state.shield:
        # A second signal during the rollback: the user insists, so act as the default would.
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.raise_signal(signum)
    _state.signal_name = _state.signal_name or name


@contextmanager
def handled() -> Iterator[None]:
    """Note SIGINT/SIGTERM instead of dying, for the duration of one operation (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread; a caller in a thread keeps its own
        return
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in _SIGNALS:
        signal.signal(sig, _note)
    _state.active += 1
    try:
        yield
    finally:
        _state.active -= 1
        if not _state.active:
            _state.signal_name = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requested() -> str | None:
    """The signal that asked us to stop (``"SIGTERM"``), unless a rollback is shielded from it."""
    return None if _state.shield else _state.signal_name


def received() -> str | None:
    """The signal that arrived, shielded or not (for the record of what stopped the release)."""
    return _state.signal_name


def check() -> None:
    """Raise :class:`Interrupted` if a signal asked us to stop: call only where stopping is safe."""
    name = requested()
    if name is not None:
        raise Interrupted(name)


@contextmanager
def shielded() -> Iterator[None]:
    """No :func:`check` raises inside: what runs here (the rollback) must finish once started."""
    _state.shield += 1
    try:
        yield
    finally:
        _state.shield -= 1
