"""What changed between two successive programs of a run, said in Spell's own terms.

A self-programming agent's program changes between turns in a few distinct ways, and a reader
needs to know which one happened, not just which characters moved: the model **appended**
forms; edit time **injected** forms (``!call-now``/``!peek`` defs, ``!print`` values); an edit
marker ran (``(prune k)`` **removed** the k forms before it, ``(rethink k "..." ...)``
**replaced** them by ``(think ...)``, ``(persist x expr)`` was **rewritten**); a **human**
edited the program at a pause point (with who and when); error **recovery** wrote it.

This module does not know what any marker does: the core reports it. Each program version
comes with its **edit trace** (``spellide.spell.api.trace_program``; the run records it with
the ``program`` event and the step keeps it), a list of rows saying which forms who removed,
replaced or added, with their spans; for a version stored without one, the core rebuilds it
from the two texts with the same code edit time runs. Here the rows only become display rows.

The plain line diff uses the standard library's ``difflib`` (through the core's trimmed
``opcodes``): it compares one printed top-level form per line, not the raw texts, because
the runtime re-prints the program between turns (formatting and comments are not kept), so a
raw-text diff of a model's multi-line completion against the next one-line prefix would mark
everything as changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from spellide.spell.api import List, SpellError, Symbol, opcodes, pr_str, split_program, trace_program

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
RECEIPT = "receipt"              # a message receipt's (think ...) (def msg-N ...) (quote (!extend ...))

LABELS = {
    KEPT: "unchanged", APPENDED: "appended by the model", INJECTED: "injected at edit time",
    HUMAN: "human edit", HUMAN_REMOVED: "removed by a human edit", PRUNED: "pruned",
    RETHOUGHT: "replaced by rethink", THINK: "think (from rethink)", MARKER: "edit marker applied",
    PERSISTED: "persist rewrote", EDITED_INSIDE: "edit markers applied inside",
    CHANGED: "changed", REMOVED: "removed", RECOVERY: "error recovery", RECEIPT: "receipt",
}

MAX_LINE_CHARS = 400
MAX_PRETTY_CHARS = 20_000   # a changed form up to this long can be expanded, laid out, on the page
PRETTY_WIDTH = 80
BIG_MIDDLE = 2000   # differing middles longer than this use difflib's autojunk heuristic

# The row kind of each (op, by) of the core's edit trace; a removed marker itself (role
# "marker") is MARKER. Unknown combinations fall back to CHANGED / REMOVED / APPENDED.
_KINDS = {
    ("removed", "prune"): PRUNED, ("removed", "rethink"): RETHOUGHT,
    ("removed", "human"): HUMAN_REMOVED,
    ("replaced", "rethink"): THINK, ("replaced", "persist"): PERSISTED,
    ("replaced", "markers"): EDITED_INSIDE, ("replaced", "human"): HUMAN,
    ("added", "model"): APPENDED, ("added", "human"): HUMAN, ("added", "recovery"): RECOVERY,
    ("added", "program"): INJECTED, ("added", "edit time"): INJECTED,
    ("added", "!call-now"): INJECTED, ("added", "!peek"): INJECTED, ("added", "!print"): INJECTED,
    # message receipt (spell-agents.md §2.3): the core's trace names it "receipt"
    ("added", "receipt"): RECEIPT, ("replaced", "receipt"): RECEIPT,
}
_DEFAULT_KIND = {"removed": REMOVED, "replaced": CHANGED, "added": APPENDED}


class FormRef:
    """A top-level form in one of the two programs. Its printed text and preview are computed
    only when a page shows them: most forms of a long program are unchanged and never shown."""

    __slots__ = ("index", "form", "span", "source", "_text", "_preview", "_pretty")

    def __init__(self, index: int, form: Any, span: Any, source: str):
        self.index = index
        self.form = form
        self.span = span
        self.source = source
        self._text: Optional[str] = None
        self._preview: Optional[str] = None
        self._pretty: Optional[str] = None

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
    def cut(self) -> bool:
        """Whether the preview leaves part of the form out (the page offers the whole of it)."""
        return self.preview.endswith("…")

    @property
    def pretty(self) -> str:
        """The whole form laid out for reading ("" when too long to put on the page)."""
        if self._pretty is None:
            self._pretty = _pretty_form(self.form, self.span, self.source)
        return self._pretty

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
    return pr_str(form)


def _pretty_form(form: Any, span: Any, source: str) -> str:
    from spellide.spell.api import pretty_str, pretty_text
    try:
        if span is not None:
            if span.end - span.start > MAX_PRETTY_CHARS:
                return ""
            return pretty_text(source[span.start:span.end], PRETTY_WIDTH).text
        text = pretty_str(form, PRETTY_WIDTH)
        return text if len(text) <= MAX_PRETTY_CHARS else ""
    except (SpellError, RecursionError):
        return ""


def row_kind(row: dict) -> str:
    """The display kind of one row of the core's edit trace."""
    if row.get("role") == "marker":
        return MARKER
    return _KINDS.get((row["op"], row.get("by")), _DEFAULT_KIND.get(row["op"], CHANGED))


def _ref(place: Optional[list], forms: Sequence[Any], spans: Sequence[Any], text: str) -> Optional[FormRef]:
    if not place:
        return None
    i = place[0]
    if not 0 <= i < len(forms):
        return None
    return FormRef(i, forms[i], spans[i] if i < len(spans) else None, text)


