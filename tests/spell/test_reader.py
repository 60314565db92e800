"""Reader: spell-language.md section 2 and conformance cases 1, 5 and 6 of section 13, plus
spans, error positions, and incomplete-versus-malformed input."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest

from spellide.spell.data import (Char, Keyword, List, Map, Regex, Set, Span, Symbol, Vector,
                                 kw, slist, smap, spell_equal, sym, vec)
from spellide.spell.errors import ReadError
from spellide.spell.reader import MAX_DEPTH, read_all, read_all_spans, read_one, read_string


def same(a, b) -> bool:
    """Equal and of the same shape all the way down (list is not vector here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (List, Vector)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Map):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return spell_equal(a, b)


def read_error(text: str) -> ReadError:
    with pytest.raises(ReadError) as info:
        read_all(text)
    return info.value


# --- conformance (section 13) -------------------------------------------------------------

def test_case1_three_forms():
    forms = read_all('(+ 1 2) 42 "hi"')
    assert len(forms) == 3
    assert same(forms[0], slist(sym("+"), 1, 2))
    assert forms[1] == 42 and type(forms[1]) is int
    assert forms[2] == "hi"


def test_section_2_3_two_forms():
    text = '(do (def response "hi") (def return 42))\n(def files "result")'
    assert len(read_all(text)) == 2


def test_case5_unknown_escape_keeps_backslash():
    (form,) = read_all('(def x "a \\equiv b")')
    assert same(form, slist(sym("def"), sym("x"), "a \\equiv b"))
    assert len(form[2]) == 10


def test_case6_line_start_comment_markers():
    forms = read_all("// note\n(def x 1)")
    assert len(forms) == 1 and same(forms[0], slist(sym("def"), sym("x"), 1))
    err = read_error("(def x 1) // tail")
    assert err.reason == "Invalid token: //"
    assert (err.line, err.col) == (1, 11)
    assert not err.incomplete


def test_indented_block_comment_markers():
    text = "(do\n   /* block\n   */ still a comment\n  // and this\n  1)"
    assert same(read_one(text), slist(sym("do"), 1))


def test_comment_marker_inside_string_is_text():
    assert read_one('"line\n// not a comment"') == "line\n// not a comment"


# --- literals --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("42", 42), ("-7", -7), ("+5", 5), ("0", 0), ("42N", 42), ("0x1F", 31), ("-0X10", -16),
    ("017", 15), ("2r101", 5), ("36rZ", 35), ("2/3", Fraction(2, 3)), ("4/2", 2),
    ("-1/2", Fraction(-1, 2)), ("1.5", 1.5), ("-2.5e3", -2500.0), ("1e3", 1000.0),
    ("1.", 1.0), ("1.25M", Decimal("1.25")), ("7M", Decimal("7")),
    ("##Inf", math.inf), ("##-Inf", -math.inf),
])
def test_numbers(text, expected):
    value = read_one(text)
    assert value == expected and type(value) is type(expected)


def test_nan_and_huge_int():
    assert math.isnan(read_one("##NaN"))
    big = "9" * 5000
    assert read_one(big) == int(big[:4000]) * 10 ** 1000 + int(big[4000:])


@pytest.mark.parametrize("text", ["08", "1a", "1.2.3", "0x", "1/0", "2r2", "1/2/3", "-1x"])
def test_bad_numbers(text):
    err = read_error(text)
    assert not err.incomplete
    assert err.reason.startswith(("Invalid number", "Invalid token"))


def test_constants_symbols_keywords():
    forms = read_all("nil true false foo ns/name a/b/c / clojure.core// :k :ns/k :a.b/c.d "
                     ":trace/node-id")
    assert forms[:3] == [None, True, False]
    assert forms[3] == Symbol("foo")
    assert (forms[4].ns, forms[4].name) == ("ns", "name")
    assert (forms[5].ns, forms[5].name) == ("a", "b/c")
    assert forms[6] == Symbol("/")
    assert (forms[7].ns, forms[7].name) == ("clojure.core", "/")
    assert forms[8] is Keyword("k")
    assert forms[9] is Keyword("k", "ns")
    assert forms[10] is Keyword("c.d", "a.b")
    assert forms[11] is Keyword("node-id", "trace")


