"""Spell's core macros (spell-language.md section 3.3).

A macro is a ``data.SpellMacro`` stored in the builtins table (or, for ``defmacro``, in the
env). Its ``expander`` is either

* a **Python callable** ``expander(form, env, ctx) -> new_form``: ``form`` is the whole call
  form ``(name arg...)`` *unevaluated*, ``env`` the env at the call, ``ctx`` the evaluation
  context. Raise ``SpellError`` (or any exception) to report a problem; the evaluator turns
  it into ``"Macro expansion of NAME failed: ..."``. The result is evaluated in place of the
  form, in the same env and tail position. An expander registered with ``pure=True`` (its
  output depends only on ``form``) has its expansion cached on the form object, so re-running
  a loop does not re-expand; or
* a **Spell function** (made by ``defmacro``): it is called with the unevaluated argument
  forms, and returns the new form.

``register_macro(table, name, expander, pure=False)`` adds one to a builtins table; the turn
machine uses it (or builds ``SpellMacro(f, name)`` itself) for ``!extend``, ``!call-now``...

``and``/``or`` are special forms in the evaluator (faster, and a ``def`` inside them threads
out like everywhere else) and ``case`` expands into nested ``if``s over a ``let``.
"""

from __future__ import annotations

from typing import Any, Callable

from .data import Builtin, Keyword, List, Map, SpellFn, SpellMacro, Symbol, Vector
from .errors import SpellError
from .evaluator import mark_pure

S = Symbol
IF = S("if")
DO = S("do")
LET = S("let")
DEF = S("def")
FN = S("fn")
QUOTE = S("quote")
COND = S("cond")
NIL_Q = S("nil?")
EQ = S("=")
KW_ELSE = Keyword("else")

Expander = Callable[[List, Any, Any], Any]
MACROS: dict[str, tuple[Expander, bool]] = {}


def register_macro(table: dict, name: str, expander: Expander, pure: bool = False) -> SpellMacro:
    """Add a Python-expander macro ``name`` to a builtins ``table`` (Symbol keys)."""
    if pure:
        mark_pure(expander)
    m = SpellMacro(expander, name)
    table[S(name)] = m
    return m


def macro(*names: str, pure: bool = True) -> Callable[[Expander], Expander]:
    def deco(f: Expander) -> Expander:
        for n in names:
            MACROS[n] = (f, pure)
        return f
    return deco


def core_macros() -> dict:
    table: dict = {}
    for name, (f, pure) in MACROS.items():
        register_macro(table, name, f, pure)
    return table


def _fail(msg: str) -> SpellError:
    return SpellError(msg)


def _body(forms: Any) -> Any:
    """``(do forms...)`` without a ``do`` for a single form."""
    forms = tuple(forms)
    if len(forms) == 1:
        return forms[0]
    return List((DO, *forms))


# --- control ------------------------------------------------------------------------------

