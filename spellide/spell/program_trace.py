"""The edit trace of a program version: how it came from the one before, form by form.

Between two successive programs of a run, forms were removed, replaced or added by the edit
markers (``prune``, ``rethink``, ``persist``), by what a turn injected at edit time
(``!call-now`` defs, ``!peek``, ``!print``), by the model's completion, by a person at a pause
point, or by error recovery. The machine knows which (``edits.EditTrace`` records what the
markers did as they ran) and reports it with each program (the ``trace`` of the ``program``
event); ``trace_program`` also rebuilds it from two texts alone, replaying the old program's
markers with the same code edit time runs, for versions stored without one.

The report is JSON: ``{"version": 1, "sections": [{"name", "rows"}]}``, one section for the
quine's arguments (``"quine"``, only when they changed) and one for the ``do`` body
(``"body"``). Rows are in reading order:

* ``{"op": "kept", "old": i, "new": j, "n": n}`` - old forms i.. are new forms j.., unchanged;
* ``{"op": "removed" | "replaced" | "added", "by": WHO, "old": [i, start, end],
  "new": [j, start, end], "marker": [i, start, end]}`` - ``old`` / ``new`` are a form's index
  in its section and its span in the old / new program text (absent when there is none),
  ``marker`` the marker that did it; ``author`` and ``at`` for a person's edit; ``"role":
  "marker"`` on a marker that was consumed.

``by`` is one of ``BY``: a marker's word, the injecting macro, or who wrote the text.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterator, Optional, Sequence

from .analysis import is_quine_program, split_program
from .data import List, Map, Set, Vector
from .edits import EditTrace, apply_edits
from .printer import pr_str

VERSION = 1
#: Who changes a program between versions (the ``by`` of a row). The marker words come from
#: ``edits.MARKERS``; "markers" means markers nested inside the form were applied.
BY = ("prune", "rethink", "persist", "markers", "!call-now", "!peek", "!print", "receipt", "edit time",
      "model", "human", "recovery", "program")
BIG_MIDDLE = 2000   # differing middles longer than this use difflib's autojunk heuristic


def _span(spans: Sequence[Any], i: int) -> Optional[Any]:
    return spans[i] if 0 <= i < len(spans) else None


def _at(i: int, spans: Sequence[Any]) -> list:
    s = _span(spans, i)
    return [i, s.start, s.end] if s is not None else [i, None, None]


def _covering(segs: Sequence[dict], start: Optional[int], end: Optional[int], source: str) -> Optional[dict]:
    if start is None or end is None:
        return None
    for s in segs:
        if s.get("source") == source and s["start"] < end and start < s["end"]:
            return s
    return None


def _dominant(segs: Sequence[dict], start: Optional[int], end: Optional[int]) -> Optional[str]:
    """The provenance source covering most of [start, end)."""
    if start is None or end is None:
        return None
    best, best_len = None, 0
    for s in segs:
        overlap = min(end, s["end"]) - max(start, s["start"])
        if overlap > best_len:
            best, best_len = s.get("source"), overlap
    return best


def opcodes(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, int, int, int, int]]:
    """``SequenceMatcher`` opcodes, after cutting the common head and tail.

    Programs repeat forms a lot (every inert ``(quote (!extend))``), and the matcher's longest
    match search is quadratic on such repetitive input; successive programs differ in a small
    middle part, so trimming first keeps a 10,000-form comparison fast."""
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


class _Section:
    """One level (quine args or body) of the old program, and what edit time left of it."""

    def __init__(self, name: str, old: list, old_spans: list, path: Optional[tuple],
                 trace: EditTrace, skip: Optional[int] = None) -> None:
        self.name = name
        self.old, self.old_spans = old, old_spans
        offset = 0 if path is None else 1     # section index = child index - offset
        self.offset = offset
        origins = trace.origins.get(path) if path is not None else None
        if origins is None:   # the level was not processed: every form as it was
            origins = [i + offset for i in range(len(old))]
        self.removed = {i - offset: v for i, v in (trace.removed.get(path) or {}).items()
                        if i != skip} if path is not None else {}
        # expected: (how, old index or None, marker index or None, added form or None)
        self.expected = _Expected()
        base = path or ()
        depth = len(base)
        # the children (by index) that edit time rewrote, or changed something inside
        rewritten = {p[depth] for p in trace.rewritten if len(p) == depth + 1 and p[:depth] == base}
        touched = {p[depth] for p in trace.touched if len(p) > depth and p[:depth] == base}
        # how many leading expected forms are old forms 0, 1, 2, ... kept as they were
        self.kept_run = 0
        if (not touched and skip is None and origins
                and (type(origins) is range and origins.step == 1
                     or type(origins[0]) is int
                     and origins == list(range(origins[0], origins[0] + len(origins))))):
            # every form kept in order (the usual step): not written out form by form
            self.expected = _Expected(origins[0] - offset, len(origins))
            self.kept_run = len(origins)
        else:
            append = self.expected.append
            for o in origins:
                if o.__class__ is tuple:
                    append(("think", None, o[1] - offset, None))
                elif o != skip:
                    how = "kept" if o not in touched else "persist" if o in rewritten else "markers"
                    append((how, o - offset, None, None))
        if name == "body":
            for by, form in trace.added:
                self.expected.append((by, None, None, form))


class _Expected:
    """The expected forms of a section, ``(how, old index, marker index, added form)`` each:
    ``kept`` old forms ``base, base + 1, ...`` kept as they were, then the ones appended. The
    kept run is not written out a tuple per form, so a long program's usual step (every form
    kept, one added) costs what it added."""

    def __init__(self, base: int = 0, kept: int = 0) -> None:
        self.base, self.kept = base, kept
        self.rest: list[tuple[str, Optional[int], Optional[int], Any]] = []
        self.append = self.rest.append

    def __len__(self) -> int:
        return self.kept + len(self.rest)

    def __getitem__(self, k: int) -> tuple:
        if k < 0:
            k += len(self)
        if 0 <= k < self.kept:
            return ("kept", self.base + k, None, None)
        if k < 0:
            raise IndexError(k)
        return self.rest[k - self.kept]

    def __iter__(self) -> Iterator[tuple]:
        for k in range(self.kept):
            yield ("kept", self.base + k, None, None)
        yield from self.rest


def _expected_forms(sec: _Section, edited: Optional[list]) -> list:
    """The forms edit time left, in order (what the new program starts with)."""
    out = []
    for k, (how, i, m, form) in enumerate(sec.expected):
        if form is not None:
            out.append(form)
        elif edited is not None and k < len(edited):
            out.append(edited[k])
        else:
            out.append(sec.old[i] if i is not None else None)
    return out


def trace_program(old: Any, new: Any, provenance: Sequence[dict] = (),
                  edit_trace: Optional[EditTrace] = None, human_edits: Sequence[dict] = ()) -> dict:
    """The trace of program ``new`` against ``old`` (both forms read with spans).

    ``edit_trace`` is what edit time recorded when it turned ``old`` into the next prefix;
    without one, ``old``'s markers are replayed here (``persist`` values are then unknown).
    ``provenance`` are the new program's ``{start, end, source, author?, at?}`` segments;
    ``human_edits`` the edits a person made during the step (``{author, at}``)."""
    trace = edit_trace
    if trace is None:
        trace = EditTrace(old)
        trace.result = apply_edits(old, None, trace)
    edited = trace.result
    # what edit time made, split only when a section has to be aligned against it
    parts = (lambda: split_program(edited) if edited is not None else (None, None, None, None))
    oa, oas, ob, obs = _split(old)
    na, nas, nb, nbs = _split(new)
    quine = is_quine_program(old)
    body_path = (len(old) - 1, 1) if quine else (() if oa == [] and ob is not None and
                                                  isinstance(old, List) and old and
                                                  getattr(old[0], "name", None) == "do" else None)
    sections = []
    if [pr_str(x) for x in oa] != [pr_str(x) for x in na]:
        sec = _Section("quine", oa, oas, () if quine else None, trace, skip=len(old) - 1)
        sections.append(_rows(sec, parts()[0], na, nas, provenance, human_edits, True))
    sec = _Section("body", ob, obs, body_path, trace)
    align = edit_trace is None or bool(_human(provenance)) or not _prefix_holds(sec, nbs, provenance)
    sections.append(_rows(sec, parts()[2] if align else None, nb, nbs, provenance, human_edits,
                          align))
    return {"version": VERSION, "sections": sections}


def _split(form: Any) -> tuple[list, list, list, list]:
    """``split_program``, kept on the form (forms do not change, and nothing here changes the
    lists): a run's program is split as the new version at one step and as the old one at the
    next, so each long body is split once."""
    got = getattr(form, "_split_parts", None)
    if got is None:
        got = split_program(form)
        if isinstance(form, List):
            form._split_parts = got  # type: ignore[attr-defined]
    return got


def _prefix_holds(sec: _Section, new_spans: list, provenance: Sequence[dict]) -> bool:
    """True when the new body starts with the forms edit time printed into the prefix (the
    completion only added to them), so they correspond one to one."""
    n = len(sec.expected)
    if n == 0:
        return True
    if len(new_spans) < n or new_spans[n - 1] is None:
        return False
    prefix_end = max((s["end"] for s in provenance if s.get("source") == "prefix"), default=0)
    return new_spans[n - 1].end <= prefix_end


def _human(provenance: Sequence[dict]) -> list[dict]:
    return [s for s in provenance if s.get("source") == "human"]


def _rows(sec: _Section, edited_children: Optional[list], new: list, new_spans: list,
          provenance: Sequence[dict], human_edits: Sequence[dict], align: bool) -> dict:
    exp = sec.expected
    human = _human(provenance)
    first = human_edits[0] if human_edits else {}
    rows: list[dict] = []
    pending = sorted(sec.removed, reverse=True)   # removed old indices, next one last

    def flush(upto: int) -> None:
        """The old forms that markers removed before old index ``upto``, where they were."""
        while pending and pending[-1] < upto:
            i = pending.pop()
            word, m = sec.removed[i]
            row = {"op": "removed", "by": word, "old": _at(i, sec.old_spans),
                   "marker": _at(m - sec.offset, sec.old_spans)}
            if i == m - sec.offset:
                row["role"] = "marker"
            rows.append(row)

    def add_kept(i: int, j: int, n: int = 1) -> None:
        last = rows[-1] if rows else None
        if last and last["op"] == "kept" and last["old"] + last["n"] == i and last["new"] + last["n"] == j:
            last["n"] += n
        else:
            rows.append({"op": "kept", "old": i, "new": j, "n": n})

    def matched(k: int, j: int, rewritten: bool = False) -> None:
        how, i, m, _ = exp[k]
        if rewritten and how == "kept":
            how = "persist"   # equal but for a persist's value: edit time rewrote it
        anchor = i if i is not None else (m if m is not None else None)
        if anchor is not None:
            flush(anchor)
        seg = _covering(human, *(_sp(new_spans, j)), "human") if human else None
        if how == "kept" and seg is None:
            add_kept(i, j)
            return
        row: dict = {"new": _at(j, new_spans)}
        if seg is not None:
            row.update(op="replaced" if i is not None else "added", by="human",
                       author=seg.get("author") or first.get("author"), at=seg.get("at") or first.get("at"))
            if i is not None:
                row["old"] = _at(i, sec.old_spans)
        elif how == "think":
            row.update(op="replaced", by="rethink", old=_at(m, sec.old_spans), marker=_at(m, sec.old_spans))
        elif i is not None:
            row.update(op="replaced", by=how, old=_at(i, sec.old_spans))
        else:
            row.update(op="added", by=how)
        rows.append(row)

    def added(j: int, replaced: bool) -> None:
        start, end = _sp(new_spans, j)
        seg = _covering(human, start, end, "human")
        row: dict = {"op": "added", "new": _at(j, new_spans)}
        if seg is not None:
            row.update(by="human", author=seg.get("author") or first.get("author"),
                       at=seg.get("at") or first.get("at"))
        else:
            src = _dominant(provenance, start, end)
            row["by"] = {"recovery": "recovery", "prefix": "program", None: "model"}.get(src, "model")
            if replaced and row["by"] == "program":
                row["op"] = "replaced"
        rows.append(row)

    if not align and len(new) >= len(exp):
        k, n = 0, len(exp)
        while k < n:
            how, i, _, _ = exp[k]
            if how != "kept" or human:
                matched(k, k)
                k += 1
                continue
            flush(i)   # then a run of kept forms up to the next removed one, in one row
            stop = pending[-1] if pending else len(sec.old)
            k2 = k + 1
            if k == 0 and sec.kept_run:   # the leading run is known: no need to walk it
                k2 = max(k2, min(sec.kept_run, n, stop - i))
            while k2 < n and exp[k2][0] == "kept" and exp[k2][1] == i + (k2 - k) and exp[k2][1] < stop:
                k2 += 1
            add_kept(i, k, k2 - k)
            k = k2
        flush(len(sec.old))
        for j in range(len(exp), len(new)):
            added(j, False)
        return {"name": sec.name, "rows": rows}
    forms = _expected_forms(sec, edited_children)
    full = [pr_str(f) for f in forms]
    new_full = [pr_str(f) for f in new]
    keys = [pr_str(_erase_persist(f)) if "persist" in t else t for f, t in zip(forms, full)]
    new_keys = [pr_str(_erase_persist(f)) if "persist" in t else t for f, t in zip(new, new_full)]
    gone_by = "human" if (human or human_edits) else "program"
    for tag, i1, i2, j1, j2 in opcodes(keys, new_keys):
        if tag == "equal":
            for k, j in zip(range(i1, i2), range(j1, j2)):
                matched(k, j, full[k] != new_full[j])
            continue
        for k in range(i1, i2):
            how, i, m, _ = exp[k]
            anchor = i if i is not None else m
            if anchor is not None:
                flush(anchor)
            row = {"op": "removed", "by": gone_by}
            if i is not None:
                row["old"] = _at(i, sec.old_spans)
            elif m is not None:
                row["old"] = _at(m, sec.old_spans)
            if gone_by == "human":
                row.update(author=first.get("author"), at=first.get("at"))
            if "old" in row:
                rows.append(row)
        for j in range(j1, j2):
            added(j, tag == "replace")
    flush(len(sec.old))
    return {"name": sec.name, "rows": rows}


def _sp(spans: Sequence[Any], j: int) -> tuple[Optional[int], Optional[int]]:
    s = _span(spans, j)
    return (s.start, s.end) if s is not None else (None, None)


def _erase_persist(form: Any) -> Any:
    """A form with each ``(persist x ...)`` reduced to ``(persist x)``: edit time rewrites the
    value part, so forms are matched without it."""
    if isinstance(form, List):
        if len(form) == 3 and getattr(form[0], "name", None) == "persist" and getattr(form[0], "ns", 1) is None:
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