@pytest.mark.parametrize("text", ["a:", "a::b", "/a", "a/", ":", "::", ":a/", "a//b", ":::%", ":::a"])
def test_invalid_tokens(text):
    err = read_error(text)
    assert err.reason.startswith("Invalid token") and not err.incomplete


def test_strings_and_escapes():
    assert read_one(r'"t\tb\bn\nr\rf\f q\" s\\"') == 't\tb\bn\nr\rf\f q" s\\'
    assert read_one(r'"\u0041\u00e9"') == "Aé"
    assert read_one(r'"\101\0"') == "A\0"
    assert read_one(r'"\ud83d\ude00"') == "\U0001F600"
    assert read_one(r'"\x \q \uZZ"') == r"\x \q \uZZ"
    assert read_one('"multi\nline"') == "multi\nline"


def test_characters():
    forms = read_all(r"\a \newline \space \tab \return \formfeed \backspace \u0041 \o101 \( \\")
    assert [c.c for c in forms] == ["a", "\n", " ", "\t", "\r", "\f", "\b", "A", "A", "(", "\\"]
    assert all(type(c) is Char for c in forms)
    assert same(read_one(r"[\a \b]"), vec(Char("a"), Char("b")))
    assert same(read_one(r"(\a)"), slist(Char("a")))


@pytest.mark.parametrize("text", [r"\invalidchar", r"\ab", r"\uD800", r"\o400", r"\u00G1"])
def test_bad_characters(text):
    err = read_error(text)
    assert err.reason == "Unsupported character: " + text
    assert not err.incomplete


def test_invalidchar_inside_program_position():
    err = read_error("(do\n  \\invalidchar)")
    assert (err.line, err.col) == (2, 3)


def test_regex():
    r = read_one(r'#"\d+\"x"')
    assert type(r) is Regex and r.pattern == r"\d+\"x"
    assert r.compiled.match('12"x')
    err = read_error('#"(unclosed"')
    assert err.reason.startswith("Invalid regex") and not err.incomplete


def test_collections():
    form = read_one('(a [1 2] {:k "v" 3 nil} #{1 2} ())')
    assert same(form, slist(sym("a"), vec(1, 2), smap(kw("k"), "v", 3, None), Set([1, 2]),
                            slist()))
    assert type(form[4]) is List
    assert list(form[2].keys()) == [kw("k"), 3]


def test_commas_are_whitespace():
    assert same(read_one("{:a 1, :b 2,}"), smap(kw("a"), 1, kw("b"), 2))


def test_map_and_set_errors():
    assert read_error("{:a 1 :b}").reason == "Map literal must contain an even number of forms"
    assert read_error("{:a 1 :a 2}").reason == "Duplicate key: :a"
    err = read_error("#{1 2 1}")
    assert err.reason == "Duplicate key: 1" and (err.line, err.col) == (1, 7)


def test_reader_macros():
    forms = read_all("'x `y ~z ~@w @v #'u")
    heads = [f[0].name for f in forms]
    assert heads == ["quote", "quote", "unquote", "unquote-splicing", "deref", "var"]
    assert same(read_one("'(a b)"), slist(sym("quote"), slist(sym("a"), sym("b"))))


def test_fn_literal():
    form = read_one("#(+ % %2 %&)")
    assert same(form, slist(sym("fn*"), vec(sym("%1"), sym("%2"), sym("&"), sym("%&")),
                            slist(sym("+"), sym("%1"), sym("%2"), sym("%&"))))
    assert same(read_one("#(inc %)"), slist(sym("fn*"), vec(sym("%1")),
                                            slist(sym("inc"), sym("%1"))))
    assert same(read_one("#(f)"), slist(sym("fn*"), vec(), slist(sym("f"))))
    assert read_one("%") == Symbol("%")  # outside #() it is a plain symbol
    assert read_error("#(a #(b))").reason == "Nested #()s are not allowed"
    assert read_error("#(a %x)").reason.startswith("Invalid arg literal")


