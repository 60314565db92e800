"""The pretty-printer: laid-out text reads back to equal forms (property tests on generated
values and on arbitrary readable text, comments included), the layout is the Clojure one
for the forms agents write, and the offset map carries every token to its new place."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spellide.spell.api import pretty_forms, pretty_str, pretty_text
from spellide.spell.data import Vector
from spellide.spell.errors import ReadError
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_all, read_all_spans, read_one
from tests.spell.test_reader_properties import _lispy_text, same, values

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
widths = st.integers(1, 100)


@SETTINGS
@given(values, widths)
def test_pretty_str_reads_back_equal(value, width):
    text = pretty_str(value, width)
    assert same(read_one(text), value), text


@SETTINGS
@given(st.lists(values, max_size=4), widths)
def test_pretty_forms_reads_back_equal(forms, width):
    text = pretty_forms(forms, width)
    back = read_all(text)
    assert len(back) == len(forms) and all(same(a, b) for a, b in zip(back, forms)), text


@SETTINGS
@given(values, widths)
def test_pretty_text_of_printed_value_reads_back_equal(value, width):
    compact = pr_str(Vector((value,)))
    laid = pretty_text(compact, width)
    (back,) = read_one(laid.text)
    assert same(back, value), laid.text


@settings(max_examples=600, deadline=None)
@given(_lispy_text, widths)
def test_pretty_text_of_any_readable_text_reads_back_equal(text, width):
    """Comments, discards, reader macros, odd spacing: whatever reads, reads the same laid out."""
    try:
        forms = read_all(text)
    except ReadError:
        return
    laid = pretty_text(text, width).text
    back = read_all(laid)
    assert len(back) == len(forms), laid
    assert all(same(a, b) or pr_str(a) == pr_str(b) for a, b in zip(back, forms)), laid


@SETTINGS
@given(values, st.integers(10, 80))
def test_offset_map_moves_every_token_with_its_text(value, width):
    compact = pr_str(Vector((value,)))
    laid = pretty_text(compact, width)
    for src, new, length in laid.moves:
        assert laid.text[new:new + length] == compact[src:src + length]
    # only whitespace changed
    assert re.sub(r"\s+", "", laid.text) == re.sub(r"\s+", "", compact) or '"' in compact or "\\" in compact


PROGRAM = ('(quine agent (eval (do (def notes (!call-now "Summarise the file" {:model "m" :temperature 0.5 '
           ':max-tokens 1000})) (defn helper [a b] (let [c (+ a b) d (* a b) e (str "some text" c d '
           '"and more text to make the line long")] (if (> c d) (println "c is bigger than d" c) '
           '(cond (= c 1) :one (= c 2) :two :else (str "other value of c, long enough" c))))) '
           '(quote (!extend "next")))))')


def test_program_layout_is_clojure_style():
    text = pretty_text(PROGRAM, 80).text
    assert text == """\
(quine agent
  (eval
    (do
      (def notes
        (!call-now "Summarise the file"
                   {:model "m" :temperature 0.5 :max-tokens 1000}))
      (defn helper [a b]
        (let [c (+ a b)
              d (* a b)
              e (str "some text" c d "and more text to make the line long")]
          (if (> c d)
            (println "c is bigger than d" c)
            (cond
              (= c 1) :one
              (= c 2) :two
              :else (str "other value of c, long enough" c)))))
      (quote (!extend "next")))))"""
    assert all(len(line) <= 80 for line in text.splitlines())
    assert read_all(text) == read_all(PROGRAM)


def test_a_form_that_fits_stays_on_one_line_and_wide_maps_go_one_entry_per_line():
    assert pretty_str(read_one("(let [a 1] (+ a 2))")) == "(let [a 1] (+ a 2))"
    m = read_one('{:alpha "first value" :beta "second value" :gamma [1 2 3]}')
    assert pretty_str(m, 30) == '{:alpha "first value"\n :beta "second value"\n :gamma [1 2 3]}'


def test_comments_are_kept_and_end_their_line():
    text = '(do (def x 1) ; the first\n (def y 2) #_(ignored form) (def z 3)) ; tail'
    laid = pretty_text(text, 20).text
    assert "; the first\n" in laid and "#_(ignored form)\n" in laid and laid.endswith("; tail")
    assert read_all(laid) == read_all(text)


def test_a_c_style_comment_token_never_starts_a_line():
    """``*/x`` is a symbol mid-line but a comment at the start of a line."""
    text = "[aaaa */x bbbb */y cccc]"
    laid = pretty_text(text, 6).text
    assert not any(line.lstrip().startswith("*/") for line in laid.splitlines())
    assert read_all(laid) == read_all(text)


def test_open_prefix_is_laid_out_without_its_missing_closers():
    prefix = '(quine a (eval (do (def x [1 2 3]) (defn f [x] (let [y (* x 2) z (+ y 1000000000000)] ('
    laid = pretty_text(prefix, 40, open_prefix=True)
    assert laid.text.endswith("(") and laid.text.count("(") == prefix.count("(")
    assert "\n" in laid.text
    assert read_all(laid.text + "))))))") == read_all(prefix + "))))))")


def test_segments_move_with_the_text():
    prefix = '(do (def a "alpha") (def b "beta") '
    text = prefix + '(def c "gamma value"))'
    laid = pretty_text(text, 20)
    segs = laid.segments([{"start": 0, "end": len(prefix), "source": "prefix"},
                          {"start": len(prefix), "end": len(text), "source": "model"}])
    model = laid.text[segs[1]["start"]:segs[1]["end"]]
    assert model.startswith('(def c') and model.endswith('"gamma value"))')
    assert segs[0]["end"] == segs[1]["start"]
    forms, spans = read_all_spans(laid.text)
    assert forms == read_all(text)


def test_deep_nesting_does_not_recurse_out():
    deep = "(" * 1500 + ")" * 1500
    assert read_all(pretty_text(deep, 80).text) == read_all(deep)
    assert read_one(pretty_str(read_one(deep))) == read_one(deep)
