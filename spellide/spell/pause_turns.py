"""Pause points of a run with several agents: one pause shown at a time, and the whole-run hold.

Every agent lifecycle is a thread of the same run, and each may reach a pause point (before a
model call, after a completion, before an effect, at an error) at any moment. A person sees
and decides one pause at a time, and a controller (``api.Controller``; the IDE's, or the child
process's relay) answers one checkpoint at a time, so the machine serialises them here:

* **turns**: the thread showing a pause owns the turn until its decision is taken (and, for an
  edit refused and asked again, until the pause ends); another agent that reaches a pause
  point it must stop at meanwhile waits its turn, and its pause is shown next;
* **the hold**: a pause that answers a *whole-run* pause request (the IDE's Pause without an
  agent, or a Step after such a pause) holds every other agent too: an agent reaching any
  pause point while it is shown waits there, without showing a pause, until the person
  resumes. A breakpoint or a per-agent pause does not hold the others: they go on, and stop
  only where they must stop themselves;
* **run stepping**: a Step that answers a held pause steps the run: the next pause point any
  agent reaches pauses (and holds the run) again. A Step at any other pause steps only the
  agent shown (``Stepping``).

Owners are threads (their idents): a future runs in a thread of its own and may reach a
before-effect pause point while its agent waits for it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Hashable, Iterator, Optional


class PauseTurns:
    """Who is showing a pause now, whether it holds the run, and whether the run steps."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: Optional[int] = None   # the thread whose pause is shown (or being decided)
        self._depth = 0
        self._hold = False
        self.run_stepping = False           # a Step answered a held pause: the next one holds too

    @property
    def held(self) -> bool:
        return self._hold

    def wait_while_held(self) -> None:
        """Wait while another thread's pause holds the run (a cheap read when nothing does)."""
        if not self._hold:
            return
        me = threading.get_ident()
        with self._cond:
            while self._hold and self._owner != me:
                self._cond.wait()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Own the turn to show a pause (waiting while another thread shows one); re-entrant."""
        me = threading.get_ident()
        with self._cond:
            while self._owner is not None and self._owner != me:
                self._cond.wait()
            self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._hold = False
                    self._cond.notify_all()

    def hold(self, on: bool) -> None:
        """The pause this thread shows holds the run (``on``), or no longer does."""
        with self._cond:
            self._hold = on
            if not on:
                self._cond.notify_all()


class Stepping:
    """Which agents step: after a Step decision, that agent pauses at its next pause point."""

    def __init__(self) -> None:
        self._agents: set[Hashable] = set()

    def __contains__(self, agent: Hashable) -> bool:
        return agent in self._agents

    def set(self, agent: Hashable, on: bool) -> None:
        if on:
            self._agents.add(agent)
        else:
            self._agents.discard(agent)
