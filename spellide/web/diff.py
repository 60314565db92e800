"""What changed between two successive programs of a run, said in Spell's own terms.

A self-programming agent's program changes between turns in a few distinct ways, and a reader
needs to know which one happened, not just which characters moved:

* the model **appended** forms at the end of the ``do`` body (the normal extension);
* the runtime **injected** forms at edit time (``!call-now``/``!peek`` defs, ``!print`` values),
  recognisable because they sit in the *prefix* part of the new program yet are not in the old;
* an edit marker ran: ``(prune k)`` **removed** the k forms before it, ``(rethink k "..." ...)``
  **replaced** them by ``(think ...)``, ``(persist x expr)`` was **rewritten** to
  ``(persist x (quote value))``;
* a **human** edited the program at a pause point (provenance segments with source ``human``,
  plus the edit's author and time).

The structural diff works on the top-level forms of the quine's ``(eval (do ...))`` body (and,
separately, the quine's other arguments). It first replays the edit markers of the old body
symbolically (keeping track of which marker removed what), then aligns the result with the new
body using a sequence matcher over canonical printed forms.

The plain line diff uses the standard library's ``difflib``: it is always there, well tested,
and its ``SequenceMatcher`` is exactly the alignment needed; no third-party diff library would
add anything here. It compares one printed top-level form per line, not the raw texts, because
the runtime re-prints the program between turns (formatting and comments are not kept), so a
raw-text diff of a model's multi-line completion against the next one-line prefix would mark
everything as changed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from spellide.spell.api import List, Map, Set, SpellError, Symbol, Vector

from .program_tree import _preview

# Row kinds of the structural diff, with the words the page shows.
KEPT = "kept"                    # unchanged
APPENDED = "appended"            # new at the end, written by the model
INJECTED = "injected"            # new, put there by the runtime at edit time (!call-now, ...)
HUMAN = "human"                  # added or changed by a person
HUMAN_REMOVED = "human-removed"  # removed while a person edited this step
PRUNED = "pruned"                # removed by (prune k)
RETHOUGHT = "rethought"          # removed by (rethink k ...)
THINK = "think"                  # the (think ...) a rethink left in place
MARKER = "marker"                # the edit marker itself, consumed at edit time
PERSISTED = "persisted"          # (persist x expr) rewritten to (persist x (quote v))
EDITED_INSIDE = "edited-inside"  # markers nested inside this form were applied
CHANGED = "changed"              # replaced, no recorded reason
REMOVED = "removed"              # gone, no recorded reason (e.g. a fresh context)
RECOVERY = "recovery"            # written by error recovery

LABELS = {
    KEPT: "unchanged", APPENDED: "appended by the model", INJECTED: "injected at edit time",
    HUMAN: "human edit", HUMAN_REMOVED: "removed by a human edit", PRUNED: "pruned",
    RETHOUGHT: "replaced by rethink", THINK: "think (from rethink)", MARKER: "edit marker applied",
    PERSISTED: "persist rewrote", EDITED_INSIDE: "edit markers applied inside",
    CHANGED: "changed", REMOVED: "removed", RECOVERY: "error recovery",
}

MAX_LINE_CHARS = 400
BIG_MIDDLE = 2000   # differing middles longer than this use difflib's autojunk heuristic


class FormRef:
    """A top-level form in one of the two programs. Its printed text and preview are computed
    only when a page shows them: most forms of a long program are unchanged and never shown."""

    __slots__ = ("index", "form", "span", "source", "_text", "_preview")

    def __init__(self, index: int, form: Any, span: Any, source: str):
        self.index = index
        self.form = form
        self.span = span
        self.source = source
        self._text: Optional[str] = None
        self._preview: Optional[str] = None

    @property
    def text(self) -> str:
        """The canonical printed form (cut for display)."""
        if self._text is None:
            self._text = _clip(_pr(self.form))
        return self._text

    @property
    def preview(self) -> str:
        if self._preview is None:
            self._preview = _preview(self.source, self.span, "") if self.span is not None else self.text[:100]
        return self._preview

    @property
    def start(self) -> Optional[int]:
        return getattr(self.span, "start", None)

    @property
    def end(self) -> Optional[int]:
        return getattr(self.span, "end", None)

    @property
    def line(self) -> Optional[int]:
        return getattr(self.span, "line", None)


@dataclass
class Row:
    kind: str
    old: Optional[FormRef] = None
    new: Optional[FormRef] = None
    by: str = ""             # the marker that did it, e.g. "(prune 2)"
    author: Optional[str] = None
    at: Optional[float] = None
    section: str = "body"    # body | quine

    @property
    def label(self) -> str:
        return LABELS.get(self.kind, self.kind)

    @property
    def is_change(self) -> bool:
        return self.kind != KEPT


@dataclass
class LineRow:
    tag: str                 # " ", "-", "+", "@"
    text: str
    old_no: Optional[int] = None
    new_no: Optional[int] = None


@dataclass
class ProgramDiff:
    rows: list[Row] = field(default_factory=list)
    lines: list[LineRow] = field(default_factory=list)
    error: Optional[str] = None
    human_edits: list[dict] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(r.is_change for r in self.rows)


def _pr(form: Any) -> str:
    from spellide.spell.api import pr_str
    return pr_str(form)


def _head(form: Any) -> Optional[str]:
    if isinstance(form, List) and form and isinstance(form[0], Symbol) and form[0].ns is None:
        return form[0].name
    return None


def _is_quine_eval_do(form: Any) -> bool:
    return (_head(form) == "quine" and len(form) >= 3 and _head(form[-1]) == "eval"
            and len(form[-1]) == 2 and _head(form[-1][1]) == "do")


def split_program(form: Any) -> tuple[list, list, list, list]:
    """(quine args, their spans, body forms, their spans) of a program form.

    For the standard wrapper the body is the ``do`` inside ``(eval (do ...))`` and the quine
    args are the others (normally just the name); a bare ``(do ...)`` has only a body; any
    other program is a single body form."""
    spans = list(getattr(form, "spans", None) or ())
    if _is_quine_eval_do(form):
        tail = form[-1][1]
        tspans = list(getattr(tail, "spans", None) or ())
        args = list(form[1:-1])
        return (args, (spans[1:-1] + [None] * len(args))[:len(args)],
                list(tail[1:]), (tspans[1:] + [None] * len(tail))[:len(tail) - 1])
    if _head(form) == "do":
        return [], [], list(form[1:]), (spans[1:] + [None] * len(form))[:len(form) - 1]
    return [], [], [form], [getattr(form, "span", None)]


def _prune_count(form: List) -> Optional[int]:
    if len(form) == 1:
        return 1
    if len(form) == 2 and isinstance(form[1], int) and not isinstance(form[1], bool):
        return form[1]
    return None


def _erase_persist(form: Any) -> Any:
    """``(persist x anything)`` -> ``(persist x)`` everywhere outside quote/fn: the key used
    to match a persist with its rewritten self."""
    if isinstance(form, List):
        h = _head(form)
        if h in ("quote", "fn", "fn*"):
            return form
        if h == "persist" and len(form) in (2, 3) and isinstance(form[1], Symbol):
            return List((form[0], form[1]))
        return List(_erase_persist(x) for x in form)
    if isinstance(form, Vector):
        return Vector(_erase_persist(x) for x in form)
    if isinstance(form, Map):
        m = Map()
        for k, v in form.items():
            dict.__setitem__(m, _erase_persist(k), _erase_persist(v))
        return m
    if isinstance(form, Set):
        return Set(_erase_persist(x) for x in form)
    return form


@dataclass
class _Expected:
    """A form the new program should contain if only edit markers had run."""

    old_index: int
    form: Any
    origin: str              # kept | think
    by: str = ""
    replaced: int = 0


def _replay_markers(forms: Sequence[Any], spans: Sequence[Any], text: str
                    ) -> tuple[list[_Expected], dict[int, tuple[str, str]]]:
    """Symbolic sibling processing (spell-language 5.4) over one level, remembering who
    removed what: returns the expected forms and {old index: (how, marker text)}."""
    THINK_SYM = Symbol("think")

    acc: list[_Expected] = []
    gone: dict[int, tuple[str, str]] = {}
    for i, f in enumerate(forms):
        h = _head(f)
        marker_text = _preview(text, spans[i] if i < len(spans) else None, "")
        if h == "prune" and _prune_count(f) is not None:
            k = _prune_count(f) or 0
            victims = acc[max(0, len(acc) - k):] if k > 0 else []
            del acc[len(acc) - len(victims):]
            for v in victims:
                gone[v.old_index] = (PRUNED, marker_text or _pr(f))
            gone[i] = (MARKER, "")
            continue
        if h == "rethink" and len(f) >= 2:
            k, rest = 1, list(f[1:])
            if isinstance(rest[0], int) and not isinstance(rest[0], bool):
                k, rest = rest[0], rest[1:]
            victims = acc[max(0, len(acc) - k):] if k > 0 else []
            del acc[len(acc) - len(victims):]
            for v in victims:
                gone[v.old_index] = (RETHOUGHT, marker_text or _pr(f))
            acc.append(_Expected(i, List((THINK_SYM, *rest)), "think", marker_text, len(victims)))
            continue
        acc.append(_Expected(i, f, "kept"))
    return acc, gone


def _segments_overlap(segs: Iterable[dict], start: Optional[int], end: Optional[int], source: str) -> Optional[dict]:
    if start is None or end is None:
        return None
    for s in segs:
        if s.get("source") == source and s["start"] < end and start < s["end"]:
            return s
    return None


def _dominant_source(segs: Sequence[dict], start: Optional[int], end: Optional[int]) -> Optional[str]:
    """The provenance source covering most of [start, end)."""
    if start is None or end is None or not segs:
        return None
    best, best_len = None, 0
    for s in segs:
        overlap = min(end, s["end"]) - max(start, s["start"])
        if overlap > best_len:
            best, best_len = s.get("source"), overlap
    return best


def _ref(index: int, form: Any, span: Any, text: str) -> FormRef:
    return FormRef(index, form, span, text)


def _diff_level(old_forms: Sequence[Any], old_spans: Sequence[Any], old_text: str,
                new_forms: Sequence[Any], new_spans: Sequence[Any], new_text: str,
                provenance: Sequence[dict], edits: Sequence[dict], section: str,
                offset: int = 0) -> list[Row]:
    from spellide.spell.api import apply_edits

    expected, gone = _replay_markers(old_forms, old_spans, old_text)
    exp_full = [_pr(apply_edits(e.form, None)) for e in expected]
    exp_keys = [_pr(_erase_persist(apply_edits(e.form, None))) for e in expected]
    new_full = [_pr(f) for f in new_forms]
    new_keys = [_pr(_erase_persist(f)) for f in new_forms]
    human_segs = [s for s in provenance if s.get("source") == "human"]
    first_edit = edits[0] if edits else {}
    rows: list[Row] = []
    emitted_old: set[int] = set()

    def old_ref(i: int) -> FormRef:
        return _ref(offset + i, old_forms[i], old_spans[i] if i < len(old_spans) else None, old_text)

    def new_ref(j: int) -> FormRef:
        return _ref(offset + j, new_forms[j], new_spans[j] if j < len(new_spans) else None, new_text)

    def flush_gone(upto: int) -> None:
        """Emit the old forms removed by markers that come before old index ``upto``."""
        for i in sorted(k for k in gone if k < upto and k not in emitted_old):
            how, by = gone[i]
            rows.append(Row(how, old=old_ref(i), by=by, section=section))
            emitted_old.add(i)

    def attribute_new(j: int, replaced: bool) -> Row:
        """Why a form that the markers do not explain is in the new program: a human segment
        wins; otherwise its provenance decides: model text is the model's extension, prefix
        text that is new was injected by the runtime at edit time (``!call-now`` defs, ...)."""
        ref = new_ref(j)
        seg = _segments_overlap(human_segs, ref.start, ref.end, "human")
        if seg is not None:
            return Row(HUMAN, new=ref, author=seg.get("author") or first_edit.get("author"),
                       at=seg.get("at") or first_edit.get("at"), section=section)
        src = _dominant_source(provenance, ref.start, ref.end)
        if src == "recovery":
            return Row(RECOVERY, new=ref, section=section)
        if src == "prefix":
            return Row(CHANGED if replaced else INJECTED, new=ref, section=section)
        return Row(APPENDED, new=ref, section=section)

    for tag, i1, i2, j1, j2 in _opcodes(exp_keys, new_keys):
        if tag == "equal":
            for a, b in zip(range(i1, i2), range(j1, j2)):
                e = expected[a]
                flush_gone(e.old_index)
                original = _pr(old_forms[e.old_index])
                if e.origin == "think":
                    kind, by = THINK, e.by
                elif exp_full[a] != new_full[b]:
                    kind, by = PERSISTED, ""
                elif original != exp_full[a]:
                    kind, by = EDITED_INSIDE, ""
                else:
                    kind, by = KEPT, ""
                row = Row(kind, old=old_ref(e.old_index), new=new_ref(b), by=by, section=section)
                seg = _segments_overlap(human_segs, row.new.start, row.new.end, "human")
                if seg is not None and kind != KEPT:
                    row.kind, row.author, row.at = HUMAN, seg.get("author"), seg.get("at")
                rows.append(row)
                emitted_old.add(e.old_index)
            continue
        for a in range(i1, i2):
            e = expected[a]
            flush_gone(e.old_index)
            kind = HUMAN_REMOVED if (human_segs or edits) else REMOVED
            rows.append(Row(kind, old=old_ref(e.old_index), by=e.by, section=section,
                            author=first_edit.get("author") if kind == HUMAN_REMOVED else None,
                            at=first_edit.get("at") if kind == HUMAN_REMOVED else None))
            emitted_old.add(e.old_index)
        for b in range(j1, j2):
            rows.append(attribute_new(b, tag == "replace"))
    flush_gone(len(old_forms))
    return rows


def _opcodes(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, int, int, int, int]]:
    """``SequenceMatcher`` opcodes, after cutting the common head and tail.

    Programs repeat forms a lot (every inert ``(quote (!extend))``), and the matcher's longest
    match search is quadratic on such repetitive input; successive programs differ in a small
    middle part, so trimming first keeps a 10,000-form diff fast."""
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    q = 0
    while q < n - p and a[len(a) - 1 - q] == b[len(b) - 1 - q]:
        q += 1
    ops: list[tuple[str, int, int, int, int]] = []
    if p:
        ops.append(("equal", 0, p, 0, p))
    mid_a, mid_b = a[p:len(a) - q], b[p:len(b) - q]
    # Exact matching (no "junk") is best for the usual small middles; on big ones, difflib's
    # popularity heuristic keeps the search near linear (repeated forms attach to their
    # neighbours' matches instead of being searched for everywhere).
    sm = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=len(mid_b) > BIG_MIDDLE)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if i1 == i2 and j1 == j2:
            continue
        ops.append((tag, i1 + p, i2 + p, j1 + p, j2 + p))
    if q:
        ops.append(("equal", len(a) - q, len(a), len(b) - q, len(b)))
    merged: list[tuple[str, int, int, int, int]] = []
    for op in ops:
        if merged and merged[-1][0] == op[0] == "equal":
            t, i1, _, j1, _ = merged[-1]
            merged[-1] = (t, i1, op[2], j1, op[4])
        else:
            merged.append(op)
    return merged


def _grouped(ops: list[tuple[str, int, int, int, int]], context: int) -> list[list[tuple[str, int, int, int, int]]]:
    """Hunks with ``context`` equal lines around changes (difflib's grouping, on our opcodes)."""
    if not ops or all(op[0] == "equal" for op in ops):
        return []
    ops = list(ops)
    if ops[0][0] == "equal":
        t, i1, i2, j1, j2 = ops[0]
        ops[0] = (t, max(i1, i2 - context), i2, max(j1, j2 - context), j2)
    if ops[-1][0] == "equal":
        t, i1, i2, j1, j2 = ops[-1]
        ops[-1] = (t, i1, min(i2, i1 + context), j1, min(j2, j1 + context))
    groups: list[list[tuple[str, int, int, int, int]]] = []
    group: list[tuple[str, int, int, int, int]] = []
    for t, i1, i2, j1, j2 in ops:
        if t == "equal" and i2 - i1 > 2 * context:
            group.append((t, i1, min(i2, i1 + context), j1, min(j2, j1 + context)))
            groups.append(group)
            group = []
            i1, j1 = max(i1, i2 - context), max(j1, j2 - context)
        group.append((t, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups


def line_diff(old_lines: Sequence[str], new_lines: Sequence[str], context: int = 3) -> list[LineRow]:
    """Unified-style rows with line numbers; ``@`` rows separate hunks."""
    out: list[LineRow] = []
    for group in _grouped(_opcodes(old_lines, new_lines), context):
        first = group[0]
        out.append(LineRow("@", f"@@ -{first[1] + 1} +{first[3] + 1} @@"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for k in range(i2 - i1):
                    out.append(LineRow(" ", old_lines[i1 + k], i1 + k + 1, j1 + k + 1))
                continue
            for i in range(i1, i2):
                out.append(LineRow("-", old_lines[i], i + 1, None))
            for j in range(j1, j2):
                out.append(LineRow("+", new_lines[j], None, j + 1))
    return out


def _slice(text: str, span: Any) -> Optional[str]:
    return text[span.start:span.end] if span is not None else None


_MARKER_WORDS = ("prune", "rethink", "persist")


def common_head(old_forms: Sequence[Any], old_spans: Sequence[Any], old_text: str,
                new_forms: Sequence[Any], new_spans: Sequence[Any], new_text: str,
                provenance: Sequence[dict] = ()) -> int:
    """How many leading body forms are certainly unchanged, found by comparing source text.

    Successive programs share almost all of their text, so comparing the forms' source slices
    settles most of a long program at C speed, without printing every form. The head stops
    before anything an edit marker of the old program could have touched (a ``(prune k)``
    reaches k forms back; a form containing any marker may itself be rewritten) and before
    any human-edited text."""
    limit = min(len(old_forms), len(new_forms))
    for i, span in enumerate(old_spans[:len(old_forms)]):
        sl = _slice(old_text, span)
        if sl is None:
            limit = min(limit, i)
            break
        if any(w in sl for w in _MARKER_WORDS):
            f = old_forms[i]
            h = _head(f)
            k = 0
            if h == "prune":
                k = _prune_count(f) or 0
            elif h == "rethink" and len(f) >= 2 and isinstance(f[1], int) and not isinstance(f[1], bool):
                k = f[1]
            elif h == "rethink":
                k = 1
            limit = min(limit, max(0, i - max(0, k)))
    human = [s for s in provenance if s.get("source") == "human"]
    n = 0
    while n < limit:
        a, b = _slice(old_text, old_spans[n]), _slice(new_text, new_spans[n] if n < len(new_spans) else None)
        if a is None or a != b:
            break
        if human and _segments_overlap(human, new_spans[n].start, new_spans[n].end, "human"):
            break
        n += 1
    return n


def form_lines(form: Any, text: str = "", head: int = 0) -> list[str]:
    """One printed line per top-level body form (the quine head on its own line). The first
    ``head`` body forms (known equal in both programs) use their source text, whitespace
    collapsed, instead of being printed again."""
    args, _, body, spans = split_program(form)
    lines = []
    if args or _is_quine_eval_do(form):
        lines.append("(quine " + " ".join(_pr(a) for a in args) + " (eval (do")
    for i, f in enumerate(body):
        if i < head and spans[i] is not None:
            lines.append(_clip(" ".join(text[spans[i].start:spans[i].end].split())))
        else:
            lines.append(_clip(_pr(f)))
    return lines


def _clip(s: str) -> str:
    return s if len(s) <= MAX_LINE_CHARS else s[:MAX_LINE_CHARS] + f" … ({len(s)} chars)"


def _read_one(text: str) -> Any:
    from .program_tree import read_cached

    forms, _ = read_cached(text)
    if len(forms) != 1:
        if not forms:
            raise SpellError("empty program", kind="read")
        return List((Symbol("do"), *forms))
    return forms[0]


def diff_programs(old_text: str, new_text: str, provenance: Sequence[dict] = (),
                  edits: Sequence[dict] = ()) -> ProgramDiff:
    """The structural and line diff of step k-1's program against step k's.

    ``provenance`` is step k's list of ``{start, end, source, author?, at?}`` segments;
    ``edits`` are the human edits made during step k as ``{author, at, point}`` dicts.
    """
    result = ProgramDiff(human_edits=list(edits))
    try:
        old_form = _read_one(old_text)
        new_form = _read_one(new_text)
    except SpellError as err:
        result.error = f"structural diff unavailable: {err.message}"
        result.lines = line_diff(old_text.splitlines(), new_text.splitlines())
        return result
    except RecursionError:
        result.error = "structural diff unavailable: the program is nested too deeply"
        result.lines = line_diff(old_text.splitlines(), new_text.splitlines())
        return result
    oa, oas, ob, obs = split_program(old_form)
    na, nas, nb, nbs = split_program(new_form)
    rows: list[Row] = []
    if [_pr(x) for x in oa] != [_pr(x) for x in na]:
        rows.extend(_diff_level(oa, oas, old_text, na, nas, new_text, provenance, edits, "quine"))
    head = common_head(ob, obs, old_text, nb, nbs, new_text, provenance)
    rows.extend(Row(KEPT, old=FormRef(i, ob[i], obs[i], old_text), new=FormRef(i, nb[i], nbs[i], new_text))
                for i in range(head))
    rows.extend(_diff_level(ob[head:], obs[head:], old_text, nb[head:], nbs[head:], new_text,
                            provenance, edits, "body", offset=head))
    result.rows = rows
    summary: dict[str, int] = {}
    for r in rows:
        summary[r.kind] = summary.get(r.kind, 0) + 1
    result.summary = summary
    result.lines = line_diff(form_lines(old_form, old_text, head), form_lines(new_form, new_text, head))
    return result
