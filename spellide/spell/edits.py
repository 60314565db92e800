"""Edit time: what happens to a program between one turn and the next.

Before the next prefix is printed, edit markers are applied (``prune``, ``rethink``,
``persist``), the quine is re-opened as prefix text, and values that a turn injects into the
program (``!call-now``, ``!peek``, ``!print``) are rendered into source: inline when small,
truncated or replaced by a ``(stored "id")`` reference when large. The stored values live in a
per-run ``ValueStore`` so references stay meaningful across the run and are isolated between
runs.
"""

from __future__ import annotations

import copy
import operator
from functools import lru_cache
from itertools import accumulate, islice, repeat
from operator import add, is_
from typing import Any, Iterator, Optional, Sequence

from .analysis import head_name as _head
from .data import (Keyword, List, Map, Set, SourceLines, Span, SpellFn, StoredRef, Symbol, Vector,
                   is_number)
from .errors import ReadError, SpellError
from .printer import pr_str
from .reader import read_one

QUOTE = Symbol("quote")
THINK = Symbol("think")
QUOTE = Symbol("quote")
THINK = Symbol("think")
#: The edit markers (spell-language.md 5.4): words a program writes to change itself at the
#: next edit time, and ``think``, the note a ``rethink`` leaves. Tools that colour or explain
#: programs take the words from here.
MARKERS = ("prune", "rethink", "persist")
_OPAQUE = {"quote", "fn", "fn*"}
DEFAULT_INLINE_LIMIT = 10_000


@lru_cache(maxsize=4096)
def _unprintable_name(x: Any) -> bool:
    """A symbol or keyword whose printed form does not read back as itself (``(symbol "a
    b")``, ``(symbol "nil")``, ``(keyword "a b")``)."""
    from .reader import read_one
    try:
        return read_one(pr_str(x)) != x
    except SpellError:
        return True


def _has_unprintable_name(v: Any) -> bool:
    if isinstance(v, (Symbol, Keyword)):
        return _unprintable_name(v)
    if isinstance(v, (Vector, List, Set)):
        return any(_has_unprintable_name(x) for x in v)
    if isinstance(v, Map):
        return any(_has_unprintable_name(k) or _has_unprintable_name(x) for k, x in v.items())
    return False


def _construct(v: Any) -> Any:
    """Source that builds ``v`` when quoting it would not read back: names through
    ``symbol``/``keyword``, collections element by element."""
    if isinstance(v, (Symbol, Keyword)):
        if not _unprintable_name(v):
            return quote_value(v)
        ctor = Symbol("symbol" if isinstance(v, Symbol) else "keyword")
        return List((ctor, v.name) if v.ns is None else (ctor, v.ns, v.name))
    if isinstance(v, Vector):
        return Vector(_construct(x) for x in v)
    if isinstance(v, List):
        return List((Symbol("list"), *(_construct(x) for x in v)))
    if isinstance(v, Set):
        return Set(_construct(x) for x in v)
    if isinstance(v, Map):
        m = Map()
        for k, x in v.items():
            dict.__setitem__(m, _construct(k), _construct(x))
        return m
    return quote_value(v)


def quote_value(v: Any) -> Any:
    """The source form that evaluates back to ``v`` (also when it holds a symbol or keyword
    that does not print readably: then it is built with ``symbol``/``keyword``)."""
    if v is None or isinstance(v, (bool, str)) or is_number(v):
        return v
    if isinstance(v, (Symbol, Keyword, Vector, List, Set, Map)) and _has_unprintable_name(v):
        return _construct(v)
    if isinstance(v, Keyword):
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


