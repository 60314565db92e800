"""Edit time: what happens to a program between one turn and the next.

Before the next prefix is printed, edit markers are applied (``prune``, ``rethink``,
``persist``), the quine is re-opened as prefix text, and values that a turn injects into the
program (``!call-now``, ``!peek``, ``!print``) are rendered into source: inline when small,
truncated or replaced by a ``(stored "id")`` reference when large. The stored values live in a
per-run ``ValueStore`` so references stay meaningful across the run and are isolated between
runs.
"""

from __future__ import annotations

from typing import Any, Optional

from .data import (Keyword, List, Map, Set, SpellFn, StoredRef, Symbol, Vector, is_number)
from .errors import SpellError
from .printer import pr_str

QUOTE = Symbol("quote")
THINK = Symbol("think")
#: The edit markers (spell-language.md 5.4): words a program writes to change itself at the
#: next edit time, and ``think``, the note a ``rethink`` leaves. Tools that colour or explain
#: programs take the words from here.
MARKERS = ("prune", "rethink", "persist")
_OPAQUE = {"quote", "fn", "fn*"}
DEFAULT_INLINE_LIMIT = 10_000


def _head(form: Any) -> Optional[str]:
    if isinstance(form, List) and form and isinstance(form[0], Symbol) and form[0].ns is None:
        return form[0].name
    return None


def quote_value(v: Any) -> Any:
    """The source form that evaluates back to ``v``."""
    if v is None or isinstance(v, (bool, str, Keyword)) or is_number(v):
        return v
    if isinstance(v, SpellFn):
        return v.form if v.form is not None else List((Symbol("fn"), v.params, *v.body))
    if isinstance(v, Vector) and getattr(v, "first_line", None) is not None:
        return List((Symbol("first-line"), v.first_line, Vector(v)))
    if isinstance(v, StoredRef):
        return List((Symbol("stored"), v.id))
    return List((QUOTE, v))


def _prune_count(form: List) -> Optional[int]:
    if len(form) == 1:
        return 1
    if len(form) == 2 and isinstance(form[1], int) and not isinstance(form[1], bool):
        return form[1]
    return None


def _process_siblings(items: list) -> list:
    acc: list = []
    for x in items:
        head = _head(x)
        if head == "prune":
            k = _prune_count(x)
            if k is not None:
                del acc[max(0, len(acc) - k):]
                continue
        elif head == "rethink" and len(x) >= 2:
            k, rest = 1, list(x[1:])
            if isinstance(rest[0], int) and not isinstance(rest[0], bool):
                k, rest = rest[0], rest[1:]
            del acc[max(0, len(acc) - k):]
            acc.append(List((THINK, *rest)))
            continue
        acc.append(x)
    return acc


def apply_edits(form: Any, env: Any) -> Any:
    """One walk that applies every edit marker (spell-language.md section 5.4)."""
    if isinstance(form, List):
        if not form:
            return form
        head = _head(form)
        if head in _OPAQUE:
            return form
        if head == "persist" and len(form) in (2, 3) and isinstance(form[1], Symbol):
            name = form[1]
            if env is not None and name in env:
                return List((form[0], name, quote_value(env[name])))
            return form
        new_head = apply_edits(form[0], env)
        tail = _process_siblings([apply_edits(x, env) for x in form[1:]])
        return List((new_head, *tail))
    if isinstance(form, Vector):
        out = Vector(apply_edits(x, env) for x in form)
        if getattr(form, "first_line", None) is not None:
            out.first_line = form.first_line  # type: ignore[attr-defined]
        return out
    if isinstance(form, Map):
        m = Map()
        for k, v in form.items():
            dict.__setitem__(m, apply_edits(k, env), apply_edits(v, env))
        return m
    if isinstance(form, Set):
        return Set(apply_edits(x, env) for x in form)
    return form


def _is_eval_do(form: Any) -> bool:
    return (isinstance(form, List) and len(form) == 2 and _head(form) == "eval"
            and _head(form[1]) == "do")


def is_quine(form: Any) -> bool:
    return _head(form) == "quine" and len(form) >= 3


def quine_body(quine: List) -> List:
    """The ``do`` form inside the quine's trailing ``(eval (do ...))``."""
    if not is_quine(quine) or not _is_eval_do(quine[-1]):
        raise SpellError("reopen expects quine tail of the form (eval (do ...))", form=quine)
    return quine[-1][1]


def with_body(quine: List, body_forms: list) -> List:
    """The quine with its trailing ``do`` body replaced."""
    quine_body(quine)
    tail = quine[-1]
    do = tail[1]
    return List((*quine[:-1], List((tail[0], List((do[0], *body_forms))))))


def append_to_body(quine: List, forms: list) -> List:
    return with_body(quine, [*quine_body(quine)[1:], *forms])


def serialize_quine_prefix(quine: Any) -> str:
    """The open prefix text of a quine: no closers and a trailing space (section 5.5)."""
    body = quine_body(quine)
    parts = ["(quine ", pr_str(quine[1]), " "]
    for inert in quine[2:-1]:
        parts.append(pr_str(inert))
        parts.append(" ")
    parts.append("(eval (do ")
    for f in body[1:]:
        parts.append(pr_str(f))
        parts.append(" ")
    return "".join(parts)