def test_discard_meta_and_tags():
    assert read_all("#_ (a b) c #_#_ d e f") == [sym("c"), sym("f")]
    assert same(read_one("^:private [1]"), vec(1))
    assert same(read_one("^{:doc \"x\"} (f)"), slist(sym("f")))
    v = read_one('^{:spell/first-line 3} ["a" "b"]')
    assert same(v, vec("a", "b")) and v.first_line == 3
    assert read_one('#inst "2024-01-02T03:04:05.000-00:00"') == "2024-01-02T03:04:05.000-00:00"
    assert read_one('#uuid "0c8b6fd8-0000-4000-8000-000000000000"').startswith("0c8b")
    obj = read_one('#object[clojure.lang.Atom 0x1 {:val 1}]')
    assert same(obj, slist(sym("object"), vec(sym("clojure.lang.Atom"), 1,
                                              smap(kw("val"), 1))))
    assert read_error("#inst 42").reason == "#inst expects a string"
    assert read_one("#! shebang\n1") == 1


def test_namespaced_map():
    assert same(read_one("#:a{:b 1 :_/c 2 d 3}"),
                smap(Keyword("b", "a"), 1, kw("c"), 2, Symbol("d", "a"), 3))


def test_unsupported_dispatch():
    assert read_error("#?(:clj 1)").reason.startswith("Reader conditionals")
    assert read_error("#=(+ 1 2)").reason.startswith("Read-eval")
    assert read_error("#%").reason == "No dispatch macro for: %"


# --- EDN as Clojure's pr writes it (trace.edn) ------------------------------------------------

TRACE_NODE = '''{:id 3, :parent 1, :depth 2,
 :prefix "(quine completion (eval (do (quine prompt \\"P\\") ",
 :response "\\"done\\")", :raw-text "a\\nb \\\\ c",
 :value {:spell/type :ok, :data [1 2.5 nil true "x"]},
 :started-at #inst "2025-03-01T10:00:00.123-00:00",
 :error nil, :children [], :tags #{:a :b}, :ratio 1/3, :big 12345678901234567890N}'''


def test_trace_node_edn():
    node = read_one(TRACE_NODE)
    assert type(node) is Map
    assert node[kw("id")] == 3 and node[kw("parent")] == 1
    assert node[kw("prefix")] == '(quine completion (eval (do (quine prompt "P") '
    assert node[kw("response")] == '"done")'
    assert node[kw("raw-text")] == "a\nb \\ c"
    assert same(node[kw("value")], smap(Keyword("type", "spell"), kw("ok"),
                                        kw("data"), vec(1, 2.5, None, True, "x")))
    assert node[kw("started-at")] == "2025-03-01T10:00:00.123-00:00"
    assert node[kw("error")] is None
    assert same(node[kw("children")], vec())
    assert node[kw("tags")] == Set([kw("a"), kw("b")])
    assert node[kw("ratio")] == Fraction(1, 3)
    assert node[kw("big")] == 12345678901234567890


# --- spans --------------------------------------------------------------------------------

def test_spans_of_nested_forms():
    text = '(a\n  [b "x\ny" {:k 1}] c)'
    form = read_one(text)
    assert form.span == Span(1, 1, 3, 14, 0, len(text))
    a, v, c = form.spans
    assert a == Span(1, 2, 1, 3, 1, 2) and form[0].span == a
    assert v == Span(2, 3, 3, 11, 5, 21) and form[1].span == v
    assert text[v.start:v.end] == '[b "x\ny" {:k 1}]'
    assert c == Span(3, 12, 3, 13, 22, 23)
    b, s, m = form[1].spans
    assert text[s.start:s.end] == '"x\ny"' and (s.line, s.col, s.end_line, s.end_col) == (2, 6, 3, 3)
    ((ks, vs),) = form[1][2].spans
    assert text[ks.start:ks.end] == ":k" and text[vs.start:vs.end] == "1"
    assert (ks.line, ks.col) == (3, 5)


def test_spans_of_every_child_kind():
    text = "[1 \"s\" :k sym \\c #\"r\" 'q #{2} ##Inf 1/2]"
    v = read_one(text)
    assert [text[sp.start:sp.end] for sp in v.spans] == \
        ["1", '"s"', ":k", "sym", "\\c", '#"r"', "'q", "#{2}", "##Inf", "1/2"]
    assert v[3].span == v.spans[3] and v[4].span == v.spans[4] and v[5].span == v.spans[5]
    assert v[7].span == v.spans[7]
    (two,) = v[7].spans
    assert text[two.start:two.end] == "2" and two.col == two.start + 1
    quote = v[6]
    assert [text[sp.start:sp.end] for sp in quote.spans] == ["'", "q"]


