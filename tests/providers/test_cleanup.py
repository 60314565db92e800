"""Reply cleanup: fences, prefix echoes, the streaming cleaner's guarantee (deltas concatenate
to the final cleaned text) and the incremental JSON decoder for tool arguments."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spellide.spell.models.cleanup import (StreamCleaner, ToolArgsDecoder, clean_response,
                                           strip_code_fences, strip_prefix_echo)

P = '(quine completion (eval (do (quine prompt "P") (quote (!extend)) '


@pytest.mark.parametrize("text, expected", [
    ("(def a 1)", "(def a 1)"),
    ("```clojure\n(def a 1)\n```", "(def a 1)"),
    ("```\n(def a 1)\n```\n", "(def a 1)"),
    ("  ```lisp\n(def a 1)\n(b)\n```\nThis defines a.", "(def a 1)\n(b)"),
    ("(def a 1)\n```", "(def a 1)"),
    ("```(def a 1)```", "(def a 1)"),
    ("```clojure\n(def a 1)", "(def a 1)"),               # unclosed fence
    ('(def s "```")', '(def s "```")'),                   # backticks inside code stay
])
def test_strip_code_fences(text, expected):
    assert strip_code_fences(text) == expected


@pytest.mark.parametrize("response, expected", [
    (P + "(def a 1)", "(def a 1)"),                       # exact
    ("\n" + P.strip() + " (def a 1)", " (def a 1)"),      # trimmed
    (P.replace(" (quote", "\n  (quote") + "(def a 1)", " (def a 1)"),  # whitespace runs differ
    ("(def a 1)", "(def a 1)"),                           # no echo
    (P[:20] + "X", P[:20] + "X"),                         # partial echo is not an echo
])
def test_strip_prefix_echo(response, expected):
    assert strip_prefix_echo(P, response) == expected


def test_clean_response_fence_then_echo():
    assert clean_response(P, "```\n" + P + "42\n```") == "42"


def _stream(prefix: str, raw: str, cuts: list[int]) -> tuple[str, bool]:
    c = StreamCleaner(prefix)
    out = []
    last = 0
    for cut in sorted(set(cuts)) + [len(raw)]:
        out.append(c.feed(raw[last:cut]))
        last = cut
    rest, ok = c.finish()
    return "".join(out) + rest, ok


reply_parts = st.tuples(
    st.sampled_from(["", "```", "```clojure\n", "```lisp\n", "  ```\n"]),
    st.sampled_from(["", P, P.strip(), "\n" + P]),
    st.text(alphabet="(){}[] \n\"'`abcdefxyz:!-\\0123", max_size=60),
    st.sampled_from(["", "\n```", "\n```\n", "```", "\n```\nSome prose after.", "\n``"]),
)


@settings(max_examples=400, deadline=None)
@given(reply_parts, st.lists(st.integers(0, 200), max_size=8))
def test_stream_cleaner_deltas_equal_final_text(parts, cuts):
    raw = "".join(parts)
    streamed, consistent = _stream(P, raw, [c for c in cuts if c <= len(raw)])
    if consistent:
        assert streamed == clean_response(P, raw)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="(){}[] \nabcxyz\"'-:!", max_size=60), st.lists(st.integers(0, 80), max_size=8))
def test_stream_cleaner_plain_code_is_always_consistent(body, cuts):
    body = body.lstrip("`~")
    streamed, consistent = _stream(P, body, [c for c in cuts if c <= len(body)])
    assert consistent and streamed == clean_response(P, body)


def test_stream_cleaner_holds_back_only_what_it_must():
    c = StreamCleaner(P)
    assert c.feed("```clo") == ""                 # could be an opening fence
    assert c.feed("jure\n(def a") == "(def a"
    assert c.feed(" 1)\n") == " 1)"               # newline held: a fence may follow
    assert c.feed("```") == ""
    assert c.finish() == ("", True)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80), st.lists(st.integers(0, 400), max_size=10), st.booleans())
def test_tool_args_decoder_roundtrip(suffix, cuts, ascii_only):
    args = json.dumps({"suffix": suffix}, ensure_ascii=ascii_only)
    d = ToolArgsDecoder()
    out = []
    last = 0
    for cut in sorted({c for c in cuts if c <= len(args)}) + [len(args)]:
        out.append(d.feed(args[last:cut]))
        last = cut
    assert "".join(out) == suffix and d.done


def test_tool_args_decoder_other_fields_first_and_whitespace():
    d = ToolArgsDecoder()
    text = '{ "note" : "x\\"y", "n": 3,\n "suffix" :  "(a \\u00e9)" }'
    assert "".join(d.feed(ch) for ch in text) == "(a \u00e9)"


def test_tool_args_decoder_partial_is_a_prefix():
    d = ToolArgsDecoder()
    d.feed('{"suffix": "(def s \\"ab')
    assert d.decoded == '(def s "ab' and not d.done