@macro("when")
def _when(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise _fail("when expects a test")
    return List((IF, form[1], _body(form[2:]) if len(form) > 2 else None))


@macro("when-not")
def _when_not(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise _fail("when-not expects a test")
    return List((IF, form[1], None, _body(form[2:]) if len(form) > 2 else None))


@macro("if-not")
def _if_not(form: List, env: Any, ctx: Any) -> Any:
    if len(form) not in (3, 4):
        raise _fail("if-not expects (if-not test then [else])")
    return List((IF, form[1], form[3] if len(form) == 4 else None, form[2]))


@macro("cond")
def _cond(form: List, env: Any, ctx: Any) -> Any:
    clauses = form[1:]
    if len(clauses) % 2:
        raise _fail("cond requires an even number of forms")
    out: Any = None
    for i in range(len(clauses) - 2, -1, -2):
        out = List((IF, clauses[i], clauses[i + 1], out))
    return out


_V = S("case__v")
_NO_MATCH = S("%no-matching-clause")
_CONTAINS = S("%case-in")


@macro("case")
def _case(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise _fail("case expects an expression")
    clauses = list(form[2:])
    if len(clauses) % 2:
        default: Any = clauses.pop()
    else:
        default = List((_NO_MATCH, _V))
    out = default
    for i in range(len(clauses) - 2, -1, -2):
        test, expr = clauses[i], clauses[i + 1]
        if isinstance(test, List):  # (a b c) groups several constants
            check: Any = List((_CONTAINS, _V, List((QUOTE, Vector(test)))))
        else:
            check = List((EQ, _V, List((QUOTE, test))))
        out = List((IF, check, expr, out))
    return List((LET, Vector((_V, form[1])), out))


@macro("condp")
def _condp(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 3:
        raise _fail("condp expects a predicate and an expression")
    p, e = S("condp__p"), S("condp__e")
    clauses = list(form[3:])
    default: Any = List((_NO_MATCH, e)) if len(clauses) % 2 == 0 else clauses.pop()
    out = default
    for i in range(len(clauses) - 2, -1, -2):
        out = List((IF, List((p, clauses[i], e)), clauses[i + 1], out))
    return List((LET, Vector((p, form[1], e, form[2])), out))


def _binding_pair(form: List, what: str) -> tuple[Any, Any]:
    if len(form) < 3 or not isinstance(form[1], Vector) or len(form[1]) != 2:
        raise _fail(f"{what} expects a binding vector with exactly one binding and a body")
    return form[1][0], form[1][1]


def _if_let_like(form: List, what: str, test_some: bool, when: bool) -> Any:
    pat, expr = _binding_pair(form, what)
    t = S(f"{what}__v")
    if when:
        then, other = _body(form[2:]), None
    else:
        if len(form) not in (3, 4):
            raise _fail(f"{what} expects (… [binding] then [else])")
        then, other = form[2], form[3] if len(form) == 4 else None
    test: Any = List((S("some?"), t)) if test_some else t
    return List((LET, Vector((t, expr)), List((IF, test, List((LET, Vector((pat, t)), then)),
                                                other))))


@macro("if-let")
def _if_let(form: List, env: Any, ctx: Any) -> Any:
    return _if_let_like(form, "if-let", False, False)


@macro("when-let")
def _when_let(form: List, env: Any, ctx: Any) -> Any:
    return _if_let_like(form, "when-let", False, True)


@macro("if-some")
def _if_some(form: List, env: Any, ctx: Any) -> Any:
    return _if_let_like(form, "if-some", True, False)


@macro("when-some")
def _when_some(form: List, env: Any, ctx: Any) -> Any:
    return _if_let_like(form, "when-some", True, True)


@macro("when-first")
def _when_first(form: List, env: Any, ctx: Any) -> Any:
    pat, expr = _binding_pair(form, "when-first")
    t = S("when-first__v")
    return List((LET, Vector((t, List((S("seq"), expr)))),
                 List((IF, t, List((LET, Vector((pat, List((S("first"), t)))), _body(form[2:]))),
                       None))))


# --- threading ----------------------------------------------------------------------------

def _thread(x: Any, step: Any, last: bool) -> Any:
    if isinstance(step, List) and step:
        if last:
            return List((*step, x))
        return List((step[0], x, *step[1:]))
    return List((step, x))


@macro("->")
def _thread_first(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise _fail("-> expects an expression")
    x = form[1]
    for step in form[2:]:
        x = _thread(x, step, False)
    return x


@macro("->>")
def _thread_last(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 2:
        raise _fail("->> expects an expression")
    x = form[1]
    for step in form[2:]:
        x = _thread(x, step, True)
    return x


@macro("as->")
def _as_thread(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 3 or not isinstance(form[2], Symbol):
        raise _fail("as-> expects an expression and a name")
    name = form[2]
    bindings: list = [name, form[1]]
    for step in form[3:]:
        bindings += [name, step]
    return List((LET, Vector(bindings), name))


def _cond_thread(form: List, last: bool, what: str) -> Any:
    if len(form) < 2 or (len(form) - 2) % 2:
        raise _fail(f"{what} expects an expression and test/form pairs")
    g = S(f"{what}__v")
    bindings: list = [g, form[1]]
    for i in range(2, len(form), 2):
        bindings += [g, List((IF, form[i], _thread(g, form[i + 1], last), g))]
    return List((LET, Vector(bindings), g))


@macro("cond->")
def _cond_first(form: List, env: Any, ctx: Any) -> Any:
    return _cond_thread(form, False, "cond->")


@macro("cond->>")
def _cond_last(form: List, env: Any, ctx: Any) -> Any:
    return _cond_thread(form, True, "cond->>")


def _some_thread(form: List, last: bool, what: str) -> Any:
    if len(form) < 2:
        raise _fail(f"{what} expects an expression")
    g = S(f"{what}__v")
    bindings: list = [g, form[1]]
    for step in form[2:]:
        bindings += [g, List((IF, List((NIL_Q, g)), None, _thread(g, step, last)))]
    return List((LET, Vector(bindings), g))


@macro("some->")
def _some_first(form: List, env: Any, ctx: Any) -> Any:
    return _some_thread(form, False, "some->")


@macro("some->>")
def _some_last(form: List, env: Any, ctx: Any) -> Any:
    return _some_thread(form, True, "some->>")


@macro("doto")
def _doto(form: List, env: Any, ctx: Any) -> Any:
    raise _fail("doto is not supported in Spell (there are no mutable objects)")


# --- definitions --------------------------------------------------------------------------

def _fn_tail(parts: tuple, what: str) -> tuple:
    """Strip an optional docstring and attribute map before the params / arity lists."""
    parts = tuple(parts)
    if parts and isinstance(parts[0], str) and len(parts) > 1:
        parts = parts[1:]
    if parts and isinstance(parts[0], Map) and len(parts) > 1:
        parts = parts[1:]
    if not parts or not isinstance(parts[0], (Vector, List)):
        raise _fail(f"{what} expects a parameter vector")
    return parts


@macro("defn", "defn-")
def _defn(form: List, env: Any, ctx: Any) -> Any:
    what = form[0].name
    if len(form) < 3 or not isinstance(form[1], Symbol):
        raise _fail(f"{what} expects a name and a parameter vector")
    return List((DEF, form[1], List((FN, *_fn_tail(form[2:], what)))))


@macro("define")
def _define(form: List, env: Any, ctx: Any) -> Any:
    if len(form) >= 2 and isinstance(form[1], List) and form[1] and isinstance(form[1][0], Symbol):
        # Scheme style (define (f x) body...)
        return List((DEF, form[1][0], List((FN, Vector(form[1][1:]), *form[2:]))))
    return List((DEF, *form[1:]))


_MAKE_MACRO = S("%make-macro")


@macro("defmacro")
def _defmacro(form: List, env: Any, ctx: Any) -> Any:
    if len(form) < 3 or not isinstance(form[1], Symbol):
        raise _fail("defmacro expects a name and a parameter vector")
    fn = List((FN, *_fn_tail(form[2:], "defmacro")))
    return List((DEF, form[1], List((_MAKE_MACRO, fn, List((QUOTE, form[1]))))))


def make_macro(f: Any, name: Any = None) -> SpellMacro:
    """``%make-macro``: a Spell function becomes a macro's expander."""
    if not isinstance(f, (SpellFn, Builtin)):
        raise SpellError("defmacro expects a function")
    return SpellMacro(f, name.full if isinstance(name, Symbol) else name)


@macro("comment")
def _comment(form: List, env: Any, ctx: Any) -> Any:
    return None


@macro("future")
def _future(form: List, env: Any, ctx: Any) -> Any:
    return List((S("future*"), List((FN, Vector(), *form[1:]))))


_AWAIT = Symbol("await", "blocking")


def expand_plet(form: List, env: Any, ctx: Any) -> Any:
    """``(blocking/plet [a e1 b e2] body...)``: every ``ei`` starts as a future first, then
    each name is bound to its awaited value, so the expressions run concurrently and none of
    them sees another's name. Bound in ``blocking/`` (``effects/blocking.py``), not a core
    macro: it exists only inside futures."""
    if len(form) < 2 or not isinstance(form[1], Vector) or len(form[1]) % 2:
        raise _fail("blocking/plet expects a binding vector of name-expression pairs, then a body")
    pairs = [(form[1][i], form[1][i + 1]) for i in range(0, len(form[1]), 2)]
    started = [Symbol(f"%plet-{i}") for i in range(len(pairs))]
    bindings: list = []
    for slot, (_, expr) in zip(started, pairs):
        bindings += [slot, List((S("future"), expr))]
    for slot, (name, _) in zip(started, pairs):
        bindings += [name, List((_AWAIT, slot))]
    return List((LET, Vector(bindings), *form[2:]))


mark_pure(expand_plet)


# --- context / turn markers ---------------------------------------------------------------

def _think_body(rest: Any) -> Any:
    if not rest:
        return None
    return List((DO, *rest, None))


@macro("think")
def _think(form: List, env: Any, ctx: Any) -> Any:
    # (think label body...): the label is dropped, never evaluated.
    return _think_body(form[2:])


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@macro("rethink")
def _rethink(form: List, env: Any, ctx: Any) -> Any:
    rest = form[1:]
    if rest and _is_int(rest[0]):
        rest = rest[1:]
    return _think_body(rest[1:])


@macro("prune")
def _prune(form: List, env: Any, ctx: Any) -> Any:
    if len(form) == 1 or (len(form) == 2 and _is_int(form[1]) and form[1] >= 0):
        return None
    raise _fail("prune expects (prune) or (prune k) with a non-negative integer k")


@macro("first-line")
def _first_line(form: List, env: Any, ctx: Any) -> Any:
    if len(form) != 3 or not isinstance(form[2], Vector):
        raise _fail("first-line expects a vector literal")
    if not _is_int(form[1]):
        raise _fail("first-line expects a line number")
    v = Vector(form[2])
    v.first_line = form[1]  # type: ignore[attr-defined]
    return List((QUOTE, v))


MACRO_DOCS = {
    "when": "(when test body...): body when test is truthy, else nil",
    "when-not": "(when-not test body...)",
    "if-not": "(if-not test then [else])",
    "cond": "(cond t1 e1 t2 e2 ... :else e): first expression whose test is truthy",
    "case": "(case x c1 r1 (c2 c3) r2 [default]): constant dispatch; no match and no default "
            "throws",
    "condp": "(condp pred x c1 r1 ... [default]): first ci with (pred ci x) truthy",
    "if-let": "(if-let [x expr] then [else])",
    "when-let": "(when-let [x expr] body...)",
    "if-some": "(if-some [x expr] then [else]): like if-let but only nil fails",
    "when-some": "(when-some [x expr] body...)",
    "when-first": "(when-first [x coll] body...)",
    "->": "(-> x (f a) g): thread x as the first argument",
    "->>": "(->> x (f a) g): thread x as the last argument",
    "as->": "(as-> x name form...): thread through name",
    "cond->": "(cond-> x test form ...): thread through the forms whose test holds",
    "cond->>": "(cond->> x test form ...)",
    "some->": "(some-> x form ...): thread while the value is not nil",
    "some->>": "(some->> x form ...)",
    "defn": "(defn name [params] body...): define a function",
    "defn-": "same as defn",
    "define": "(define name value) = def; (define (f x) body...) defines a function",
    "defmacro": "(defmacro name [params] body...): a macro; the body returns the form to "
                "evaluate",
    "comment": "(comment ...): ignored, nil",
    "future": "(future body...): evaluate body concurrently, in a thread; the value is a future "
              "for blocking/await (inside futures) or !ask-await",
    "think": "(think label body...): body evaluated, result nil; the label is never evaluated",
    "rethink": "(rethink [k] label body...): like think; at edit time replaces the last k forms",
    "prune": "(prune [k]): nil; at edit time removes the previous k forms",
    "first-line": "(first-line n [lines...]): a vector of lines numbered from n",
    "doto": "not supported (no mutable objects)",
}
