"""The turn-producing vocabulary: ``!extend``, ``!call-now``, ``!peek``, ``!print``,
``!describe``, ``!compact``, ``reopen``, ``wrap-cat`` and the edit-time builtins.

The ``!`` helpers are macros that expand into a call of ``!llm-self`` with a prefix built by
a builtin here, so they work only where ``!llm-self`` is bound: inside ``eval``. The builtins
reach the running turn machine through ``ctx.machine`` (a ``Frame``), never through globals.
"""

from __future__ import annotations

from typing import Any

from . import edits, namespaces
from .assembly import strip_trailing_parens
from .data import Builtin, Keyword, List, Map, SpellMacro, Symbol, Vector, kw
from .errors import SpellError
from .printer import pr_str

S = Symbol
QUOTE = S("quote")
LLM_SELF = S("!llm-self")
COMPLETION = S("completion")
COMPACT_NOTE = ("=compact= Write a fresh, self-contained context for the rest of this task: "
                "the goal, what is known, decisions made, and the next step, as quoted forms. "
                "They become the start of a new program; nothing else carries over.")


def _q(x: Any) -> List:
    return List((QUOTE, x))


# The turn helpers are receiving self-calls: messages that arrived while the model wrote the
# completion are received before its program runs (spell-agents.md section 2.2). Raw
# ``(!llm-self p)`` and the summary stage of ``!compact`` do not receive.
RECEIVE = Map({kw("receive?"): True})


def _extend(form: List, env: Any, ctx: Any) -> Any:
    target = form[1] if len(form) > 1 else COMPLETION
    return List((LLM_SELF, List((S("edit-reopen"), target)), RECEIVE))


def _bindings_macro(mode: str):
    def expand(form: List, env: Any, ctx: Any) -> Any:
        args = list(form[1:])
        limit = None
        if len(args) % 2 == 1:
            limit = args.pop()
        if not args:
            raise SpellError(f"{form[0].name} needs at least one name and expression")
        names, exprs = args[0::2], args[1::2]
        for n in names:
            if not isinstance(n, Symbol):
                raise SpellError(f"{form[0].name}: binding names must be symbols, got {pr_str(n)}")
        return List((LLM_SELF, List((S("%extend-with"), COMPLETION, kw(mode),
                                     Vector(_q(n) for n in names), Vector(exprs), limit)), RECEIVE))
    return expand


def _print(form: List, env: Any, ctx: Any) -> Any:
    return List((LLM_SELF, List((S("%extend-with"), COMPLETION, kw("print"), Vector(),
                                 Vector(form[1:]), None)), RECEIVE))


def _describe(form: List, env: Any, ctx: Any) -> Any:
    return List((S("!print"), List((S("describe-fn"), *[_q(x) if isinstance(x, Symbol) else x
                                                      for x in form[1:]]))))


def _compact(form: List, env: Any, ctx: Any) -> Any:
    target = form[1] if len(form) > 1 else COMPLETION
    return List((LLM_SELF, List((S("%compact-prefix"), target))))