class EditTrace:
    """What edit time did to one program, recorded while the markers are applied.

    The program is ``base`` (the form the edits were applied to, with the spans it was read
    with); positions are paths of child indices into it (``()`` is ``base`` itself). For each
    list whose children were processed, ``origins[path]`` says where each child of the edited
    list came from: an old child index, or ``("think", i)`` for the ``(think ...)`` that the
    ``rethink`` at index ``i`` left; ``removed[path]`` maps each old child index that a marker
    took out to ``(marker word, the marker's index)``, the marker itself included.
    ``rewritten`` holds the paths of forms rewritten in place (``persist``) and ``touched``
    every path at or under which something changed. ``result`` is the edited program;
    ``added`` lists the forms appended to its body after the markers ran, with who added them
    (``!call-now``, ``!peek``, ``!print``).

    The IDE's diff and tree render this instead of knowing what the markers do
    (``program_trace.trace_program`` turns it into a report about two program texts).
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.origins: dict[tuple, Sequence] = {}   # a list, or a range when all were kept
        self.removed: dict[tuple, dict[int, tuple[str, int]]] = {}
        self.rewritten: set[tuple] = set()
        self.touched: set[tuple] = set()
        self.added: list[tuple[str, Any]] = []
        self.result: Any = None

    def adding(self, by: str, forms: list) -> "EditTrace":
        """This trace, with ``forms`` appended to the body by ``by`` (a copy: the edited
        program it came with is unchanged)."""
        out = copy.copy(self)
        out.added = [*self.added, *((by, f) for f in forms)]
        return out

    def _touch(self, path: tuple) -> None:
        for i in range(len(path) + 1):
            self.touched.add(path[:i])


def _process_siblings(items: list, trace: Optional[EditTrace] = None, path: tuple = ()) -> list:
    """Apply ``prune`` and ``rethink`` among siblings (``items`` are a list's children after
    its head, so item ``i`` is child ``i + 1``)."""
    acc: list = []
    origin: list = []
    removed: dict[int, tuple[str, int]] = {}
    for i, x in enumerate(items, 1):
        head = _head(x)
        if head == "prune":
            k = _prune_count(x)
            if k is not None:
                cut = max(0, len(acc) - k)
                _note_removed(removed, origin[cut:], "prune", i)
                removed[i] = ("prune", i)
                del acc[cut:], origin[cut:]
                continue
        elif head == "rethink" and len(x) >= 2:
            k, rest = 1, list(x[1:])
            if isinstance(rest[0], int) and not isinstance(rest[0], bool):
                k, rest = rest[0], rest[1:]
            cut = max(0, len(acc) - k)
            _note_removed(removed, origin[cut:], "rethink", i)
            del acc[cut:], origin[cut:]
            acc.append(List((THINK, *rest)))
            origin.append(("think", i))
            continue
        acc.append(x)
        origin.append(i)
    if trace is not None:
        if len(path) < _TRACE_DEPTH:
            trace.origins[path] = origin
            if removed:
                trace.removed[path] = removed
        if removed:
            trace._touch(path)
    return acc


def _note_removed(removed: dict, victims: list, word: str, marker: int) -> None:
    """Victims are old child indices, or the ``think`` of an earlier rethink (its marker)."""
    for v in victims:
        removed[v[1] if isinstance(v, tuple) else v] = (word, marker)


_TRACE_DEPTH = 3   # the quine, its (eval ...), its (do ...): levels traced form by form


def _known(forms: Any, name: str) -> list:
    """The ``name`` attribute of each form, None where it has none: one C-level pass, so
    that a long body whose forms are all known costs next to nothing to look at."""
    return list(map(getattr, forms, repeat(name), repeat(None)))


def _gaps(values: list) -> Iterator[int]:
    """The indexes of the Nones in ``values`` (found by C-level scans)."""
    i = -1
    while True:
        try:
            i = values.index(None, i + 1)
        except ValueError:
            return
        yield i


# What apply_edits does to a form, kept on collections as ``_edits``: nothing whatever the
# environment (_FREE), nothing to the form itself but it is a prune/rethink that changes its
# siblings (_MARKER), or something (_EDITED).
_FREE, _MARKER, _EDITED = 0, 1, 2


def _edit_code(form: Any) -> int:
    """``_FREE`` when ``apply_edits`` gives ``form`` back unchanged whatever the environment:
    no ``prune``/``rethink`` among the siblings of any list in it and no ``persist`` outside
    quotes and functions. Forms are immutable, so the answer is kept on the form; a program
    carried from step to step then costs one C-level pass over its top-level forms, not a
    walk."""
    t = type(form)
    if t is not List and t is not Vector and t is not Map and t is not Set:
        return _FREE
    known = getattr(form, "_edits", None)
    if known is not None:
        return known
    code = _FREE
    if t is List:
        head = _head(form)
        if not form or head in _OPAQUE:
            pass
        elif head == "persist" and len(form) in (2, 3) and isinstance(form[1], Symbol):
            code = _EDITED
        else:
            tail = form[1 + getattr(form, "_free_prefix", 0):]   # those are known _FREE
            codes = _known(tail, "_edits")
            for i in _gaps(codes):
                codes[i] = _edit_code(tail[i])
            if _edit_code(form[0]) == _EDITED or _EDITED in codes or _MARKER in codes:
                code = _EDITED
        if code == _FREE and ((head == "prune" and _prune_count(form) is not None)
                              or (head == "rethink" and len(form) >= 2)):
            code = _MARKER
    elif t is Map:
        if any(_edit_code(k) == _EDITED or _edit_code(v) == _EDITED for k, v in form.items()):
            code = _EDITED
    elif any(_edit_code(x) == _EDITED for x in form):
        code = _EDITED
    if t is not Set:  # Set has slots; sets are rare in programs
        form._edits = code  # type: ignore[union-attr]
    return code


def apply_edits(form: Any, env: Any, trace: Optional[EditTrace] = None, path: tuple = ()) -> Any:
    """One walk that applies every edit marker (spell-language.md section 5.4).

    A form in which no marker ran comes back as the same object (with its spans), so an
    unchanged part of a program is not rebuilt, and whether a form needs the walk at all is
    kept on it (``_edit_code``). With a ``trace``, what each marker did is recorded in it
    (``path`` is ``form``'s place); below the body's forms, a change is only noted on the body
    form that contains it."""
    if trace is not None:
        if len(path) >= _TRACE_DEPTH:
            out = apply_edits(form, env)
            if out is not form:
                if _head(form) == "persist":
                    trace.rewritten.add(path)
                trace._touch(path)
            return out
        if isinstance(form, List) and form and _head(form) not in _OPAQUE and _head(form) != "persist":
            if len(path) == _TRACE_DEPTH - 1 and _edit_code(form) == _FREE:
                # no marker anywhere in it (known from the last step): each form is its own
                # origin, as the walk below would find one form at a time
                trace.origins[path] = range(1, len(form))
                return form
            new_head = apply_edits(form[0], env, trace, path + (0,))
            tail = _process_siblings([apply_edits(x, env, trace, path + (i,))
                                      for i, x in enumerate(form[1:], 1)], trace, path)
            return _same_or(form, new_head, tail)
    if _edit_code(form) != _EDITED:
        return form
    if isinstance(form, List):
        head = _head(form)
        if head == "persist" and len(form) in (2, 3) and isinstance(form[1], Symbol):
            name = form[1]
            if env is not None and name in env:
                if trace is not None:
                    trace.rewritten.add(path)
                    trace._touch(path)
                return List((form[0], name, quote_value(env[name])))
            return form
        new_head = apply_edits(form[0], env)
        return _same_or(form, new_head, _process_siblings([apply_edits(x, env) for x in form[1:]]))
    if isinstance(form, Vector):
        items = [apply_edits(x, env, trace, path + (i,)) if trace is not None else apply_edits(x, env)
                 for i, x in enumerate(form)]
        if all(map(operator.is_, items, form)):
            return form
        out = Vector(items)
        if getattr(form, "first_line", None) is not None:
            out.first_line = form.first_line  # type: ignore[attr-defined]
        return out
    if isinstance(form, Map):
        pairs = [(apply_edits(k, env), apply_edits(v, env)) for k, v in form.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, form.items())):
            return form
        m = Map()
        for k, v in pairs:
            dict.__setitem__(m, k, v)
        return m
    if isinstance(form, Set):
        items = [apply_edits(x, env) for x in form]
        if all(map(operator.is_, items, form)):
            return form
        return Set(items)
    return form


def _same_or(form: List, head: Any, tail: list) -> List:
    """``form`` itself when neither its head nor any child changed, else the rebuilt list."""
    if head is form[0] and len(tail) == len(form) - 1 and all(map(operator.is_, tail, form[1:])):
        return form
    return List((head, *tail))


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


def append_to_body(quine: List, forms: list, by: str = "edit time") -> List:
    """The quine with ``forms`` appended to its body; an edited quine's trace goes with it,
    noting that ``by`` added them."""
    out = with_body(quine, [*quine_body(quine)[1:], *forms])
    trace = getattr(quine, "edit_trace", None)
    if trace is not None:
        out.edit_trace = trace.adding(by, forms)  # type: ignore[attr-defined]
    return out


class PrefixCarry:
    """A quine prefix together with what reading it gives: the three lists it leaves open
    (``quine``, ``eval``, ``do``) with the forms read into each and their spans. The next
    program is this text plus a completion; handing these to ``read_continuation`` reads
    only the completion (``assembly.assemble(..., carry=)``). ``head`` is the text up to the
    body forms and ``ends`` where each body form ends, for the next step's carry."""

    __slots__ = ("text", "open_lists", "head", "ends", "free")

    def __init__(self, text: str, open_lists: tuple, head: str, ends: list, free: int = 0):
        self.free = free   # how many leading body forms apply_edits leaves alone (_FREE)
        self.text = text
        self.open_lists = open_lists
        self.head = head
        self.ends = ends


# Types whose printed text always reads back as an equal value of the same type.
_EXACT_ATOMS = (str, int, bool, type(None))


def _carried_form(form: Any) -> Optional[tuple[Any, str]]:
    """The form that reading ``pr_str(form)`` in the prefix gives, and that text; None when
    the text would not read back stably (then the prefix is not carried at all).

    A collection is read back once, from its printed text wrapped in the three lists a
    prefix opens (so the reader's depth limit applies as in the whole text); the copy read,
    whose text prints the same, is marked with that text and carried from then on, so later
    steps neither print nor read it again. Anything else is printed each time (top-level
    atoms are rare), and read back unless its type prints exactly."""
    text = getattr(form, "_printed", None)
    if text is not None:
        return form, text
    text = pr_str(form)
    if type(form) in _EXACT_ATOMS:
        return form, text
    try:
        wrapped = read_one("(((" + text + ")))")
    except ReadError:
        return None
    if len(wrapped) != 1 or len(wrapped[0]) != 1 or len(wrapped[0][0]) != 1:
        return None
    copy = wrapped[0][0][0]
    if type(copy) in (List, Vector, Map):
        if pr_str(copy) != text:
            return None
        copy._printed = text  # type: ignore[union-attr]
    elif pr_str(copy) != text:
        return None
    return copy, text


def carry_quine_prefix(quine: Any, previous: Optional[PrefixCarry] = None
                       ) -> tuple[str, Optional[PrefixCarry]]:
    """The open prefix text of a quine (``serialize_quine_prefix``) and, when every form in
    it reads back stably, the ``PrefixCarry`` that lets the next program skip re-reading it.

    ``previous`` is the carry of the step before: the leading body forms that are the same
    objects as there keep their text, place and spans, so a step costs a C-level pass over
    the body plus the work for what changed after them (usually the forms just added)."""
    body = quine_body(quine)
    head_parts = ["(quine "]
    head_items: list = [Symbol("quine")]
    head_offsets: list = [(1, 6)]
    pos = 7
    for part in quine[1:-1]:
        got = _carried_form(part)
        if got is None:
            return _plain_prefix(quine), None
        head_items.append(got[0])
        head_parts.append(got[1] + " ")
        head_offsets.append((pos, pos + len(got[1])))
        pos += len(got[1]) + 1
    eval_at = pos
    head_parts.append("(eval (do ")
    head = "".join(head_parts)
    reuse = 0
    if previous is not None and previous.head == head:
        old_items, old_spans = previous.open_lists[2][:2]
        same = list(map(is_, islice(body, 1, None), islice(old_items, 1, None)))
        reuse = same.index(False) if False in same else len(same)
    if reuse:
        cut = previous.ends[reuse - 1] + 1  # type: ignore[union-attr]
        kept = previous.text[:cut]  # type: ignore[union-attr]
        items, spans = old_items[:reuse + 1], old_spans[:reuse + 1]
        ends = previous.ends[:reuse]  # type: ignore[union-attr]
    else:
        cut, kept, items, spans, ends = len(head), head, [Symbol("do")], [], []
    rest = body[1 + reuse:]
    texts = _known(rest, "_printed")
    new_items = list(rest)
    for i in _gaps(texts):
        got = _carried_form(rest[i])
        if got is None:
            return _plain_prefix(quine), None
        new_items[i], texts[i] = got
    text = kept + " ".join(texts) + " " if texts else kept
    lines = SourceLines(text)
    lens = list(map(len, texts))
    # each form starts one space after the one before it ends
    starts = list(accumulate(map((1).__add__, lens[:-1]), initial=cut)) if lens else []
    new_ends = list(map(add, starts, lens))
    if not reuse:
        spans = [Span.of(lines, eval_at + 7, eval_at + 9)]
    spans += map(Span.of, repeat(lines), starts, new_ends)
    items += new_items
    quine_spans = [Span.of(lines, a, b) for a, b in head_offsets]
    free = min(previous.free, reuse) if reuse else 0   # leading body forms known _FREE
    while free < len(items) - 1 and _edit_code(items[free + 1]) == _FREE:
        free += 1
    open_lists = ((head_items, quine_spans, 0),
                  ([Symbol("eval")], [Span.of(lines, eval_at + 1, eval_at + 5)], eval_at),
                  (items, spans, eval_at + 6, {"_free_prefix": free}))
    ends += new_ends
    return text, PrefixCarry(text, open_lists, head, ends, free)


def _plain_prefix(quine: Any) -> str:
    """The prefix text printed form by form, for a quine that cannot be carried."""
    parts = ["(quine ", pr_str(quine[1]), " "]
    for inert in quine[2:-1]:
        parts.append(pr_str(inert))
        parts.append(" ")
    parts.append("(eval (do ")
    for f in quine_body(quine)[1:]:
        parts.append(pr_str(f))
        parts.append(" ")
    return "".join(parts)


def serialize_quine_prefix(quine: Any) -> str:
    """The open prefix text of a quine: no closers and a trailing space (section 5.5)."""
    return carry_quine_prefix(quine)[0]


def edit_reopen(quine: Any, env: Any) -> List:
    """Apply edits to the current program and return it, ready to be serialized as a prefix.
    The result carries the ``EditTrace`` of what the markers did (``edit_trace``)."""
    trace = EditTrace(quine)
    edited = apply_edits(quine, env, trace)
    quine_body(edited)
    if edited is quine:   # nothing changed: a copy carries the trace, not the program itself
        edited = List(quine).with_spans(quine.span, quine.spans)
    trace.result = edited
    edited.edit_trace = trace  # type: ignore[attr-defined]
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
    from .futures import futures_in
    if futures_in(value):   # a future prints unreadably on purpose: keep the object itself
        return quote_value(store.put(value))
    try:
        printed = pr_str(value)
    except Exception:
        return quote_value(store.put(value))
    try:
        if len(printed) <= limit:
            return quote_value(value)
        if isinstance(value, str):
            return deep_truncate(value, limit)
        truncated = deep_truncate(value, limit)
        if len(pr_str(truncated)) > 2 * limit:
            return quote_value(store.put(value))
        return quote_value(truncated)
    except RecursionError:
        # nested deeper than the walks above can go (each level is a Python frame): keep
        # the value whole in the store, as the reference does when its printer gives up
        return quote_value(store.put(value))
