"""``blocking/``: waiting for futures, only inside a future's body (spell-agents.md section 5).

The namespace is bound in the context of every future (``futures.py``) and nowhere else: a
lookup elsewhere fails with "blocking/ is only available inside (future ...) blocks"
(``evaluator.ALWAYS_GATED``). Each function also checks the thread it runs in, so a function
value that escaped a future cannot block an agent's own thread ("... cannot block an agent
runner; use !ask-await", uncatchable).

These are not effects of the gate: waiting performs nothing outside the run, and what a wait
returns is the value of a future of the same run, whose own effects are keyed and replayed
(``effects/gate.py``), so a replay computes the same values without recording the waits.

``request`` and ``send-await`` are coordinator operations (``agents/future_waits.py``): they go
through the gate as internal transitions, and fail with a clear "not available" error in an
evaluation without a coordinator.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import futures
from ..data import Builtin, Keyword, List, Map, SpellMacro, Vector
from ..errors import SpellError
from ..evaluator import apply_fn
from ..macros import expand_plet
from ..namespaces import Fn, Namespace, declare

NAME = "blocking"
OVERVIEW = ("Waiting inside futures (only there): await one future, await-all of a vector, "
            "pmap, plet, and requests to other agents.")


def _future_of(x: Any, name: str) -> futures.Waitable:
    w = futures.waitable(x)
    if w is None:
        raise SpellError(f"{name} requires a future")
    return w


def await_(ctx: Any, env: Any, fut: Any) -> Any:
    """(blocking/await f): the value of future (or request token) f, waiting for it; its
    error if it failed."""
    futures.require_future_thread("blocking/await")
    return _future_of(fut, "blocking/await").wait(ctx)


def await_all(ctx: Any, env: Any, coll: Any) -> Vector:
    """(blocking/await-all [f1 f2 ...]): a vector of the values of the futures, in order."""
    futures.require_future_thread("blocking/await-all")
    if not isinstance(coll, (Vector, List)):
        raise SpellError("blocking/await-all: argument must be a collection")
    waits = [futures.waitable(x) for x in coll]
    if any(w is None for w in waits):
        raise SpellError("blocking/await-all: all elements must be futures")
    return Vector([w.wait(ctx) for w in waits])  # type: ignore[union-attr]


def pmap(ctx: Any, env: Any, f: Any, coll: Any) -> Vector:
    """(blocking/pmap f coll): (f x) for every element, each in a future of its own, as a
    vector in the collection's order."""
    parent = futures.require_future_thread("blocking/pmap")
    from ..builtins.core import items
    started = [parent.pool.start(ctx, _apply_to(f, x, env)) for x in items(coll)]
    return Vector([fut.wait(ctx) for fut in started])


def _apply_to(f: Any, x: Any, env: Any) -> Callable[[Any], Any]:
    return lambda fctx: apply_fn(f, [x], env, fctx)


def request(ctx: Any, env: Any, target: Any, *body: Any) -> Map:
    """(blocking/request h) / (blocking/request h v): ask agent h (an edge owned by the agent
    whose turn created this future); a token for blocking/await, which gives h's reply."""
    futures.require_future_thread("blocking/request")
    if len(body) > 1:
        raise SpellError("blocking/request expects (blocking/request handle) or "
                         "(blocking/request handle value)")
    from ..agents.future_waits import request_from_future
    return request_from_future(ctx, target, body)


def send_await(ctx: Any, env: Any, target: Any, *body: Any) -> Any:
    """(blocking/send-await h v): blocking/request, then blocking/await: h's reply."""
    futures.require_future_thread("blocking/send-await")
    return await_(ctx, env, request(ctx, env, target, *body))


IMPLS: dict[str, Callable[..., Any]] = {
    "await": await_, "await-all": await_all, "pmap": pmap, "request": request,
    "send-await": send_await,
}
PLET_DOC = ("(blocking/plet [a e1 b e2] body...): start every expression as a future, then "
            "bind each name to its awaited value")

declare(Namespace(
    NAME, OVERVIEW,
    [Fn("await", (1, 1)), Fn("await-all", (1, 1)), Fn("pmap", (2, 2)),
     Fn("plet", (1, None), PLET_DOC), Fn("request", (1, 2)), Fn("send-await", (1, 2))],
    effect=False, sample=lambda: IMPLS))


def make_namespace() -> Map:
    """The ``blocking/`` map a future's context binds: ``{:await builtin ... :plet macro
    :docs {...}}``."""
    from ..namespaces import REGISTRY
    decl = REGISTRY[NAME].documented()
    table, docs = Map(), Map()
    for f in decl.functions:
        impl = IMPLS.get(f.name)
        value = (Builtin(f"{NAME}/{f.name}", impl, needs_ctx=True, doc=f.doc) if impl is not None
                 else SpellMacro(expand_plet, f"{NAME}/plet"))
        dict.__setitem__(table, Keyword(f.name), value)
        dict.__setitem__(docs, Keyword(f.name), f.doc)
    dict.__setitem__(docs, Keyword("overview"), OVERVIEW)
    dict.__setitem__(table, Keyword("docs"), docs)
    return table