def _reopen(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise SpellError("reopen needs a quine form")
    extras = []
    for x in form[2:]:
        if isinstance(x, List) and x and x[0] == S("reopen-eval") and len(x) == 2:
            extras.append(x[1])
        else:
            extras.append(_q(x))
    return List((S("%reopen"), form[1], *extras))


# --- builtins (ctx-aware: fn(ctx, env, *args)) -----------------------------------------

# Which helper's forms ``%extend-with`` appends, as the edit trace names it.
_INJECTED_BY = {"def": "!call-now", "peek": "!peek", "print": "!print"}


def _edit_reopen(ctx: Any, env: Any, quine: Any) -> Any:
    return edits.edit_reopen(quine, env)


def _prune_and_reopen(ctx: Any, env: Any, quine: Any) -> str:
    """The reference's older name returns the open prefix *text* (its tests pin the string);
    ``edit-reopen`` returns the form. ``!llm-self`` takes either."""
    return edits.serialize_quine_prefix(edits.edit_reopen(quine, env))


def _apply_edits(ctx: Any, env: Any, form: Any) -> Any:
    return edits.apply_edits(form, env)


def _extend_with(ctx: Any, env: Any, quine: Any, mode: Keyword, names: Vector, values: Vector,
                 limit: Any) -> Any:
    run = ctx.machine.run
    lim = run.config.inline_limit if limit is None else int(limit)
    edited = edits.edit_reopen(quine, env)
    forms: list = []
    if mode.name == "print":
        forms = [edits.render_value(v, run.store, lim) for v in values]
    else:
        forms = [List((S("def"), n, edits.render_value(v, run.store, lim)))
                 for n, v in zip(names, values)]
        if mode.name == "peek":
            forms.append(List((S("prune"), len(names) + 1)))
    return edits.append_to_body(edited, forms, by=_INJECTED_BY[mode.name])


def _compact_prefix(ctx: Any, env: Any, quine: Any) -> str:
    edited = edits.edit_reopen(quine, env)
    return (edits.serialize_quine_prefix(edited)
            + pr_str(List((S("think"), COMPACT_NOTE, None))) + " (quote (!llm-self (wrap-cat ")


def _reopen_fn(ctx: Any, env: Any, quine: Any, *extras: Any) -> Any:
    if isinstance(quine, str) and not extras:
        # (reopen "...(do )))"): printed program text back to an open prefix, as the
        # reference's reopen on a string (its three closers: do, eval, quine)
        return strip_trailing_parens(3, quine)
    return edits.append_to_body(quine, list(extras)) if extras else (edits.quine_body(quine) and quine)


def _wrap_cat(*forms: Any) -> str:
    return edits.wrap_cat(*forms)


def _serialize_prefix(quine: Any) -> str:
    return edits.serialize_quine_prefix(quine)


def _stored(ctx: Any, env: Any, ref_id: Any) -> Any:
    return ctx.machine.run.store.get(str(ref_id))


def _serialize(ctx: Any, env: Any, value: Any, limit: Any = None) -> str:
    run = ctx.machine.run
    lim = run.config.inline_limit if limit is None else int(limit)
    return pr_str(edits.render_value(value, run.store, lim))


def _deep_truncate(value: Any, limit: Any = 200) -> Any:
    return edits.deep_truncate(value, int(limit))


def _describe_fn(ctx: Any, env: Any, *targets: Any) -> str:
    """Documentation of namespaces (and optionally of some of their keys) as one string."""
    sections = []
    current = None
    wanted: dict[str, list] = {}
    order: list[str] = []
    given: dict[str, Map] = {}
    for t in targets:
        if isinstance(t, Map) and _ns_name(t):   # (describe io) inside eval: the namespace itself
            given[_ns_name(t)] = t
            t = S(_ns_name(t))
        if isinstance(t, Symbol):
            current = t.full
            wanted.setdefault(current, [])
            order.append(current)
        elif isinstance(t, Keyword) and current is not None:
            wanted[current].append(t)
        else:
            raise SpellError(f"describe-fn expects namespace symbols and keys, got {pr_str(t)}")
    for name in order:
        ns = given.get(name) or (ctx.builtins.get(S(name)) if hasattr(ctx, "builtins") else None)
        if ns is None and env is not None:
            ns = env.get(S(name))
        if not isinstance(ns, Map):
            decl = namespaces.load().get(name)
            if decl is None:
                sections.append(f"## {name}\n(no such namespace)")
            else:   # declared, but not bound here (outside eval, or not enabled in this run)
                hint = (getattr(ctx, "gated", None) or {}).get(name) or "not available here"
                sections.append(decl.describe([k.name for k in wanted[name]]) + f"\n({hint})")
            continue
        docs = ns.get(kw("docs"))
        lines = [f"## {name}"]
        if isinstance(docs, Map) and isinstance(docs.get(kw("overview")), str):
            lines.append(docs[kw("overview")])
        keys = wanted[name] or [k for k in ns if isinstance(k, Keyword) and k.name not in
                                ("docs", "guide", "detail", "short-docs")]
        for k in keys:
            doc = ""
            if isinstance(docs, Map):
                d = docs.get(k)
                doc = d if isinstance(d, str) else ""
            if not doc:
                val = ns.get(k)
                doc = getattr(val, "doc", "") or ""
            lines.append(f"{name}/{k.name}" + (f" - {doc}" if doc else ""))
        if isinstance(docs, str):
            lines.insert(1, docs)
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _ns_name(ns: Map) -> str:
    """The name of a namespace map, from its functions' qualified names (``io/slurp``)."""
    for v in ns.values():
        name = getattr(v, "name", None)
        if isinstance(v, Builtin) and isinstance(name, str) and "/" in name:
            return name.split("/", 1)[0]
    return ""


# The turn vocabulary, declared once: name -> (implementation, how it is called, doc). "macro":
# an expander of the unevaluated form; "ctx": a builtin given (ctx, env, *args); "fn": a plain
# builtin. The docs reach ``(!describe turns)`` and the namespace registry (namespaces.py).
_MACRO, _CTX, _FN = "macro", "ctx", "fn"
TURN_HELPERS: dict[str, tuple[Any, str, str]] = {
    "!extend": (_extend, _MACRO, "(!extend [quine]): continue; the next model call's prefix is "
                "this program with its edit markers applied (receives messages)"),
    "!call-now": (_bindings_macro("def"), _MACRO, "(!call-now name expr ... [limit]): evaluate "
                  "now, continue with each value bound as (def name value) (big values stored)"),
    "!peek": (_bindings_macro("peek"), _MACRO, "(!peek name expr ... [limit]): like !call-now, "
              "and the bindings are pruned again after the next turn"),
    "!peek-now": (_bindings_macro("peek"), _MACRO, "the same as !peek"),
    "!print": (_print, _MACRO, "(!print expr ...): continue with the values printed in"),
    "print": (_print, _MACRO, "the same as !print"),
    "!describe": (_describe, _MACRO, "(!describe ns [:fn ...] ...): continue with the "
                  "documentation of namespaces (or of some of their functions) printed in"),
    "!compact": (_compact, _MACRO, "(!compact [quine]): ask for a fresh, self-contained "
                 "context that starts a new program; nothing else carries over"),
    "reopen": (_reopen, _MACRO, "(reopen quine form ...): the quine with the forms appended to "
               "its body; of a program's text, the open prefix (its three closing parens off)"),
    "edit-reopen": (_edit_reopen, _CTX, "(edit-reopen quine): the quine with its edit markers "
                    "(prune, rethink, persist) applied, to extend"),
    "prune-and-reopen": (_prune_and_reopen, _CTX, "(prune-and-reopen quine): the open prefix "
                         "text of the edited quine (the reference's older name)"),
    "apply-edits": (_apply_edits, _CTX, "(apply-edits form): the form with its edit markers applied"),
    "%extend-with": (_extend_with, _CTX, "how !call-now, !peek and !print build their prefix"),
    "%compact-prefix": (_compact_prefix, _CTX, "how !compact builds its prefix"),
    "%reopen": (_reopen_fn, _CTX, "how reopen appends to a quine"),
    "stored": (_stored, _CTX, "(stored id): the value stored under id (too big to print inline)"),
    "serialize": (_serialize, _CTX, "(serialize value [limit]): value's text as a prefix holds "
                  "it (values past the inline limit stored)"),
    "describe-fn": (_describe_fn, _CTX, "(describe-fn 'ns [:fn ...] ...): the documentation "
                    "of namespaces as a string"),
    "describe": (_describe_fn, _CTX, "the same as describe-fn"),
    "wrap-cat": (_wrap_cat, _FN, "(wrap-cat form ...): the open prefix of a fresh program "
                 "holding the forms, with no old history"),
    "serialize-prefix": (_serialize_prefix, _FN, "(serialize-prefix quine): the open prefix "
                         "text of a quine"),
    "deep-truncate": (_deep_truncate, _FN, "(deep-truncate value [limit]): value with its long "
                      "strings cut to limit characters (default 200)"),
}

namespaces.declare(namespaces.Namespace(
    "turns", "The turn vocabulary: how a program continues (unqualified, inside eval: "
             "'(!extend), not turns/!extend), and the edit-time functions behind it.",
    [namespaces.Fn(n, (0, None) if how == _MACRO else namespaces.arity_of(f, 2 if how == _CTX else 0), doc)
     for n, (f, how, doc) in TURN_HELPERS.items()],
    effect=False))


def turn_builtins() -> dict[Symbol, Any]:
    """Macros and builtins of the turn vocabulary, keyed by symbol (merged into core), and
    ``turns``: their docs, for ``(!describe turns)``."""
    table: dict[Symbol, Any] = {}
    docs = Map()
    for n, (f, how, doc) in TURN_HELPERS.items():
        table[S(n)] = (SpellMacro(f, n) if how == _MACRO else
                       Builtin(n, f, needs_ctx=how == _CTX, doc=doc))
        dict.__setitem__(docs, kw(n), doc)
    ns = Map(docs)
    dict.__setitem__(ns, kw("docs"), docs)
    table[S("turns")] = ns
    return table
