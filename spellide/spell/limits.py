"""Resource limits of a run: its memory and its time.

Memory. A run may use at most ``memory_mb`` megabytes beyond what its process held when it
started (a few tens of MB in a run's own process). The process that executes it (the run's
child in the IDE, the ``spellide`` command itself) gets that as its data limit
(``RLIMIT_DATA``), so a runaway program cannot take the machine's memory: an allocation past
it fails and Python raises ``MemoryError``, which the evaluator and the turn machine turn into
the run's "Memory limit exceeded" error. Before that, the builtins that build big values
(``str``, ``into``, ``concat``, ``strings/join``...) estimate the size of their result and
refuse one that would not fit beside what the process already holds, so most runaways fail
at once with a message saying what was too big, before the allocator is even asked.

Time. A step's own evaluation may take at most ``step_time_limit`` seconds (time in model
calls, at pause points and in nested steps is off its clock) and the whole run at most
``run_time_limit`` seconds (time paused for a person is off that clock). ``RunClock`` keeps
both and writes the nearer one into the evaluation's shared state, where the evaluator checks
it every 256 evaluation steps; builtins that may run long in one call (regex matching) ask
``remaining()`` for the time they have left.

Inputs read from files (prompt and program files, scripted models, records) are read up to
``MAX_INPUT_BYTES``: ``--model scripted:/dev/zero`` is refused instead of read forever.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import TypedError

MB = 1024 * 1024
DEFAULT_MEMORY_MB = 1024
MIN_MEMORY_MB = 64
DEFAULT_STEP_SECONDS = 60.0
DEFAULT_RUN_SECONDS = 6 * 3600.0
MAX_INPUT_BYTES = 16 * MB
# A run this far past its time limit is inside one call that checks no deadline (a builtin in
# C: squaring a huge integer; the regex package's match timeout counts CPU time, which a busy
# machine stretches): ``watch_overrun`` ends it, so the limit holds in wall-clock time.
OVERRUN_GRACE = 2.0
# Results smaller than this are never checked: reading the process's size costs ~10 us.
_CHECK_FROM = 1 * MB

# (limit in MB, resident bytes when the run started) of the run in this thread
_memory: contextvars.ContextVar[tuple[Optional[int], int]] = contextvars.ContextVar(
    "spell_memory", default=(DEFAULT_MEMORY_MB, 0))
_evaluation: contextvars.ContextVar[Any] = contextvars.ContextVar("spell_evaluation", default=None)


# --- memory ---------------------------------------------------------------------------------
def memory_error(limit_mb: Optional[int] = None, detail: str = "") -> TypedError:
    """The run's error when it needs more memory than its limit."""
    mb = limit_mb if limit_mb is not None else _memory.get()[0]
    text = f"Memory limit exceeded ({mb} MB)" if mb else "Memory limit exceeded (out of memory)"
    return TypedError(f"{text}: {detail}" if detail else text, kind="memory-limit")


@contextmanager
def memory_limit(mb: Optional[int]) -> Iterator[None]:
    """Size checks of the builtins use ``mb`` (None: unlimited) in this thread meanwhile,
    counted from what the process holds now."""
    token = _memory.set((mb, _resident_bytes() if mb else 0))
    try:
        yield
    finally:
        _memory.reset(token)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _data_bytes() -> Optional[int]:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_size(nbytes: int, what: str) -> None:
    """Refuse to build a value of about ``nbytes`` bytes that would take the run past its
    memory limit (with what it holds already)."""
    if nbytes < _CHECK_FROM:
        return
    mb, base = _memory.get()
    if mb is None:
        return
    if _resident_bytes() - base + nbytes > mb * MB:
        raise memory_error(mb, f"{what} would build a value of about {max(1, nbytes // MB)} MB")


def str_bytes(parts: Any) -> int:
    """The size of the string made of ``parts`` (strings count as they are stored; other values
    as a short printed form: a huge printed collection is left to the process limit)."""
    return sum(sys.getsizeof(p) if type(p) is str else 32 for p in parts)


