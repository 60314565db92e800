"""``(expand form)``: close a quoted form over the caller's environment.

The reference's ``expand`` special form (pinned by its ``eval_test.clj``) returns the form
with every *free* symbol that the current env binds replaced by its value, written as source
(``edits.quote_value``: numbers and strings bare, lists and symbols quoted, a function as its
``(fn ...)`` form). The result can be evaluated anywhere, which is how a program hands a
thunk to a fresh context.

What is not free is left alone, as the evaluator would scope it:

* ``quote`` bodies; qualified symbols (``strings/trim``); symbols the env does not bind;
* names bound inside the form: ``let``/``loop``/``for`` bindings and ``fn`` params (with
  destructuring) for their bodies, the ``catch`` name for its handler, the ``quine`` name;
* a name ``def``'d inside the form, from that ``def`` on (env threading: ``(do (def y (+ x
  1)) (def x 10) (+ x y))`` closes only the first ``x``).

Macro calls are expanded first (``define`` becomes ``def``, ``future`` becomes ``future*``,
user macros their expansion), unless the macro's name is bound inside the form.
"""

from __future__ import annotations

from typing import Any, Callable

from .data import Keyword, List, Map, Set, SpellMacro, Symbol, Vector
from .destructure import pattern_symbols
from .edits import quote_value

Shadow = frozenset
Lookup = Callable[[Symbol], Any]      # the value a symbol resolves to, or MISSING
Macroexpand = Callable[[List], Any]   # one macro expansion step of a form

MISSING = object()
_BINDING_FORMS = frozenset(("let", "let*", "loop", "loop*"))
_FN_FORMS = frozenset(("fn", "fn*"))


class Expander:
    """One ``expand`` call: ``env_value(sym)`` reads the env (MISSING when unbound),
    ``macro_of(sym)`` says whether a head names a macro, ``expand_1`` expands a macro call."""

    def __init__(self, env_value: Lookup, macro_of: Lookup, expand_1: Macroexpand):
        self.env_value = env_value
        self.macro_of = macro_of
        self.expand_1 = expand_1

    def expand(self, form: Any) -> Any:
        return self._walk(form, Shadow())[0]

    # Each step returns (new form, names shadowed for the forms after it).
    def _walk(self, form: Any, shadow: Shadow) -> tuple[Any, Shadow]:
        t = type(form)
        if t is Symbol:
            if form.ns is None and form not in shadow:
                v = self.env_value(form)
                if v is not MISSING:
                    return quote_value(v), shadow
            return form, shadow
        if t is List:
            return self._walk_list(form, shadow)
        if t is Vector:
            items, shadow = self._walk_seq(form, shadow)
            return Vector(items), shadow
        if t is Map:
            m = Map()
            for k, v in form.items():
                k2, shadow = self._walk(k, shadow)
                v2, shadow = self._walk(v, shadow)
                dict.__setitem__(m, k2, v2)
            return m, shadow
        if isinstance(form, Set):
            items, shadow = self._walk_seq(form, shadow)
            return Set(items), shadow
        return form, shadow

    def _walk_seq(self, items: Any, shadow: Shadow) -> tuple[list, Shadow]:
        out = []
        for x in items:
            x2, shadow = self._walk(x, shadow)
            out.append(x2)
        return out, shadow

    def _walk_list(self, form: List, shadow: Shadow) -> tuple[Any, Shadow]:
        if not form:
            return form, shadow
        head = form[0]
        if type(head) is Symbol and head.ns is None and head not in shadow:
            name = head.name
            if name == "quote":
                return form, shadow
            if isinstance(self.macro_of(head), SpellMacro):
                expanded = self.expand_1(form)
                if expanded is not form:
                    return self._walk(expanded, shadow)
            if name in ("def", "persist") and len(form) >= 2 and type(form[1]) is Symbol:
                rest, after = self._walk_seq(form[2:], shadow)
                return List((head, form[1], *rest)), after | {form[1]}
            if name in _BINDING_FORMS and len(form) >= 2 and type(form[1]) is Vector:
                bindings, inner = self._bindings(form[1], shadow)
                body, _ = self._walk_seq(form[2:], inner)
                return List((head, bindings, *body)), shadow
            if name == "for" and len(form) >= 2 and type(form[1]) is Vector:
                return self._for(form, shadow), shadow
            if name in _FN_FORMS:
                return self._fn(form, shadow), shadow
            if name == "try":
                return self._try(form, shadow)
            if name == "quine" and len(form) >= 2 and type(form[1]) is Symbol:
                body, _ = self._walk_seq(form[2:], shadow | {form[1]})
                return List((head, form[1], *body)), shadow
        items, shadow = self._walk_seq(form, shadow)
        return List(items), shadow

    def _bindings(self, bvec: Vector, shadow: Shadow) -> tuple[Vector, Shadow]:
        out = []
        for i in range(0, len(bvec) - 1, 2):
            pat, init = bvec[i], bvec[i + 1]
            init2, _ = self._walk(init, shadow)
            out += [pat, init2]
            shadow = shadow | set(pattern_symbols(pat))
        if len(bvec) % 2:
            out.append(bvec[-1])
        return Vector(out), shadow

    def _for(self, form: List, shadow: Shadow) -> List:
        spec = form[1]
        out = []
        inner = shadow
        i = 0
        while i + 1 < len(spec):
            k, v = spec[i], spec[i + 1]
            if type(k) is Keyword and k.name == "let" and type(v) is Vector:
                v2, inner = self._bindings(v, inner)
            elif type(k) is Keyword:
                v2, _ = self._walk(v, inner)  # :when / :while
            else:
                v2, _ = self._walk(v, inner)
                inner = inner | set(pattern_symbols(k))
            out += [k, v2]
            i += 2
        body, _ = self._walk_seq(form[2:], inner)
        return List((form[0], Vector(out), *body))

    def _fn(self, form: List, shadow: Shadow) -> List:
        i = 1
        inner = shadow
        parts: list = [form[0]]
        if i < len(form) and type(form[i]) is Symbol:
            inner = inner | {form[i]}
            parts.append(form[i])
            i += 1
        if i < len(form) and type(form[i]) is Vector:
            params = form[i]
            body, _ = self._walk_seq(form[i + 1:], inner | set(pattern_symbols(params)))
            return List((*parts, params, *body))
        for arity in form[i:]:  # multi-arity: (fn ([x] ...) ([x y] ...))
            if type(arity) is List and arity and type(arity[0]) is Vector:
                body, _ = self._walk_seq(arity[1:], inner | set(pattern_symbols(arity[0])))
                parts.append(List((arity[0], *body)))
            else:
                parts.append(self._walk(arity, inner)[0])
        return List(parts)

    def _try(self, form: List, shadow: Shadow) -> tuple[List, Shadow]:
        parts: list = [form[0]]
        for x in form[1:]:
            if type(x) is List and x and x[0] == Symbol("catch") and len(x) >= 2:
                k = 2 if len(x) >= 3 and type(x[1]) is Symbol and type(x[2]) is Symbol \
                    and x[1].name[:1].isupper() else 1
                body, _ = self._walk_seq(x[k + 1:], shadow | {x[k]})
                parts.append(List((*x[:k + 1], *body)))
            else:
                x2, shadow = self._walk(x, shadow)
                parts.append(x2)
        return List(parts), shadow
