"""Spell syntax highlighting for the IDE, built on Pygments.

Why Pygments: it is a well-kept lexer library whose HTML formatter escapes every character of
the text it is given. Run text (programs, completions) is untrusted, so the rule in this module
is that the *only* run text that ends up in markup marked safe is what Pygments' formatter
produced; the wrappers added here carry nothing but fixed class names and integers.

Spell is read by a Clojure reader, so ``ClojureLexer`` tokenizes it correctly; on top of it this
module re-labels the names that matter when reading a self-programming agent:

* effect helpers whose names start with ``!`` (``!call-now``, ``!peek``, ``!extend``, ...),
* the edit markers ``prune``, ``rethink``, ``persist`` and their product ``think``,
* the wrapper forms ``quine`` and ``eval`` (the effect boundary).

``highlight_segments`` additionally splits the token stream at provenance boundaries so the
source view can tell the prefix, the model's completion and human edits apart without
re-lexing pieces separately (which would break tokens that straddle a boundary).
"""

from __future__ import annotations

import io
from typing import Iterable, Iterator, Optional, Sequence

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from pygments.formatters import HtmlFormatter
from pygments.lexers import ClojureLexer
from pygments.token import Keyword, Name, Text, Whitespace, _TokenType

from spellide.spell import api

# Spell-specific token types (Pygments derives CSS classes from the parent type plus a suffix).
Effect = Name.Function.Effect          # !call-now, !extend, io/!x ... -> class "nf-Effect"
Marker = Keyword.Marker                # prune / rethink / persist / think -> "k-Marker"
Boundary = Keyword.Boundary            # quine / eval -> "k-Boundary"

MARKERS = frozenset((*api.MARKERS, api.THINK.name))   # the core's edit markers and their note
BOUNDARY = frozenset({"quine", "eval"})

# Above this size a text is shown as one plain token: lexing megabytes on every page view
# would dominate the page time, and nobody reads colours in a megabyte at once.
MAX_HIGHLIGHT_CHARS = 200_000

PROVENANCE_SOURCES = ("prefix", "model", "human", "edit-marker", "recovery", "assembly")


class SpellLexer(ClojureLexer):
    """ClojureLexer with Spell's effect names, edit markers and wrapper forms re-labelled."""

    name = "Spell"
    aliases = ["spell"]
    filenames = ["*.spl"]

    def get_tokens_unprocessed(self, text: str, stack: Sequence[str] = ("root",)):  # type: ignore[override]
        for index, ttype, value in super().get_tokens_unprocessed(text, stack):
            if ttype in Whitespace:
                ttype = Text  # no <span> around spaces: much less markup for printed programs
            elif ttype in Name or ttype in Keyword:
                word = value.rstrip()
                bare = word.rsplit("/", 1)[-1]
                if bare.startswith("!") and len(bare) > 1:
                    ttype = Effect
                elif word in MARKERS:
                    ttype = Marker
                elif word in BOUNDARY:
                    ttype = Boundary
            yield index, ttype, value


_LEXER = SpellLexer(stripnl=False, ensurenl=False)
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="t-")


def _tokens(text: str) -> list[tuple[int, _TokenType, str]]:
    if len(text) > MAX_HIGHLIGHT_CHARS:
        return [(0, Text, text)]
    return list(_LEXER.get_tokens_unprocessed(text))


def _format(tokens: Iterable[tuple[_TokenType, str]]) -> str:
    """Pygments' formatter escapes the token values; its output is the only run-derived
    markup this module returns."""
    tokens = list(tokens)
    if not tokens:
        return ""
    out = io.StringIO()
    _FORMATTER.format(iter(tokens), out)
    html = out.getvalue()
    # The formatter ends its last line with a newline even when the text did not: drop it,
    # or every provenance segment boundary would insert a line break.
    if not tokens[-1][1].endswith("\n") and html.endswith("\n"):
        html = html[:-1]
    return html


def highlight(text: str) -> SafeString:
    """The whole text as highlighted, escaped HTML (no wrapper element)."""
    if not text:
        return mark_safe("")
    return mark_safe(_format((t, v) for _, t, v in _tokens(text)))


def highlight_marked(text: str, offset: Optional[int]) -> SafeString:
    """The whole text highlighted, with the character at ``offset`` (where the reader
    stopped) wrapped in ``<mark class="err-mark">`` so the editor can show the place."""
    if offset is None or not 0 <= offset < len(text):
        return highlight(text)
    pieces = list(_split(_tokens(text), [offset, offset + 1]))
    before = [(t, v) for i, t, v in pieces if i < offset]
    at = [(t, v) for i, t, v in pieces if i == offset]
    after = [(t, v) for i, t, v in pieces if i > offset]
    return mark_safe(_format(before) + '<mark class="err-mark">' + _format(at) + "</mark>" + _format(after))