def seq_bytes(*counts: int) -> int:
    """The memory building a collection of ``sum(counts)`` elements takes: a pointer each, twice
    (the builtins build a list or tuple first, then the collection)."""
    return 16 * sum(counts)


@contextmanager
def process_memory(mb: Optional[int]) -> Iterator[None]:
    """Limit this process's data (``RLIMIT_DATA``) so that it can grow by ``mb`` beyond what it
    holds now, and the builtins' size checks to ``mb``; restored after.

    The limit is set relative to the process's present data size, which counts reserved but
    untouched memory (thread stacks of hundreds of MB) that the resident size does not: the
    resident size then stays near what it was plus ``mb``."""
    if not mb:
        with memory_limit(None):
            yield
        return
    import resource
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    data = _data_bytes()
    changed = False
    if data is not None:
        soft = data + mb * MB
        hard = previous[1]
        if hard == resource.RLIM_INFINITY or soft <= hard:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
            changed = True
    try:
        with memory_limit(mb):
            yield
    finally:
        if changed:
            resource.setrlimit(resource.RLIMIT_DATA, previous)


# --- time -----------------------------------------------------------------------------------
def _seconds(s: float) -> str:
    return f"{s:g}"


def timeout_error(shared: Any = None) -> TypedError:
    """The error of an evaluation past its deadline (the evaluation's own message, naming the
    limit, when a ``RunClock`` set it)."""
    sh = shared if shared is not None else _evaluation.get()
    message = getattr(sh, "timeout_message", None) or "Evaluation timed out (deadline exceeded)"
    return TypedError(message, kind="timeout")


@contextmanager
def evaluating_in_thread(shared: Any) -> Iterator[None]:
    """An evaluation with ``shared`` as its state runs meanwhile in this thread beside the
    run's own (a future's body, ``futures.py``): ``remaining`` and the builtins' time checks
    use its deadline. It is on no ``RunClock`` frame: its deadline is the run's."""
    token = _evaluation.set(shared)
    try:
        yield
    finally:
        _evaluation.reset(token)


def remaining() -> Optional[float]:
    """Seconds left to the deadline of the evaluation in progress in this thread (None: no
    deadline); a deadline already past raises the evaluation's time-limit error."""
    sh = _evaluation.get()
    deadline = getattr(sh, "deadline", None)
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error(sh)
    return left


def limited(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, timeout=<time left>)`` for a ``regex`` method: a match that runs past the
    evaluation's deadline ends with its time-limit error."""
    try:
        return call(*args, timeout=remaining(), **kwargs)
    except TimeoutError:
        raise timeout_error() from None


