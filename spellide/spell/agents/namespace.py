"""The ``agents/`` effect namespace (spell-agents.md section 3), declared once here.

Each op is a function ``op(run, ctx, args, tail)``; the machine binds them as builtins that
see the evaluation context (which agent is calling, from which step) and whether they are in
tail position (a wait there continues the program through the machine's loop). The
coordinator transition of every op goes through the run's effect gate, so it is keyed,
recorded and shown like any effect; the evaluation a wait resumes is not part of the effect.

Decisions ([design], tested):

* spellide has no compiled agents (``workers/x``) yet: ``spawn`` / ``spawn-ask`` forms whose
  first argument is not a prompt string fail with the reference's message for a non-agent.
* ``send-msg-fn`` (raw rewrite envelopes) is not provided: a raw envelope would let a program
  inject arbitrary source into another agent's text, which the IDE could not attribute.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..data import Builtin, Keyword, List, Map, Vector
from ..edits import build_init
from ..errors import SpellError
from ..printer import pr_str
from .coordinator import ABSENT, Coordinator

Op = Callable[[Any, Any, list, bool], Any]


def _actor(run: Any, op: str) -> Any:
    actor = run.actor
    if actor is None or actor.ctx != "main":
        raise SpellError(f"agents/{op}: requires an active agent context")
    return actor


def _coord(run: Any) -> Coordinator:
    return run.agents.coordinator


def _handle(x: Any, op: str) -> Keyword:
    if not isinstance(x, Keyword):
        raise SpellError(f"agents/{op}: a handle must be a keyword, got {pr_str(x)}")
    return x


def _arity(op: str, args: list, lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise SpellError(f"agents/{op}: wrong number of arguments ({len(args)}); expected {want}")


def _program_of(prompt: str) -> str:
    """A spawn prompt: plain text goes through build-init; text starting with ``(`` is the
    child's init program itself."""
    return prompt if prompt.lstrip().startswith("(") else build_init(prompt)


def _spec(x: Any, op: str) -> tuple[Optional[Keyword], str]:
    """One spawn spec: ``prompt``, ``[prompt handle]`` (agent forms are refused)."""
    items = list(x) if isinstance(x, Vector) else [x]
    if not items or not isinstance(items[0], str):
        raise SpellError(f"agents/{op} requires a compiled agent (leaf-llm has no lifecycle)")
    if len(items) > 2:
        raise SpellError(f"agents/{op}: a spawn spec is prompt or [prompt handle], got {pr_str(x)}")
    handle = _handle(items[1], op) if len(items) == 2 else None
    return handle, _program_of(items[0])


def _perform(run: Any, name: str, args: list, thunk: Callable[[], Any],
             encode: Optional[Callable[[Any], str]] = None) -> Any:
    return run.gate.perform(f"agents/{name}", tuple(args), thunk, internal=True, encode=encode)


def _batch_text(batch: Any) -> str:
    return "nil" if batch is None else pr_str(Vector(n for n, _, _ in batch))


def _then_wait(run: Any, ctx: Any, actor: Any, name: str, args: list, first: Callable[[], Any],
               tail: bool) -> Any:
    """``first()`` (a coordinator transition) then ``!wait``, as one effect."""
    coord = _coord(run)

    def thunk() -> Any:
        first()
        return coord.wait(actor.key, actor.handle)
    batch = _perform(run, name, args, thunk, _batch_text)
    return run.resume_after_wait(ctx, actor, batch, "wait-resume", tail)


# --- the ops --------------------------------------------------------------------------------
def spawn(run: Any, ctx: Any, args: list, tail: bool) -> Keyword:
    """(agents/spawn prompt [handle]) -> the child's handle: registers it (parent = caller)
    and starts it in the background; nothing is collected."""
    actor = _actor(run, "spawn")
    _arity("spawn", args, 1, 3)
    handle, program = _spec(Vector(args), "spawn")
    out = _perform(run, "spawn", args, lambda: _coord(run).spawn(
        actor.key, actor.handle, [(handle, program)], False, actor.step))
    return out[0][0]


def _specs(args: list, op: str) -> list:
    if len(args) == 1 and isinstance(args[0], Vector):
        specs = [_spec(x, op) for x in args[0]]
        if not specs:
            raise SpellError(f"agents/{op}: no spawn specs")
        return specs
    return [_spec(Vector(args), op)]


def spawn_ask(run: Any, ctx: Any, args: list, tail: bool) -> int:
    """(agents/spawn-ask prompt [handle]) or (agents/spawn-ask [spec ...]) -> the edge id of
    one collection over all the children, registered before any of them starts."""
    actor = _actor(run, "spawn-ask")
    specs = _specs(args, "spawn-ask")
    return _perform(run, "spawn-ask", args, lambda: _coord(run).spawn(
        actor.key, actor.handle, specs, True, actor.step))[1]


def bang_spawn_ask(run: Any, ctx: Any, args: list, tail: bool) -> Any:
    """(agents/!spawn-ask ...) = spawn-ask then !wait: the value of the resumed program."""
    actor = _actor(run, "!spawn-ask")
    specs = _specs(args, "!spawn-ask")
    return _then_wait(run, ctx, actor, "!spawn-ask", args, lambda: _coord(run).spawn(
        actor.key, actor.handle, specs, True, actor.step), tail)


def _ask_args(args: list, op: str) -> tuple[list, Any]:
    _arity(op, args, 1, 2)
    t = args[0]
    targets = [_handle(x, op) for x in t] if isinstance(t, (Vector, List)) else [_handle(t, op)]
    return targets, args[1] if len(args) == 2 else ABSENT


def ask(run: Any, ctx: Any, args: list, tail: bool) -> int:
    """(agents/ask target [value]) or (agents/ask [t ...] [value]) -> edge id: a request to
    every target (no value: a bodyless request); the caller stays awake."""
    actor = _actor(run, "ask")
    targets, body = _ask_args(args, "ask")
    return _perform(run, "ask", args, lambda: _coord(run).request(actor.key, actor.handle, targets, body))


def bang_ask(run: Any, ctx: Any, args: list, tail: bool) -> Any:
    """(agents/!ask target [value]) = ask then !wait."""
    actor = _actor(run, "!ask")
    targets, body = _ask_args(args, "!ask")
    return _then_wait(run, ctx, actor, "!ask", args,
                      lambda: _coord(run).request(actor.key, actor.handle, targets, body), tail)


def _wait(name: str) -> Op:
    def wait(run: Any, ctx: Any, args: list, tail: bool) -> Any:
        actor = _actor(run, name)
        _arity(name, args, 0, 0)
        return _then_wait(run, ctx, actor, name, args, lambda: None, tail)
    wait.__doc__ = (f"(agents/{name}) -> nil when there is nothing to wait for; else sleeps until "
                    "a message arrives and continues the program with it received (refused with "
                    ":sleep-refused when an incoming request is newer than every outgoing edge)")
    return wait


def send(run: Any, ctx: Any, args: list, tail: bool) -> None:
    """(agents/send target value) -> nil: {:from me :body value} to target."""
    actor = _actor(run, "send")
    _arity("send", args, 2, 2)
    target = _handle(args[0], "send")
    _perform(run, "send", args, lambda: _coord(run).send(actor.key, actor.handle, target, args[1]))
    return None


def reply(run: Any, ctx: Any, args: list, tail: bool) -> None:
    """(agents/reply msg value) -> nil: answers a request (fills my slot once), else sends
    value to the message's single sender."""
    actor = _actor(run, "reply")
    _arity("reply", args, 2, 2)
    _perform(run, "reply", args, lambda: _coord(run).reply(actor.key, actor.handle, args[0], args[1]))
    return None


def bang_reply_ask(run: Any, ctx: Any, args: list, tail: bool) -> Any:
    """(agents/!reply-ask msg value): answer the request and ask its sender back in one
    step, then sleep until the answer."""
    actor = _actor(run, "!reply-ask")
    _arity("!reply-ask", args, 2, 2)
    return _then_wait(run, ctx, actor, "!reply-ask", args, lambda: _coord(run).reply_ask(
        actor.key, actor.handle, args[0], args[1]), tail)


def cancel(run: Any, ctx: Any, args: list, tail: bool) -> Map:
    """(agents/cancel edge-id) -> the edge, :status :cancelled (only its source may)."""
    actor = _actor(run, "cancel")
    _arity("cancel", args, 1, 1)
    return _perform(run, "cancel", args, lambda: _coord(run).cancel(actor.key, actor.handle, args[0]))


def status(run: Any, ctx: Any, args: list, tail: bool) -> Map:
    """(agents/status) -> {:handle :status :generation :out-edges :in-edges} of me;
    (agents/status h) -> {:handle :status :generation} of h."""
    actor = _actor(run, "status")
    _arity("status", args, 0, 1)
    h = _handle(args[0], "status") if args else actor.handle
    return _perform(run, "status", args, lambda: _coord(run).status(h, full=not args, actor=actor.key))


def graph(run: Any, ctx: Any, args: list, tail: bool) -> Map:
    """(agents/graph) -> {:nodes {h {:status :generation}} :edges {id edge}}."""
    actor = _actor(run, "graph")
    _arity("graph", args, 0, 0)
    return _perform(run, "graph", args, lambda: _coord(run).graph(actor.key))


def out_edges(run: Any, ctx: Any, args: list, tail: bool) -> Vector:
    """(agents/out-edges) -> my pending edges, oldest first."""
    actor = _actor(run, "out-edges")
    _arity("out-edges", args, 0, 0)
    return _perform(run, "out-edges", args, lambda: _coord(run).out_edges(actor.handle, actor.key))


def in_edges(run: Any, ctx: Any, args: list, tail: bool) -> Vector:
    """(agents/in-edges) -> live edges with a slot of mine (filled ones included), oldest first."""
    actor = _actor(run, "in-edges")
    _arity("in-edges", args, 0, 0)
    return _perform(run, "in-edges", args, lambda: _coord(run).in_edges(actor.handle, actor.key))


def current_handle(run: Any, ctx: Any, args: list, tail: bool) -> Keyword:
    """(agents/current-handle) -> my handle (:main for the root)."""
    actor = _actor(run, "current-handle")
    _arity("current-handle", args, 0, 0)
    return _perform(run, "current-handle", args, lambda: actor.handle)


def parent_handle(run: Any, ctx: Any, args: list, tail: bool) -> Optional[Keyword]:
    """(agents/parent-handle) -> my parent's handle, nil for :main."""
    actor = _actor(run, "parent-handle")
    _arity("parent-handle", args, 0, 0)
    return _perform(run, "parent-handle", args,
                    lambda: _coord(run).agents[actor.handle].parent)


def register(run: Any, ctx: Any, args: list, tail: bool) -> Keyword:
    """(agents/register handle completion-string) -> handle: a dormant agent (no model call
    yet) whose first message resumes that program."""
    actor = _actor(run, "register")
    _arity("register", args, 2, 2)
    h = _handle(args[0], "register")
    if not isinstance(args[1], str):
        raise SpellError(f"agents/register: the completion must be a program string, got {pr_str(args[1])}")
    return _perform(run, "register", args, lambda: _coord(run).register_dormant(actor.key, h, args[1]))


OPS: dict[str, Op] = {
    "spawn": spawn, "spawn-ask": spawn_ask, "!spawn-ask": bang_spawn_ask, "ask": ask,
    "!ask": bang_ask, "!wait": _wait("!wait"), "!sleep": _wait("!sleep"), "send": send,
    "reply": reply, "!reply-ask": bang_reply_ask, "cancel": cancel, "status": status,
    "graph": graph, "out-edges": out_edges, "in-edges": in_edges,
    "current-handle": current_handle, "parent-handle": parent_handle, "register": register,
}


def bind_op(run: Any, name: str, op: Op, *, unsafe: bool = False, doc: str = "") -> Builtin:
    """The builtin a program calls for ``op`` (the machine's wrap for this namespace)."""
    def call(ctx: Any, env: Any, *args: Any, tail: bool = False) -> Any:
        return op(run, ctx, list(args), tail)
    return Builtin(name, call, needs_ctx=True, tail_aware=True, doc=doc)


def _declare() -> None:
    from ..namespaces import Fn, Namespace, declare
    arities = {"spawn": (1, 3), "spawn-ask": (1, 3), "!spawn-ask": (1, 3), "ask": (1, 2),
               "!ask": (1, 2), "!wait": (0, 0), "!sleep": (0, 0), "send": (2, 2), "reply": (2, 2),
               "!reply-ask": (2, 2), "cancel": (1, 1), "status": (0, 1), "graph": (0, 0),
               "out-edges": (0, 0), "in-edges": (0, 0), "current-handle": (0, 0),
               "parent-handle": (0, 0), "register": (2, 2)}
    declare(Namespace(
        "agents", "Other agents of this run: spawn them, ask and answer, wait for messages "
                  "(received into your program as msg-N).",
        [Fn(n, arities[n]) for n in OPS],
        make=lambda setup: dict(OPS), sample=lambda: dict(OPS)))


_declare()