def _split(tokens: list[tuple[int, _TokenType, str]], cuts: Sequence[int]) -> Iterator[tuple[int, _TokenType, str]]:
    """Split tokens so that no token crosses any offset in ``cuts`` (sorted)."""
    ci = 0
    for index, ttype, value in tokens:
        end = index + len(value)
        while ci < len(cuts) and cuts[ci] <= index:
            ci += 1
        start = index
        j = ci
        while j < len(cuts) and cuts[j] < end:
            cut = cuts[j]
            yield start, ttype, value[start - index:cut - index]
            start = cut
            j += 1
        yield start, ttype, value[start - index:]


def highlight_segments(text: str, segments: Sequence[dict] | None) -> SafeString:
    """Highlighted HTML where each provenance segment is wrapped in
    ``<span class="prov prov-SOURCE" data-start=.. data-end=..>``.

    ``segments`` are ``{start, end, source, author?, at?}`` character ranges as recorded by
    the runtime; text they do not cover is emitted without a wrapper. Authors are added as a
    ``title`` through ``format_html`` (escaped), never by string concatenation.
    """
    if not text:
        return mark_safe("")
    segs = sorted((s for s in (segments or []) if s.get("end", 0) > s.get("start", 0)),
                  key=lambda s: s["start"])
    if not segs:
        return highlight(text)
    cuts = sorted({max(0, min(len(text), int(b))) for s in segs for b in (s["start"], s["end"])})
    pieces = list(_split(_tokens(text), cuts))
    parts: list[str] = []
    pos = 0
    pi = 0

    def emit_until(limit: int) -> list[tuple[_TokenType, str]]:
        nonlocal pi
        group: list[tuple[_TokenType, str]] = []
        while pi < len(pieces) and pieces[pi][0] < limit:
            group.append((pieces[pi][1], pieces[pi][2]))
            pi += 1
        return group

    for seg in segs:
        start, end = max(pos, int(seg["start"])), min(len(text), int(seg["end"]))
        if end <= start:
            continue
        if start > pos:
            parts.append(_format(emit_until(start)))
        source = seg.get("source") if seg.get("source") in PROVENANCE_SOURCES else "other"
        inner = _format(emit_until(end))
        title = ""
        if source == "human" and seg.get("author"):
            title = f"edited by {seg['author']}"
        parts.append(str(format_html('<span class="prov prov-{}" data-start="{}" data-end="{}" title="{}">',
                                     source, start, end, title or source)))
        parts.append(inner)
        parts.append("</span>")
        pos = end
    if pos < len(text):
        parts.append(_format(emit_until(len(text) + 1)))
    return mark_safe("".join(parts))


def highlight_lines(text: str, segments: Sequence[dict] | None = None) -> list[SafeString]:
    """Like ``highlight_segments`` but one HTML string per source line (each ending with its
    newline), so the page can number, wrap and address lines (``#L12``) individually.
    Provenance wrappers are closed at line ends and reopened on the next line."""
    if not text:
        return []
    segs = sorted((s for s in (segments or []) if s.get("end", 0) > s.get("start", 0)),
                  key=lambda s: s["start"])
    cuts = {max(0, min(len(text), int(b))) for s in segs for b in (s["start"], s["end"])}
    pos = text.find("\n")
    while pos != -1:
        cuts.add(pos + 1)
        pos = text.find("\n", pos + 1)
    pieces = list(_split(_tokens(text), sorted(cuts)))
    lines: list[SafeString] = []
    si = 0
    line_parts: list[str] = []
    group: list[tuple[_TokenType, str]] = []
    group_seg: Optional[dict] = None

    def seg_at(offset: int) -> Optional[dict]:
        nonlocal si
        while si < len(segs) and segs[si]["end"] <= offset:
            si += 1
        if si < len(segs) and segs[si]["start"] <= offset < segs[si]["end"]:
            return segs[si]
        return None

    def flush() -> None:
        nonlocal group
        if not group:
            return
        inner = _format(group)
        if group_seg is None:
            line_parts.append(inner)
        else:
            source = group_seg.get("source") if group_seg.get("source") in PROVENANCE_SOURCES else "other"
            title = f"edited by {group_seg['author']}" if source == "human" and group_seg.get("author") else source
            line_parts.append(str(format_html('<span class="prov prov-{}" title="{}">', source, title)))
            line_parts.append(inner)
            line_parts.append("</span>")
        group = []

    for start, ttype, value in pieces:
        seg = seg_at(start)
        if seg is not group_seg:
            flush()
            group_seg = seg
        group.append((ttype, value))
        if value.endswith("\n"):
            flush()
            lines.append(mark_safe("".join(line_parts)))
            line_parts = []
    flush()
    if line_parts:
        lines.append(mark_safe("".join(line_parts)))
    return lines


def css() -> str:
    """The token colour rules (generated once into static/spellide/ide.css by hand-tuning)."""
    return _FORMATTER.get_style_defs(".code")


__all__ = ["SpellLexer", "highlight", "highlight_marked", "highlight_segments", "highlight_lines", "css"]
