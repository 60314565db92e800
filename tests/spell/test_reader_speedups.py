"""The reader's C fast path (spellide/spell/_speedups/_reader.c) against the Python reader.

The C path must build exactly what the Python reader builds, node for node: the same types and
values, the same span (offsets, line and column) on every node and in every ``spans`` tuple,
and it must hand every input it does not fully understand, errors included, back to the Python
reader (it returns None). The bench inputs are also pinned to a stored digest of every node and
span, so that a change of either reader that moves a span fails here.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from bench.reader_bench import make_text
from spellide.spell import reader
from spellide.spell.data import Char, Keyword, Map, Regex, Set, SourceLines, Symbol, _Seq
from spellide.spell.errors import ReadError

ROOT = Path(__file__).resolve().parents[2]

needs_c = pytest.mark.skipif(reader._c_scan is None, reason="the C reader is not built")


def span_key(sp) -> tuple:
    return (sp.start, sp.end, sp.line, sp.col, sp.end_line, sp.end_col)


def dump(x) -> tuple:
    """Everything about a form that either reader decides, all the way down."""
    if isinstance(x, Symbol):
        return ("sym", x.ns, x.name, span_key(x.span), x._hash == hash(("sym", x.ns, x.name)))
    if isinstance(x, _Seq):
        return (type(x).__name__, span_key(x.span), tuple(span_key(s) for s in x.spans),
                getattr(x, "first_line", None), tuple(dump(y) for y in x))
    if isinstance(x, Map):
        return ("map", span_key(x.span), tuple((span_key(a), span_key(b)) for a, b in x.spans),
                tuple((dump(k), dump(v)) for k, v in x.items()))
    if isinstance(x, Set):
        return ("set", span_key(x.span), tuple(dump(y) for y in x))
    if isinstance(x, (Char, Regex)):
        return (type(x).__name__, repr(x), span_key(x.span))
    if isinstance(x, Keyword):
        return ("kw", x.ns, x.name)
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    return (type(x).__name__, repr(x))


def dump_all(forms: list, spans: list) -> tuple:
    return tuple(dump(f) for f in forms), tuple(span_key(s) for s in spans)


def python_read(text: str):
    return reader.read_all_spans_python(text)


def c_read(text: str):
    return reader._c_scan(text, SourceLines(text))


def outcome(read, text: str):
    """What a reader makes of text: the dump, or the error with its position."""
    try:
        return "ok", dump_all(*read(text))
    except ReadError as e:
        return "error", str(e), e.line, e.col, e.incomplete


# Shapes the C path reads itself, and shapes it must hand back (each is read by both).
CASES = [
    "", " ", "\n\n", "x", "(+ 1 2)", "[1 [2 [3]]]", "{:a 1 :b [2 3]}", '"s"', '"a\\nb"',
    '"a \\equiv b"', '"\\u00e9\\uD83D\\uDE00"', '"multi\nline"', "nil true false", "nilx",
    "-", "+", "-5", "+5", "-0", "007", "0x1F", "1.5", "1e3", "1/2", "4/2", "2r101", "12N",
    "1.5M", "+5a", "5a", ":a", ":a/b", "::a", ":", ":a:", "a/b", "str/join", "/", "a//",
    "ns//", "//", "a:b", "%", "%1", "%&", "a'b", "a#b", "a%b", "'x", "'(1 2)", "`(a ~b ~@c)",
    "@x", "#'x", "''x", "'[a 'b]", "(quote)", "// c\n(x)", "  /* c\n(x)", "*/ c\nx", "x // y",
    "x\n  // y\nz", "; c\nx ; d\ny", "#! sh\nx", "a,b,,c", "(a\t\x0bb\x0cc\rd\x1ce)",
    "#{1 2}", "#{1 1}", "#(+ % 1)", "#_x y", "^:m [1]", "^{:spell/first-line 3} [1]",
    "#inst \"x\"", "#foo [1]", '#"a+"', '#"("', "##Inf", "##NaN", "##x", "\\a", "\\newline",
    "\\u00e9", "#:ns{:a 1}", "#?(:clj 1)", "#=x", "#<x>", "#", "\\", '"open', '#"open',
    "(", "(]", ")", "[)", "{:a}", "{:a 1 :a 2}", "{[1] 2 [1] 3}", "(1 2))", "é", "(é)",
    '"é"', "x\u00a0y", "(a\u2028b)", "'", "('", "'  ", "(a 'b) c", "x" * 5000, "(" * 2001,
    "(" * 400 + ")" * 400, "(" * 2001 + ")" * 2001, "'" * 2001 + "x", "1" * 4001, "-" + "1" * 3998, "{:a 1 :b}",
    "[1 2 3]\n\n(def x {:k \"v\\\"q\"})", "(def\n  x\n    1)", "a\x00b", "\x7f",
]


@needs_c
@pytest.mark.parametrize("text", CASES)
def test_c_path_matches_python_reader(text):
    got = c_read(text)
    want = outcome(python_read, text)
    if got is None:
        assert outcome(reader.read_all_spans, text) == want  # handed back: the public path still agrees
    else:
        assert want[0] == "ok", f"C read what the Python reader rejects: {want}"
        assert dump_all(*got) == want[1]


@needs_c
def test_c_path_reads_the_common_shapes_itself():
    """Not a vacuous pass: the fast path takes the shapes it is for."""
    for text in ["(+ 1 2)", "{:a 1}", "'(1 \"s\\n\")", "(str/join 1.5 :a/b)", "// c\n#'x"]:
        assert c_read(text) is not None, text
    for text in ["#{1}", "#(+ %)", "\\a", "(", "{:a 1 :a 2}", "é", "^:m x", "#_ x"]:
        assert c_read(text) is None, text


@needs_c
@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_c_path_matches_python_reader_on_the_bench_inputs(pretty):
    text, _ = make_text(1_000_000, pretty)
    got = c_read(text)
    assert got is not None
    assert dump_all(*got) == dump_all(*python_read(text))


# sha256 of repr(dump_all(...)) of the bench inputs (a Symbol's hash appears only as "it is
# hash(("sym", ns, name))", which holds in every process); made with the Python reader as it
# was before the C path (commit 4fabaee).
STORED = {
    (200_000, False): "808628a4986a203878e73deb8faaf034a37b95b30fa8e64de871e845ba3837cf",
    (200_000, True): "1d2a88a7db1a8bf26b0d6928470ef1308d71eaa533dfab092dcedfc03f9b6c33",
}


def stable_digest(forms: list, spans: list) -> str:
    return hashlib.sha256(repr(dump_all(forms, spans)).encode()).hexdigest()


@pytest.mark.parametrize("size,pretty", sorted(STORED))
def test_bench_inputs_read_to_the_stored_spans(size, pretty):
    text, _ = make_text(size, pretty)
    assert stable_digest(*reader.read_all_spans(text)) == STORED[(size, pretty)]
    assert stable_digest(*python_read(text)) == STORED[(size, pretty)]


def test_the_python_reader_is_there_to_compare_with():
    assert reader.read_all_spans_python("(a 1)")[0][0][1] == 1
    assert reader.reader_fast_path() == (reader._c_scan is not None)


_ALPHABET = st.sampled_from(list("()[]{}'`~@^#\\\";:,/%+-._ \n\t\r\x0b01aZé\u00a0") +
                            ["nil", "true", "x/y", "\"s\"", "//", "/*", "*/", "#!", "#_", "#'",
                             "~@", "12", "1.5", ":k", ":a/b", "0x1f", "\\n", "\"a\\tb\""])


@needs_c
@settings(max_examples=600, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_c_path_matches_python_reader_on_random_text(text):
    got = c_read(text)
    want = outcome(python_read, text)
    if got is not None:
        assert want[0] == "ok"
        assert dump_all(*got) == want[1]
    else:
        assert outcome(reader.read_all_spans, text) == want


def test_pure_python_is_used_when_asked():
    """SPELLIDE_PURE_PYTHON=1 turns the fast path off (and the reader still reads)."""
    code = ("from spellide.spell import reader; "
            "print(reader._c_scan is None, reader.read_all('(a 1)')[0][1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "SPELLIDE_PURE_PYTHON": "1"}, check=True)
    assert out.stdout.split() == ["True", "1"]


def test_a_built_fast_path_is_the_one_in_use():
    """A built module that does not load would only show as a slow reader: say so here."""
    built = list((ROOT / "spellide/spell/_speedups").glob("_reader*.so"))
    if not built or os.environ.get("SPELLIDE_PURE_PYTHON"):
        pytest.skip("the C reader is not built here")
    assert reader._c_scan is not None