def edit_reopen(quine: Any, env: Any) -> List:
    """Apply edits to the current program and return it, ready to be serialized as a prefix."""
    edited = apply_edits(quine, env)
    quine_body(edited)
    return edited


def _self_evaluating(v: Any) -> bool:
    """True when ``v`` printed as a literal evaluates back to itself (no symbols or lists
    inside), so it can be written bare, as the reference writes received messages."""
    if v is None or isinstance(v, (bool, str, Keyword)) or is_number(v):
        return True
    if isinstance(v, (Vector, Set)):
        return all(_self_evaluating(x) for x in v)
    if isinstance(v, Map):
        return all(_self_evaluating(k) and _self_evaluating(x) for k, x in v.items())
    return False


def receive_message(program_text: str, name: str, message: Any) -> str:
    """The prefix an agent continues from when a message reaches it (section 5.9).

    Receipt is a transformation of the agent's latest program text, not a side channel: the
    program is reopened and the message is bound under ``name`` after a ``think`` note, followed
    by a fresh self-call. Whatever trailing action the agent had written becomes inert (no
    longer last), which is what "preempted" means. The coordinator that decides *when* to
    deliver belongs to the multi-agent layer; this is only the text transform it applies.
    """
    from .assembly import assemble

    _, program = assemble(program_text, "")
    added = [
        List((THINK, f"[preempted or awakened by {name}]")),
        List((Symbol("def"), Symbol(name), message if _self_evaluating(message) else quote_value(message))),
        List((QUOTE, List((Symbol("!llm-self"), List((Symbol("prune-and-reopen"), Symbol("completion"))))))),
    ]
    return serialize_quine_prefix(append_to_body(program, added))


def wrap_cat(*forms: Any) -> str:
    """A fresh context: ``(quine completion (eval (do f1 f2 ... `` with no old history."""
    return "(quine completion (eval (do " + "".join(pr_str(f) + " " for f in forms)


def wrap_prompt(text: str) -> str:
    """A plain-language prompt becomes the start of a program that quotes it."""
    return wrap_cat(List((Symbol("quine"), Symbol("prompt"), text)))


def build_init(prompt: str) -> str:
    """The root program for a natural-language prompt (section 5.2)."""
    return (f"(quine completion (eval (do (quine prompt {pr_str(prompt)}) "
            f"(quote (!extend)))))")


def expand_expr(form: Any, env: Any) -> Any:
    """Close a form over the caller's environment: bound free symbols become their quoted values."""
    if isinstance(form, Symbol):
        if env is not None and form in env:
            return quote_value(env[form])
        return form
    if isinstance(form, List):
        if _head(form) == "quote":
            return form
        return List(expand_expr(x, env) for x in form)
    if isinstance(form, Vector):
        return Vector(expand_expr(x, env) for x in form)
    if isinstance(form, Map):
        m = Map()
        for k, v in form.items():
            dict.__setitem__(m, expand_expr(k, env), expand_expr(v, env))
        return m
    return form


class ValueStore:
    """The per-run table behind ``(stored "id")``; ids are numbered in the order values are
    stored, so a replayed run produces the same ids."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._next = 1

    def put(self, value: Any) -> StoredRef:
        ref = StoredRef(f"ref-{self._next}")
        self._next += 1
        self._values[ref.id] = value
        return ref

    def get(self, ref_id: str) -> Any:
        try:
            return self._values[ref_id]
        except KeyError:
            raise SpellError(f"No stored value: {ref_id}") from None


def deep_truncate(value: Any, limit: int) -> Any:
    """Strings longer than ``limit`` inside a value are cut (a lossy copy)."""
    if isinstance(value, str):
        if len(value) > limit:
            return value[:limit] + f"\n... [truncated, {len(value)} chars total]"
        return value
    if isinstance(value, Vector):
        return Vector(deep_truncate(x, limit) for x in value)
    if isinstance(value, List):
        return List(deep_truncate(x, limit) for x in value)
    if isinstance(value, Map):
        m = Map()
        for k, v in value.items():
            dict.__setitem__(m, k, deep_truncate(v, limit))
        return m
    if isinstance(value, Set):
        return Set(deep_truncate(x, limit) for x in value)
    return value


def render_value(value: Any, store: ValueStore, limit: int = DEFAULT_INLINE_LIMIT) -> Any:
    """The source form that stands for an injected value (section 5.6).

    Small values are inlined (quoted when not self-evaluating); a long string becomes a
    truncated literal; other large values have their strings truncated, and if they are still
    more than twice the limit they are stored and referenced as ``(stored "ref-N")``.
    A negative limit always inlines.
    """
    if limit < 0:
        return quote_value(value)
    try:
        printed = pr_str(value)
    except Exception:
        return quote_value(store.put(value))
    if len(printed) <= limit:
        return quote_value(value)
    if isinstance(value, str):
        return deep_truncate(value, limit)
    truncated = deep_truncate(value, limit)
    if len(pr_str(truncated)) > 2 * limit:
        return quote_value(store.put(value))
    return quote_value(truncated)
