"""Program assembly: prefix + model completion -> one form (spell-language.md 2.2, 2.3).

A model continues an open program prefix such as ``(quine completion (eval (do ``; it
rarely closes every paren, sometimes closes one too many, and chat models wrap code in
fences or repeat the prefix. The reference runtime repairs exactly these cases and no
others, and the turn machine's behaviour (which replies are errors, which are recovered)
depends on it, so the repairs here are deliberately narrow:

* only round parens are auto-closed (an unclosed ``[`` or ``{`` stays an error);
* one stray closer is forgiven only when it is the last non-whitespace character;
* anything that reads as more than one top-level form is an error of kind
  ``multiple-top-level-forms`` unless the agent allows it, in which case the forms are
  wrapped in ``(do ...)``.

Paren counting follows the reader's lexical rules (strings, ``;`` comments, character
literals such as ``\\(``, and line-start ``//``/``/*``/``*/`` comments are skipped), so
the closers appended are the ones the reader needs. The reference counts character
literals' parens too; skipping them only matters for ``\\(`` / ``\\)`` literals, where it is
what makes the program read.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from .data import List, Map, Set, Span, Symbol, Vector
from .errors import ReadError, SpellError
from .models.cleanup import strip_code_fences, strip_prefix_echo
from .reader import read_all_spans, read_continuation

__all__ = ["paren_balance", "balance_parens", "strip_prefix_echo", "strip_code_fences",
           "strip_trailing_parens", "sanitize_comment_markers", "assemble", "span_in_text"]

# Text whose parens do not count: strings (also unterminated ones, to the end), comments,
# character literals, and lines that start with a C-style comment marker.
_SKIP_RE = re.compile(r'"(?:[^"\\]|\\.)*+"?|;[^\n]*|\\.|^[ \t]*(?://|/\*|\*/)[^\n]*',
                      re.S | re.M)
_MARKER_RE = re.compile(r'("(?:[^"\\]|\\.)*+"?|;[^\n]*|\\.)|^([ \t]*)(//|/\*|\*/)', re.S | re.M)


def paren_balance(s: str) -> int:
    """``(`` minus ``)`` outside strings, comments and character literals: how many closers
    the text is missing (negative when it has too many)."""
    code = _SKIP_RE.sub(" ", s)
    return code.count("(") - code.count(")")


def balance_parens(s: str) -> str:
    """Append the missing ``)``; a negative balance is left for the reader to judge."""
    n = paren_balance(s)
    return s + ")" * n if n > 0 else s


def strip_trailing_parens(n: int, s: str) -> str:
    """Remove exactly ``n`` closing parens from the end (after trailing whitespace): how a
    printed program is turned back into an open prefix."""
    t = s.rstrip()
    if n <= 0:
        return t
    if len(t) < n:
        raise SpellError("not enough closing parens")
    if t[-n:] != ")" * n:
        raise SpellError("expected ')'")
    return t[:-n]


def sanitize_comment_markers(text: str) -> str:
    """Rewrite line-start ``//``, ``/*`` and ``*/`` (outside strings) to ``;`` comments, as
    the reference does before reading. The reader already treats them as comments; this is
    for showing or exporting text that a stock Clojure reader must accept. Offsets are kept
    (``//`` becomes ``;/``)."""
    def repl(m: re.Match) -> str:
        if m.group(1) is not None:
            return m.group(1)
        return m.group(2) + ";" + m.group(3)[1]

    return _MARKER_RE.sub(repl, text)


def assemble(prefix: str, completion: str, *, clean: bool = False,
             allow_multiple: bool = False, carry: Optional[Any] = None) -> tuple[str, Any]:
    """Turn prefix + completion into the single form to evaluate.

    ``clean`` strips code fences and a repeated prefix from the completion first (message
    and tool-call transports). Returns the text actually read (balanced, without a forgiven
    stray closer) and the form; with ``allow_multiple`` several forms come back as
    ``(do f1 f2 ...)`` and the text is left as read (not wrapped). Read errors are
    ``ReadError`` with positions in that text, which starts with ``prefix + completion``.

    ``carry`` (an ``edits.PrefixCarry``) is what reading the start of the text gives; when the
    text does start with ``carry.text`` only the rest is scanned, with the same result.
    """
    if clean:
        completion = strip_prefix_echo(prefix, strip_code_fences(completion))
    text = prefix + completion
    if carry is not None and text.startswith(carry.text):
        start = len(carry.text)
        # The carried prefix is printed text: every form in it is balanced and it ends
        # outside any string or comment, so only its open lists and the new text count.
        # The "x" keeps a comment marker at the start of the new text from counting as
        # line-start (it is not at a line start in the whole text).
        missing = len(carry.open_lists) + paren_balance("x" + text[start:])
        text += ")" * missing if missing > 0 else ""

        def read(tolerate: bool) -> tuple[list, list]:
            return read_continuation(text, start, carry.open_lists,
                                     tolerate_trailing_closer=tolerate)
    else:
        text = balance_parens(text)

        def read(tolerate: bool) -> tuple[list, list]:
            return read_all_spans(text, tolerate_trailing_closer=tolerate)
    try:
        forms, spans = read(False)
    except ReadError as e:
        stripped = text.rstrip()
        if not (e.reason.startswith("Unmatched delimiter")
                and getattr(e, "offset", None) == len(stripped) - 1):
            raise
        forms, spans = read(True)
        text = stripped[:-1]
    if len(forms) == 1:
        return text, forms[0]
    if not forms:
        err = ReadError("EOF: no form to read", line=_line(text), col=_col(text),
                        incomplete=True)
        err.offset = len(text)  # type: ignore[attr-defined]
        raise err
    if not allow_multiple:
        second = spans[1]
        raise SpellError(f"Expected exactly one top-level form, got {len(forms)} "
                         f"(the second starts at {second.line}:{second.col})",
                         kind="multiple-top-level-forms", span=second)
    first, last = spans[0], spans[-1]
    head = Span(first.line, first.col, first.line, first.col, first.start, first.start)
    whole = Span(first.line, first.col, last.end_line, last.end_col, first.start, last.end)
    form = List((Symbol("do", None, head), *forms))
    form.span = whole
    form.spans = (head, *spans)
    return text, form


def span_in_text(span: Optional[Span], form: Any, text: str, *,
                 allow_multiple: bool = False) -> Optional[Span]:
    """Where in ``text`` the part of ``form`` that ``span`` belongs to is.

    A form assembled with a carried prefix (``assemble(..., carry=)``) reuses forms read at
    earlier steps; their own spans point into the text they were read from, while the
    form's top level knows its place in ``text``. An error that names such a span is moved
    here: ``text`` is read again (only on this error path) and walked alongside ``form``,
    which it reads to the same structure. A span that is not part of ``form`` (a new form
    read from the completion already has its place in ``text``) comes back unchanged."""
    if span is None:
        return None
    try:
        _, fresh = assemble(text, "", allow_multiple=allow_multiple)
    except SpellError:
        return span
    stack = [(form, fresh)]
    while stack:
        old, new = stack.pop()
        if type(old) is not type(new):
            continue
        if getattr(old, "span", None) is span:
            return getattr(new, "span", None)
        old_spans = getattr(old, "spans", None) or ()
        new_spans = getattr(new, "spans", None) or ()
        if isinstance(old, Map):
            pairs = list(zip(old.items(), new.items()))
            for i, ((k1, v1), (k2, v2)) in enumerate(pairs):
                if i < len(old_spans) and i < len(new_spans):
                    for a, b in zip(old_spans[i], new_spans[i]):
                        if a is span:
                            return b
                stack.append((k1, k2))
                stack.append((v1, v2))
        elif isinstance(old, (List, Vector, Set)):
            for i, (a, b) in enumerate(zip(old, new)):
                if i < len(old_spans) and i < len(new_spans) and old_spans[i] is span:
                    return new_spans[i]
                stack.append((a, b))
    return span


def _line(text: str) -> int:
    return text.count("\n") + 1


def _col(text: str) -> int:
    return len(text) - (text.rfind("\n") + 1) + 1