def test_top_level_spans_and_crlf():
    forms, spans = read_all_spans("1\r\n  (x)\r\n\"s\"")
    assert forms[0] == 1 and (spans[0].line, spans[0].col) == (1, 1)
    assert (spans[1].line, spans[1].col, spans[1].end_col) == (2, 3, 6)
    assert (spans[2].line, spans[2].col) == (3, 1)


def test_fn_literal_spans():
    text = "(map #(inc %) xs)"
    form = read_one(text)
    fn = form[1]
    assert text[fn.span.start:fn.span.end] == "#(inc %)"
    body = fn[2]
    assert text[body.span.start:body.span.end] == "(inc %)"
    assert text[body.spans[1].start:body.spans[1].end] == "%"


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, reason, pos", [
    ("(a b", "EOF while reading list started at 1:1", (1, 5)),
    ("[a\n (b", "EOF while reading list started at 2:2", (2, 4)),
    ("{:a 1", "EOF while reading map started at 1:1", (1, 6)),
    ("#{1", "EOF while reading set started at 1:1", (1, 4)),
    ('(str "abc', "EOF while reading string started at 1:6", (1, 10)),
    ('#"ab', "EOF while reading regex started at 1:1", (1, 5)),
    ("'", "EOF while reading reader macro started at 1:1", (1, 2)),
    ("#", "EOF while reading dispatch macro", (1, 2)),
    ("\\", "EOF while reading character", (1, 2)),
    ("#_", "EOF while reading #_ discard started at 1:1", (1, 3)),
])
def test_incomplete_input(text, reason, pos):
    err = read_error(text)
    assert err.incomplete is True
    assert err.reason == reason
    assert (err.line, err.col) == pos
    assert err.kind == "read"


@pytest.mark.parametrize("text, reason, pos", [
    (")", "Unmatched delimiter: )", (1, 1)),
    ("(a]", "Unmatched delimiter: ]", (1, 3)),
    ("(a\n  b))", "Unmatched delimiter: )", (2, 5)),
    ("[1 2)", "Unmatched delimiter: )", (1, 5)),
    ("(a ')", "Unmatched delimiter: )", (1, 5)),
    ("(f \\invalidchar)", "Unsupported character: \\invalidchar", (1, 4)),
])
def test_malformed_input(text, reason, pos):
    err = read_error(text)
    assert err.incomplete is False
    assert err.reason == reason
    assert (err.line, err.col) == pos
    assert str(err) == f"{reason} at {pos[0]}:{pos[1]}"


def test_deep_nesting_is_a_read_error():
    for text in ["(" * 100000, "[" * 100000, "'" * 100000, "#_" * 100000, "(" * 100000 + ")" * 100000]:
        with pytest.raises(ReadError) as info:
            read_all(text)
        assert "Nesting too deep" in info.value.reason
    deep = "(" * MAX_DEPTH + ")" * MAX_DEPTH
    form = read_one(deep)
    assert type(form) is List


def test_read_one_and_read_string():
    assert read_one(" ; comment\n (a) ; more\n") == slist(sym("a"))
    err = pytest.raises(ReadError, read_one, "1 2").value
    assert err.reason == "Expected exactly one form, got 2" and err.col == 3
    assert pytest.raises(ReadError, read_one, "  ").value.incomplete
    assert read_string("(a b) (c") == slist(sym("a"), sym("b"))
    assert read_string("1 )") == 1
    assert pytest.raises(ReadError, read_string, "").value.incomplete
    assert pytest.raises(ReadError, read_string, "(a").value.incomplete


def test_tolerate_trailing_closer():
    assert read_all("(a) )", tolerate_trailing_closer=True) == [slist(sym("a"))]
    assert read_all("42]\n", tolerate_trailing_closer=True) == [42]
    with pytest.raises(ReadError):
        read_all("(a) ))", tolerate_trailing_closer=True)
    with pytest.raises(ReadError):
        read_all("(a) ) b", tolerate_trailing_closer=True)
    with pytest.raises(ReadError):
        read_all("(a) )")


def test_non_string_input():
    with pytest.raises(ReadError):
        read_all(b"(a)")  # type: ignore[arg-type]
