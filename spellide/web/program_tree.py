"""A Spell program as a tree of forms for display.

Why a tree and not only text: a self-programming agent's program is a long ``do`` body that
grows every turn, and the moves that matter (a ``def`` of an effect result, an edit marker, the
quoted trailing expression that decides the next turn) are forms, not lines. Each node says
what kind of form it is, shows a one-line preview, and carries its source span so the page can
highlight the same text in the source view.

Size: programs can be megabytes. The builder stops expanding after ``max_nodes`` nodes and
leaves ``more`` markers with the node's path, so the page can fetch that subtree on demand
(``subtree``); previews read at most a few hundred characters of source per node, and long
strings are folded to a preview plus their length.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

from spellide.spell import api
from spellide.spell.api import Char, Keyword, List, Map, Regex, Set, Span, SpellError, Symbol, Vector
from spellide.spell.api import pretty_text

PREVIEW_CHARS = 100
FULL_CHARS = 4_000        # a cut leaf up to this long can be expanded to its whole (pretty) text
FULL_WIDTH = 72
STRING_FOLD = 80          # strings longer than this are folded
STRING_PREVIEW = 60
DEFAULT_MAX_NODES = 400   # nodes in a first render; the rest load on demand
MAX_TREE_DEPTH = 100      # deeper forms are left folded (their children load when asked for)
MAX_CHILDREN = 60         # a list with more elements shows its first few and its last ones...
HEAD_CHILDREN = 5         # ...(the end of a do body is where an agent's newest moves are)
CHUNK = 200               # children fetched per "more" click

# The edit markers and the note a rethink leaves, as the core names them: each is its own kind.
_MARKER_KINDS = {w: w for w in (*api.MARKERS, api.THINK.name)}
# Forms whose kind is named after their head symbol.
HEAD_KINDS = {
    "quine": "quine", "eval": "eval", "do": "do", "def": "def", **_MARKER_KINDS,
    "fn": "fn", "fn*": "fn",
    "defn": "defn", "defmacro": "defn", "let": "let", "loop": "let", "binding": "let",
    "quote": "quote",
}
# The human-readable label of each kind, shown as a badge.
KIND_LABELS = {
    "quine": "quine", "eval": "eval", "do": "do", "def": "def", **_MARKER_KINDS,
    "trailing": "trailing",
    "quote": "quote", "effect": "effect", "fn": "fn", "defn": "defn", "let": "let",
    "call": "call", "vector": "vector", "map": "map", "set": "set", "entry": "entry",
    "string": "string", "literal": "literal", "symbol": "symbol", "more": "more",
}
_WS = re.compile(r"\s+")


@dataclass
class TreeNode:
    """One form. ``path`` is the child-index path from the root (for fetching subtrees)."""

    kind: str
    preview: str
    path: str
    head: str = ""
    start: Optional[int] = None
    end: Optional[int] = None
    line: Optional[int] = None
    col: Optional[int] = None
    children: list["TreeNode"] = field(default_factory=list)
    length: Optional[int] = None      # full length of a folded string
    folded: bool = False
    more: int = 0                     # for kind "more": how many children it stands for
    more_from: int = 0                # for kind "more": the hidden children's index range
    more_to: int = 0
    depth: int = 0
    full: str = ""                    # a cut leaf's whole form, pretty-printed (expandable)
    open_preview: str = ""            # what an open node's row says (its head): children follow
    change: str = ""                  # how this form came into the program (the edit trace)
    change_label: str = ""


    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def has_children(self) -> bool:
        return bool(self.children)


@dataclass
class Tree:
    """The result for one program text: roots, or the read error with its position."""

    roots: list[TreeNode]
    error: Optional[str] = None
    error_line: Optional[int] = None
    error_col: Optional[int] = None
    balanced: int = 0        # closing parens added to read an open prefix
    node_count: int = 0
    truncated: bool = False


def _head_name(form: Any) -> Optional[str]:
    if isinstance(form, List) and form and isinstance(form[0], Symbol):
        return form[0].full
    return None


def _bare(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _is_atom(x: Any) -> bool:
    return not isinstance(x, (List, Vector, Map, Set))


def _preview(text: str, span: Optional[Span], fallback: str) -> str:
    if span is None:
        return fallback
    piece = text[span.start:min(span.end, span.start + PREVIEW_CHARS * 3)]
    piece = _WS.sub(" ", piece).strip()
    if len(piece) > PREVIEW_CHARS or span.end - span.start > PREVIEW_CHARS * 3:
        piece = piece[:PREVIEW_CHARS].rstrip() + " …"
    return piece


def _atom_text(x: Any) -> str:
    """A short rendering of an atom for nodes read without a span."""
    if x is None:
        return "nil"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, str):
        return '"' + x[:STRING_PREVIEW] + ('…' if len(x) > STRING_PREVIEW else '') + '"'
    if isinstance(x, (Symbol, Keyword)):
        return (":" if isinstance(x, Keyword) else "") + x.full
    if isinstance(x, Char):
        return "\\" + x.c
    if isinstance(x, Regex):
        return '#"' + x.pattern + '"'
    return str(x)


class _Builder:
    def __init__(self, text: str, max_nodes: int, base_depth: int = 0):
        self.base_depth = base_depth
        self.text = text
        self.max_nodes = max_nodes
        self.count = 0
        self.truncated = False

    def kind_of(self, form: Any, trailing: bool) -> tuple[str, str]:
        if isinstance(form, str):
            return "string", ""
        if isinstance(form, Symbol):
            return "symbol", ""
        if isinstance(form, Vector):
            return "vector", ""
        if isinstance(form, Map):
            return "map", ""
        if isinstance(form, Set):
            return "set", ""
        if isinstance(form, List):
            head = _head_name(form)
            if head is None:
                return "call", ""
            if trailing and head == "quote":
                return "trailing", head
            kind = HEAD_KINDS.get(head)
            if kind:
                return kind, head
            if _bare(head).startswith("!"):
                return "effect", head
            return "call", head
        return "literal", ""

    def node(self, form: Any, span: Optional[Span], path: str, depth: int,
             trailing: bool = False) -> TreeNode:
        self.count += 1
        kind, head = self.kind_of(form, trailing)
        n = TreeNode(kind=kind, head=head, path=path, depth=depth,
                     preview=_preview(self.text, span, _atom_text(form) if _is_atom(form) else kind))
        if span is not None:
            n.start, n.end, n.line, n.col = span.start, span.end, span.line, span.col
        if isinstance(form, str):
            if len(form) > STRING_FOLD:
                n.folded = True
                n.length = len(form)
                n.preview = '"' + _WS.sub(" ", form[:STRING_PREVIEW]) + '…"'
                n.full = self.full_text(span)
            return n
        if _is_atom(form):
            return n
        elems, spans = self.children_of(form)
        # A form whose elements are all short atoms reads fine as its preview alone.
        if all(_is_atom(e) and not (isinstance(e, str) and len(e) > STRING_FOLD) for e in elems) \
                and span is not None and span.end - span.start <= PREVIEW_CHARS:
            return n
        self.add_children(n, form, elems, spans, 0, len(elems))
        n.open_preview = self.head_text(span, spans, elems) if n.preview.endswith("…") else ""
        return n

    def full_text(self, span: Optional[Span]) -> str:
        """A cut form's text laid out for reading, when it is not too long to send."""
        if span is None or span.end - span.start > FULL_CHARS:
            return ""
        piece = self.text[span.start:span.end]
        try:
            return pretty_text(piece, FULL_WIDTH).text
        except (SpellError, RecursionError):
            return piece

    def head_text(self, span: Optional[Span], spans: list, elems: list) -> str:
        """An open form's row: its text up to its first child that is a collection (the
        children are listed below it), e.g. ``(def todo …``."""
        if span is None:
            return ""
        stop = next((s.start for e, s in zip(elems, spans) if s is not None and not _is_atom(e)), span.end)
        return _preview(self.text, Span(0, 0, 0, 0, span.start, stop), "").rstrip(" …") + " …"

    def placeholder(self, parent: TreeNode, start: int, end: int) -> TreeNode:
        self.truncated = True
        return TreeNode(kind="more", preview="", path=parent.path, depth=parent.depth + 1,
                        more=end - start, more_from=start, more_to=end)

    def add_children(self, n: TreeNode, form: Any, elems: list, spans: list, start: int, end: int,
                     limit: Optional[int] = None) -> None:
        """Children ``start..end`` of ``n``: long runs are cut to a head and a tail around a
        placeholder, and the node budget and depth limit leave placeholders too."""
        if n.depth + 1 - self.base_depth > MAX_TREE_DEPTH:
            n.children.append(self.placeholder(n, start, end))
            return
        limit = MAX_CHILDREN if limit is None else limit
        if end - start > limit:
            head = min(HEAD_CHILDREN, limit // 4) if limit == MAX_CHILDREN else limit
            tail_from = end - (limit - head) if limit == MAX_CHILDREN else end
            order: list[Optional[int]] = list(range(start, start + head))
            order.append(None)
            order.extend(range(tail_from, end))
            hidden = (start + head, tail_from)
        else:
            order, hidden = list(range(start, end)), (0, 0)
        body_last = self.trailing_index(form)
        for pos, i in enumerate(order):
            if i is None:
                n.children.append(self.placeholder(n, *hidden))
                continue
            if self.count >= self.max_nodes:
                rest = [j for j in order[pos:] if j is not None]
                first = rest[0] if rest else i
                n.children.append(self.placeholder(n, first, end))
                return
            n.children.append(self.node(elems[i], spans[i], f"{n.path}.{i}" if n.path else str(i),
                                        n.depth + 1, trailing=(i == body_last)))

    @staticmethod
    def children_of(form: Any) -> tuple[list, list]:
        """Displayed children: the elements after the head for lists (the head is the
        node's label), all elements otherwise; maps yield ``key value`` entries as pairs."""
        spans = list(getattr(form, "spans", None) or ())
        if isinstance(form, Map):
            elems: list = []
            out_spans: list = []
            for i, (k, v) in enumerate(form.items()):
                ks, vs = (spans[i] if i < len(spans) else (None, None))
                elems.extend([k, v])
                out_spans.extend([ks, vs])
            return elems, out_spans
        items = list(form)
        spans = spans + [None] * (len(items) - len(spans))
        if isinstance(form, List) and items and isinstance(items[0], Symbol):
            return items[1:], spans[1:]
        return items, spans

    @staticmethod
    def trailing_index(form: Any) -> int:
        """Index (among displayed children) of a ``do`` body's last form: the trailing
        expression, which is the one that decides whether the program calls the model again."""
        if _head_name(form) == "do" and len(form) > 1:
            return len(form) - 2
        return -1


_PARSED: "OrderedDict[str, tuple[list, list]]" = OrderedDict()
_PARSED_MAX = 4
_PARSED_LOCK = threading.Lock()


def read_cached(text: str) -> tuple[list, list]:
    """``read_all_spans`` with a small per-process cache: following a run, switching tabs and
    diffing step k against k-1 read the same few programs again and again, and reading a long
    program is the biggest cost of those pages. Callers must not mutate the forms."""
    from spellide.spell.api import read_all_spans

    with _PARSED_LOCK:
        hit = _PARSED.get(text)
        if hit is not None:
            _PARSED.move_to_end(text)
            return hit
    forms, spans = read_all_spans(text)
    result = (list(forms), list(spans))
    if len(text) >= 2_000:          # small programs are cheap to read again
        with _PARSED_LOCK:
            _PARSED[text] = result
            while len(_PARSED) > _PARSED_MAX:
                _PARSED.popitem(last=False)
    return result


def read_forms(text: str, open_prefix: bool = False) -> tuple[list, list, int]:
    """Every top-level form with its span; an open prefix is closed first.
    Raises ``SpellError`` (a ``ReadError`` with line and column) when the text cannot be read."""
    added = 0
    if open_prefix:
        text, added = api.balance_open(text)
    forms, spans = read_cached(text)
    return forms, spans, added


def _error_tree(err: SpellError) -> Tree:
    return Tree(roots=[], error=err.message, error_line=getattr(err, "line", None) or (err.span.line if err.span else None),
                error_col=getattr(err, "col", None) or (err.span.col if err.span else None))


def build_tree(text: str, open_prefix: bool = False, max_nodes: int = DEFAULT_MAX_NODES) -> Tree:
    """The display tree of a program (or of an open prefix, closed for reading)."""
    try:
        forms, spans, added = read_forms(text, open_prefix)
    except SpellError as err:
        return _error_tree(err)
    except RecursionError:
        return Tree(roots=[], error="The program is nested too deeply to display as a tree")
    b = _Builder(text, max_nodes)
    roots = []
    for i, f in enumerate(forms):
        if b.count >= max_nodes:
            b.truncated = True
            break
        roots.append(b.node(f, spans[i] if i < len(spans) else None, str(i), 0))
    return Tree(roots=roots, balanced=added, node_count=b.count, truncated=b.truncated)


def _locate(text: str, path: str, open_prefix: bool) -> Optional[tuple[Any, Any, int, bool]]:
    """(form, span, depth, trailing) of the node at ``path``, or None."""
    try:
        forms, spans, _ = read_forms(text, open_prefix)
        idx = [int(p) for p in path.split(".") if p != ""]
    except (SpellError, ValueError, RecursionError):
        return None
    if not idx or not 0 <= idx[0] < len(forms):
        return None
    form, span = forms[idx[0]], spans[idx[0]]
    trailing = False
    for i in idx[1:]:
        if _is_atom(form):
            return None
        elems, child_spans = _Builder.children_of(form)
        if not 0 <= i < len(elems):
            return None
        trailing = i == _Builder.trailing_index(form)
        form, span = elems[i], child_spans[i]
    return form, span, len(idx) - 1, trailing


def subtree(text: str, path: str, open_prefix: bool = False,
            max_nodes: int = DEFAULT_MAX_NODES) -> Optional[TreeNode]:
    """The node at ``path`` (``"0.3.1"``) with up to ``max_nodes`` descendants, or None."""
    found = _locate(text, path, open_prefix)
    if found is None:
        return None
    form, span, depth, trailing = found
    b = _Builder(text, max_nodes, base_depth=depth)
    try:
        return b.node(form, span, path, depth, trailing=trailing)
    except RecursionError:
        return None


def children_range(text: str, path: str, start: int, end: int, open_prefix: bool = False,
                   max_nodes: int = DEFAULT_MAX_NODES) -> Optional[list[TreeNode]]:
    """Children ``start..end`` of the node at ``path`` (what a "more" placeholder stood for):
    at most ``CHUNK`` of them, then a placeholder for the rest."""
    found = _locate(text, path, open_prefix)
    if found is None:
        return None
    form, span, depth, _ = found
    if _is_atom(form):
        return None
    elems, spans = _Builder.children_of(form)
    start, end = max(0, start), min(end, len(elems))
    if start >= end:
        return []
    b = _Builder(text, max_nodes, base_depth=depth)
    parent = TreeNode(kind="", preview="", path=path, depth=depth)
    try:
        b.add_children(parent, form, elems, spans, start, end, limit=CHUNK)
    except RecursionError:
        return None
    # a run longer than CHUNK keeps its head and leaves a placeholder at the end
    return parent.children
