"""Spell's core builtins (spell-language.md section 3.6): the table every program sees.

Functions register themselves with ``@builtin("name", ...)``; ``core_table()`` assembles the
table the evaluator uses: core functions, core macros, ``spell-eval``, and the namespaces
``strings``, ``math``, ``patterns`` (Spell-written idioms) and ``builtins`` (documentation
only). Keys are ``Symbol``s;
namespaces are ``Map``s of ``Keyword -> value`` with a ``:docs`` entry (``Keyword -> short
doc``) that ``describe-fn`` reads.

Calling convention (see ``data.Builtin``): plain builtins get ``fn(*args)``; ``ctx=True``
ones get ``fn(ctx, env, *args)`` (needed to call Spell functions with dynamic scope, or to
draw from ``ctx.rng``). Any Python exception a builtin raises becomes the catchable Spell
error ``"Function call failed: NAME: message"``, so builtins raise plain ``ValueError`` /
``TypeError`` with a user-facing message and never need to build ``SpellError`` themselves.

Choices where Clojure is lazy or host-specific (documented for users in the ``:docs``):

* sequence results of higher-order functions are vectors; functions that return seqs in
  Clojure (``rest``, ``next``, ``cons``, ``concat``, ``keys``, ``vals``, ``seq``,
  ``butlast``, ``list*``) return lists, as Clojure prints them (``reverse`` is a vector, as in
  the reference);
* infinite sequences exist only as ``(range)``, ``(repeat x)``, ``(repeatedly f)``,
  ``(iterate f x)``, ``(cycle coll)`` and lazy ``map``/``filter``/``remove``/``keep``/
  ``map-indexed``/``take-nth``/``drop`` over them; only bounded consumers (``take``,
  ``take-while``, ``first``, ``nth``, ``some``, ``for`` with ``:while``, destructuring,
  ``interleave``/``map``/``zipmap`` with a finite partner...) accept them; anything else is a
  clear error, and at most ``MAX_REALIZE`` elements are ever produced;
* integers never overflow (``+`` behaves like ``+'``).
"""

from __future__ import annotations

from typing import Any, Callable

from ..data import Builtin, Keyword, Map, Symbol
from ..namespaces import Fn, Namespace, arity_of, declare

CORE: dict[str, Builtin] = {}
DOCS: dict[str, str] = {}


def builtin(*names: str, ctx: bool = False, tail: bool = False, doc: str = "",
            table: dict | None = None) -> Callable:
    """Register ``fn`` under each of ``names`` in ``table`` (default: the core table)."""
    target = CORE if table is None else table

    def deco(fn: Callable) -> Callable:
        for n in names:
            target[n] = Builtin(n, fn, needs_ctx=ctx, tail_aware=tail, doc=doc)
            if table is None and doc:
                DOCS[n] = doc
        return fn
    return deco


def namespace(ns: str, fns: dict[str, Builtin], constants: dict[str, Any] | None = None,
              overview: str = "") -> Map:
    """A namespace map ``{:name fn ... :docs {:name "doc"}}``; builtin names become
    ``ns/name`` so error messages say which function failed. The namespace is also declared
    (``namespaces.py``: name, overview, each function's arity and doc), as a pure one."""
    m = Map()
    docs = Map()
    for name, b in fns.items():
        nb = Builtin(f"{ns}/{name}", b.fn, needs_ctx=b.needs_ctx, tail_aware=b.tail_aware,
                     doc=b.doc)
        dict.__setitem__(m, Keyword(name), nb)
        if b.doc:
            dict.__setitem__(docs, Keyword(name), b.doc)
    for name, (value, doc) in (constants or {}).items():
        dict.__setitem__(m, Keyword(name), value)
        dict.__setitem__(docs, Keyword(name), doc)
    if overview:
        dict.__setitem__(docs, Keyword("overview"), overview)
    dict.__setitem__(m, Keyword("docs"), docs)
    declare(Namespace(ns, overview, [Fn(name, arity_of(b.fn, 2 if b.needs_ctx else 0), b.doc)
                                     for name, b in fns.items()], effect=False))
    return m


def core_table() -> dict:
    """Build the core builtins table (Symbol -> Builtin | SpellMacro | namespace Map)."""
    from . import core, collections, higher_order  # noqa: F401 - registration side effects
    from . import math as math_ns
    from . import strings as strings_ns
    from . import patterns as patterns_ns
    from .. import macros
    from ..evaluator import SPELL_EVAL, SPECIAL_FORMS

    table: dict = {}
    for name, b in CORE.items():
        table[Symbol(name)] = b
    table[Symbol("spell-eval")] = SPELL_EVAL
    table.update(macros.core_macros())
    table[Symbol("strings")] = strings_ns.make_namespace()
    table[Symbol("math")] = math_ns.make_namespace()
    table[Symbol("patterns")] = patterns_ns.make_namespace()

    docs = Map()
    for name in sorted(DOCS):
        dict.__setitem__(docs, Keyword(name), DOCS[name])
    dict.__setitem__(docs, Keyword("spell-eval"), SPELL_EVAL.doc)
    for name in sorted(SPECIAL_FORMS):
        dict.__setitem__(docs, Keyword(name), "special form")
    for name in sorted(macros.MACROS):
        dict.__setitem__(docs, Keyword(name), macros.MACRO_DOCS.get(name, "macro"))
    ns = Map(docs)
    dict.__setitem__(ns, Keyword("docs"), docs)
    table[Symbol("builtins")] = ns
    declare(Namespace("builtins", "The core functions, special forms and macros every program sees "
                                  "(unqualified: (count xs), not builtins/count).",
                      [Fn(name, arity_of(b.fn, 2 if b.needs_ctx else 0), b.doc) for name, b in sorted(CORE.items())],
                      effect=False))
    return table