def _by(row: dict, op: str, old_text: str, old_spans: Sequence[Any]) -> str:
    """What the row says did it: the marker's source text, or the injecting helper."""
    marker = row.get("marker")
    if marker and marker[1] is not None:
        return _preview(old_text, _Span(marker[1], marker[2]), "")
    by = row.get("by") or ""
    return by if by.startswith("!") else ""


class _Span:
    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end


def rows_from_trace(trace: dict, old_form: Any, old_text: str, new_form: Any, new_text: str) -> list[Row]:
    """Display rows of the core's edit trace (``api.trace_program``) of ``new`` against ``old``."""
    oa, oas, ob, obs = split_program(old_form)
    na, nas, nb, nbs = split_program(new_form)
    parts = {"quine": (oa, oas, na, nas), "body": (ob, obs, nb, nbs)}
    rows: list[Row] = []
    for sec in trace.get("sections") or ():
        name = sec.get("name")
        if name not in parts:
            continue
        of, os_, nf, ns = parts[name]
        for r in sec.get("rows") or ():
            if r["op"] == "kept":
                for k in range(r["n"]):
                    i, j = r["old"] + k, r["new"] + k
                    if i < len(of) and j < len(nf):
                        rows.append(Row(KEPT, old=FormRef(i, of[i], os_[i], old_text),
                                        new=FormRef(j, nf[j], ns[j], new_text), section=name))
                continue
            rows.append(Row(row_kind(r), old=_ref(r.get("old"), of, os_, old_text),
                            new=_ref(r.get("new"), nf, ns, new_text), by=_by(r, r["op"], old_text, os_),
                            author=r.get("author"), at=r.get("at"), section=name))
    return rows


def _usable(trace: Any, old_text: str) -> bool:
    """A stored trace describes this comparison when it was made against this old text."""
    if not isinstance(trace, dict) or trace.get("version") != 1:
        return False
    base = trace.get("base")
    if not (isinstance(base, list) and len(base) == 2 and all(isinstance(x, int) for x in base)):
        return False
    whole = old_text.strip()
    return base[1] - base[0] == len(whole) and old_text[base[0]:base[1]] == whole


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
    for group in _grouped(opcodes(old_lines, new_lines), context):
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


def form_lines(form: Any, text: str = "", head: int = 0) -> list[str]:
    """The program as lines to diff: the quine head on a line of its own, then each
    top-level body form pretty-printed (so a change inside a long form is a changed line,
    not a changed program). The first ``head`` body forms (known equal in both programs)
    are one line each of their source text, whitespace collapsed, instead of being laid out:
    they are at most context, and there may be thousands."""
    from spellide.spell.api import pretty_str

    args, _, body, spans = split_program(form)
    lines = []
    if args:
        lines.append("(quine " + " ".join(_pr(a) for a in args) + " (eval (do")
    for i, f in enumerate(body):
        if i < head and spans[i] is not None:
            lines.append(_clip(" ".join(text[spans[i].start:spans[i].end].split())))
            continue
        try:
            laid = pretty_str(f, PRETTY_WIDTH)
        except RecursionError:
            laid = _pr(f)
        lines.extend(_clip(line) for line in laid.split("\n"))
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


def _leading_kept(rows: Sequence[Row]) -> int:
    """How many leading body forms are the same forms in both programs (their source text is
    used for the line diff instead of printing each again)."""
    n = 0
    for r in rows:
        if r.section != "body":
            continue
        if r.kind != KEPT or r.old is None or r.new is None or r.old.index != n or r.new.index != n:
            break
        n += 1
    return n


def diff_programs(old_text: str, new_text: str, provenance: Sequence[dict] = (),
                  edits: Sequence[dict] = (), trace: Optional[dict] = None) -> ProgramDiff:
    """The structural and line diff of step k-1's program against step k's.

    ``trace`` is step k's edit trace as the run reported it (used when it was made against
    ``old_text``; otherwise the core rebuilds it from the texts). ``provenance`` is step k's
    list of ``{start, end, source, author?, at?}`` segments; ``edits`` are the human edits
    made during step k as ``{author, at, point}`` dicts.
    """
    result = ProgramDiff(human_edits=list(edits))
    try:
        old_form = _read_one(old_text)
        new_form = _read_one(new_text)
        if not _usable(trace, old_text):
            trace = trace_program(old_form, new_form, provenance,
                                  human_edits=[{"author": e.get("author"), "at": e.get("at")} for e in edits])
    except SpellError as err:
        result.error = f"structural diff unavailable: {err.message}"
        result.lines = line_diff(old_text.splitlines(), new_text.splitlines())
        return result
    except RecursionError:
        result.error = "structural diff unavailable: the program is nested too deeply"
        result.lines = line_diff(old_text.splitlines(), new_text.splitlines())
        return result
    rows = rows_from_trace(trace, old_form, old_text, new_form, new_text)
    result.rows = rows
    summary: dict[str, int] = {}
    for r in rows:
        summary[r.kind] = summary.get(r.kind, 0) + 1
    result.summary = summary
    head = _leading_kept(rows)
    result.lines = line_diff(form_lines(old_form, old_text, head), form_lines(new_form, new_text, head))
    return result