class RunClock:
    """The deadlines of a run's evaluations (see the module's docstring).

    Each evaluation in progress has a frame ``[shared, step_deadline, suspended_since]``; the
    innermost is the one evaluating. ``off_step_clock`` suspends it while the run is away from
    its own evaluation (a model call, a pause, a nested step), and moves its deadline by the
    time that took; a pause also moves the run's deadline. Each thread (an agent's
    lifecycle) has its own stack of frames, so every agent's step is on its own clock; the
    watchdog's ``overrun`` looks at all of them."""

    def __init__(self, step_seconds: Optional[float], run_seconds: Optional[float]) -> None:
        self.step_seconds = step_seconds or None
        self.run_seconds = run_seconds or None
        self.run_deadline = time.monotonic() + self.run_seconds if self.run_seconds else None
        # each thread (an agent's lifecycle) has its own stack of evaluation frames
        self._frames_of: dict[int, list[list[Any]]] = {}

    @property
    def _frames(self) -> list[list[Any]]:
        me = threading.get_ident()
        frames = self._frames_of.get(me)
        if frames is None:
            frames = self._frames_of[me] = []
        return frames

    def _apply(self, frame: list[Any]) -> None:
        sh, step_deadline = frame[0], frame[1]
        run_deadline = self.run_deadline
        if step_deadline is not None and (run_deadline is None or step_deadline <= run_deadline):
            sh.deadline = step_deadline
            sh.timeout_message = f"Step time limit exceeded ({_seconds(self.step_seconds or 0)} s)"
        else:
            sh.deadline = run_deadline
            sh.timeout_message = (None if run_deadline is None else
                                  f"Run time limit exceeded ({_seconds(self.run_seconds or 0)} s)")

    def check_run(self) -> None:
        """At a step's start: the run's time is up."""
        if self.run_deadline is not None and time.monotonic() > self.run_deadline:
            raise TypedError(f"Run time limit exceeded ({_seconds(self.run_seconds or 0)} s)",
                             kind="timeout")

    @contextmanager
    def evaluating(self, shared: Any) -> Iterator[None]:
        """An evaluation with ``shared`` as its state runs meanwhile, on the step's clock."""
        frame = [shared, time.monotonic() + self.step_seconds if self.step_seconds else None, None]
        self._apply(frame)
        frames = self._frames
        frames.append(frame)
        token = _evaluation.set(shared)
        try:
            yield
        finally:
            _evaluation.reset(token)
            frames.remove(frame)
            if not frames:
                self._frames_of.pop(threading.get_ident(), None)

    def overrun(self) -> Optional[tuple[float, str]]:
        """How far the evaluation in progress is past its deadline, with its message (None: it
        is not, or it is suspended). Safe to ask from another thread: a watchdog's question
        when the evaluation is inside one long call that checks no deadline. With several
        threads evaluating (agents), the latest of their innermost evaluations counts."""
        worst: Optional[tuple[float, str]] = None
        for frames in list(self._frames_of.values()):
            try:
                sh, _, suspended = frames[-1]
            except IndexError:
                continue
            deadline = sh.deadline
            if suspended is not None or deadline is None:
                continue
            late = time.monotonic() - deadline
            if late > 0 and (worst is None or late > worst[0]):
                worst = (late, sh.timeout_message or "Evaluation timed out")
        return worst

    @contextmanager
    def off_step_clock(self, paused: bool = False) -> Iterator[None]:
        frame = self._frames[-1] if self._frames else None
        mine = frame is not None and frame[2] is None
        start = time.monotonic()
        if mine:
            frame[2] = start   # type: ignore[index]
        try:
            yield
        finally:
            spent = time.monotonic() - start
            if mine:
                if frame[1] is not None:   # type: ignore[index]
                    frame[1] += spent      # type: ignore[index]
                frame[2] = None            # type: ignore[index]
            if paused and self.run_deadline is not None:
                self.run_deadline += spent
                for frames in list(self._frames_of.values()):   # every agent's run deadline moved
                    for f in list(frames):
                        self._apply(f)
            else:
                for f in self._frames:
                    self._apply(f)


def watch_overrun(clock: Callable[[], Optional[RunClock]], end: Callable[[str], None]) -> None:
    """Call ``end(message)`` (which must end the process) from a watchdog thread once the
    evaluation in progress on ``clock()`` (None: no run yet) is ``OVERRUN_GRACE`` past its
    deadline. Start it before the run's thread: that one starts with a big stack size set for
    every thread started meanwhile (``machine.execute_with_deep_stack``), which the run's
    memory limit may not leave room for."""
    def watch() -> None:
        while True:
            time.sleep(OVERRUN_GRACE / 4)
            current = clock()
            late = current.overrun() if current is not None else None
            if late is not None and late[0] > OVERRUN_GRACE:
                end(late[1])
                return
    threading.Thread(target=watch, name="spell-run-watchdog", daemon=True).start()


# --- inputs ---------------------------------------------------------------------------------
def read_input(path: str | Path, what: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A text file given as input, read up to ``max_bytes`` (devices and pipes included);
    bigger is a ``ValueError`` naming the file and the limit. Other errors are ``OSError`` /
    ``UnicodeDecodeError`` as ``read_text`` raises them."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than the limit of {max_bytes // MB} MB")
    return data.decode("utf-8")
