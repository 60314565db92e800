"""The ``globals/`` effect namespace: one shared, thread-safe map per run.

Agents of a run (and futures inside them) coordinate through it: ``get``, ``set``, ``update``
(atomic read-modify-write with a Spell function), ``pop`` (atomic take-first, for work queues),
``keys``, ``all`` and ``wait-until`` (block until a predicate of the whole map holds: how a
coordinator waits for its workers' results). It starts as ``{:roles {:main {}} :tasks []}``,
as the reference's API initialises it for a run (``src/spell/globals.clj``).

Differences from the reference, on purpose:

* The store belongs to one run (the reference has a process-wide atom), so runs in one server
  process never see each other's globals.
* ``update`` holds the store's lock while it calls the Spell function, so the function runs
  exactly once per call. The reference's ``swap!`` may retry it on contention; running it once
  keeps what the effect cache records equal to what happened. The lock is re-entrant, so a
  function that itself reads globals does not deadlock (its own ``set`` of the same key is
  overwritten by the update's result).
* ``pop`` on a missing key or an empty sequence returns nil and leaves the store unchanged
  (the reference stores ``()`` there); the rest keeps its collection type (a vector stays a
  vector). Popping a value that is not a list or a vector is an error.

The store's state goes into the run record as Spell text (``to_json``/``from_json`` use the
printer and the reader), so a resumed or replayed run can start from it. Values that do not
print readably (host objects) do not survive that trip.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from ..data import List, Map, Vector, kw, smap
from ..errors import SpellError

#: ``apply_fn(f, args)`` calls a Spell function value (or builtin) with a list of arguments.
ApplyFn = Callable[[Any, list], Any]


def initial_globals() -> Map:
    return smap(kw("roles"), smap(kw("main"), Map()), kw("tasks"), Vector())


class GlobalsStore:
    """A run's globals: an immutable Map swapped under a lock."""

    def __init__(self, initial: Optional[Map] = None):
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # notified on every write
        self._state: Map = initial if initial is not None else initial_globals()
        self._closed = False

    # --- reading ------------------------------------------------------------------------------
    def get(self, key: Any, default: Any = None) -> Any:
        return self._state.get(key, default)

    def keys(self) -> Vector:
        return Vector(self._state.keys())

    def all(self) -> Map:
        return self._state  # immutable: safe to hand out

    # --- writing ------------------------------------------------------------------------------
    def _write(self, state: Map) -> None:
        """Replace the state (the lock is held) and wake every ``wait_until``."""
        self._state = state
        self._changed.notify_all()

    def set(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._write(self._state.assoc(key, value))
        return value

    def update(self, key: Any, fn: Callable[[Any], Any]) -> Any:
        """Replace the value at ``key`` by ``fn(old)`` atomically; returns the new value. If
        ``fn`` raises, the store is unchanged."""
        with self._lock:
            new = fn(self._state.get(key))
            self._write(self._state.assoc(key, new))
            return new

    def pop(self, key: Any) -> Any:
        """Remove and return the first element of the list or vector at ``key`` (nil when
        missing or empty)."""
        with self._lock:
            value = self._state.get(key)
            if value is None:
                return None
            if not isinstance(value, (Vector, List)):
                raise SpellError(f"globals/pop: the value at {_show(key)} is not a list or vector")
            if not value:
                return None
            rest = type(value)(value[1:])
            self._write(self._state.assoc(key, rest))
            return value[0]

    def close(self) -> None:
        """The run ended: every ``wait_until`` in progress (an abandoned agent's) stops with
        ``:coordinator-closed``, and so does any later one."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    def wait_until(self, pred: Callable[[Map], Any], timeout: Optional[float] = None) -> bool:
        """Block until ``pred(state)`` is truthy; True then, False if ``timeout`` seconds
        pass first. The predicate is checked now and after every write, under the lock, so
        a write between the check and the wait cannot be missed (the reference's race test).
        ``pred`` must not wait on another agent itself: it runs with the store locked."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    from ..errors import TypedError
                    raise TypedError("Coordinator closed: the run has ended", kind="coordinator-closed")
                v = pred(self._state)
                if v is not None and v is not False:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)

    # --- the run record -------------------------------------------------------------------------
    def to_json(self) -> dict[str, str]:
        """``{"edn": "<printed map>"}``: JSON for the run record, Spell text inside."""
        from ..printer import pr_str
        return {"edn": pr_str(self._state)}

    @classmethod
    def from_json(cls, data: dict[str, str] | str) -> "GlobalsStore":
        """The inverse of ``to_json`` (a bare printed string is accepted too)."""
        from ..reader import read_one
        text = data if isinstance(data, str) else data.get("edn") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise ValueError('globals: expected {"edn": "<printed map>"}')
        state = read_one(text)
        if not isinstance(state, Map):
            raise ValueError("globals: the recorded state is not a map")
        return cls(state)


def _show(key: Any) -> str:
    from ..printer import pr_str
    return pr_str(key)


def _arity(fn: str, args: tuple, *counts: int) -> None:
    if len(args) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise SpellError(f"{fn}: wrong number of arguments ({len(args)}); expected {want}")


def make_globals_namespace(store: GlobalsStore, apply_fn: ApplyFn) -> dict[str, Callable[..., Any]]:
    """The ``globals/`` functions over ``store``. ``apply_fn(f, args)`` is how ``update`` calls
    the Spell function it is given (the evaluator owns function application)."""

    def get(*args: Any) -> Any:
        """(globals/get key) -> the value, or nil."""
        _arity("globals/get", args, 1)
        return store.get(args[0])

    def set_(*args: Any) -> Any:
        """(globals/set key value) -> value."""
        _arity("globals/set", args, 2)
        return store.set(args[0], args[1])

    def update(*args: Any) -> Any:
        """(globals/update key f & more) -> the new value: (apply f old more), atomically."""
        if len(args) < 2:
            raise SpellError(f"globals/update: wrong number of arguments ({len(args)}); expected 2 or more")
        key, f, more = args[0], args[1], list(args[2:])
        return store.update(key, lambda old: apply_fn(f, [old, *more]))

    def pop(*args: Any) -> Any:
        """(globals/pop key) -> the first element, atomically removed; nil if none."""
        _arity("globals/pop", args, 1)
        return store.pop(args[0])

    def keys(*args: Any) -> Vector:
        """(globals/keys) -> a vector of the keys."""
        _arity("globals/keys", args, 0)
        return store.keys()

    def all_(*args: Any) -> Map:
        """(globals/all) -> the whole map."""
        _arity("globals/all", args, 0)
        return store.all()

    def wait_until(*args: Any) -> bool:
        """(globals/wait-until pred) -> true once (pred globals-map) is truthy, blocking until
        another agent's write makes it so; (globals/wait-until pred ms) gives up after ms
        milliseconds and returns false."""
        _arity("globals/wait-until", args, 1, 2)
        timeout = None
        if len(args) == 2:
            ms = args[1]
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                raise SpellError("globals/wait-until: the timeout must be a number of milliseconds >= 0")
            timeout = ms / 1000.0
        return store.wait_until(lambda state: apply_fn(args[0], [state]), timeout)

    return {"get": get, "set": set_, "update": update, "pop": pop, "keys": keys, "all": all_,
            "wait-until": wait_until}


# --- the declaration (namespaces.py) ----------------------------------------------------------

def _globals_for_run(setup: Any) -> dict[str, Callable[..., Any]]:
    """A fresh store per run, kept in the setup's state (the machine exposes it as ``globals``)."""
    store = setup.state.setdefault("globals", GlobalsStore())
    return make_globals_namespace(store, setup.apply_fn)


def _declare() -> None:
    from ..namespaces import Fn, Namespace, declare
    declare(Namespace(
        "globals", "One map shared by the agents of this run (and futures inside them); it "
                   "starts as {:roles {:main {}} :tasks []}.",
        [Fn("get", (1, 1)), Fn("set", (2, 2)), Fn("update", (2, None)), Fn("pop", (1, 1)),
         Fn("keys", (0, 0)), Fn("all", (0, 0)), Fn("wait-until", (1, 2))],
        make=_globals_for_run,
        sample=lambda: make_globals_namespace(GlobalsStore(), lambda f, args: None)))


_declare()
