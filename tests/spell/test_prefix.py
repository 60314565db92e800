"""check_prefix: a prefix may be open, but must not end inside a string, a regex, a comment
or a character literal (the model's completion would be swallowed), nor be malformed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from spellide.spell.api import check_prefix
from spellide.spell.prefix import scan_prefix
from spellide.spell.reader import read_all
from tests.spell.test_reader_properties import _lispy_text

PREFIX = '(quine agent (eval (do (def x 1)\n'


def test_the_issue_case_is_refused_at_the_open_string():
    err = check_prefix(PREFIX + '(def broken "unterminated')
    assert err is not None
    assert (err.line, err.col) == (2, 13)
    assert "inside a string" in err.reason


@pytest.mark.parametrize("tail, what, col", [
    ("; a note", "comment", 1), ("(str \\", "character", 6), ('(re-find #"[a-', "regex", 10),
    ("#! shebang-like", "comment", 1), ("  // c-style", "comment", 3),
])
def test_ending_inside_a_comment_character_or_regex_is_refused(tail, what, col):
    err = check_prefix(PREFIX + tail)
    assert err is not None and what in err.reason and (err.line, err.col) == (2, col)


@pytest.mark.parametrize("text", [
    PREFIX, PREFIX + "(", PREFIX + "(def y (!call-now", PREFIX + "(foo '", PREFIX + '(str "done" \\a',
    PREFIX + "; a comment that ends\n", PREFIX + '(str "a \\" quote"', "", "(def s #{1 2",
])
def test_open_prefixes_are_accepted(text):
    assert check_prefix(text) is None


@pytest.mark.parametrize("text, line, col", [
    (PREFIX + "(def y ]", 2, 8), ("(do (def x 1)))) (", 1, 15), ("(a {:k})", 1, 4),
])
def test_malformed_prefixes_are_refused_with_position(text, line, col):
    err = check_prefix(text)
    assert err is not None and (err.line, err.col) == (line, col), err


@settings(max_examples=500, deadline=None)
@given(_lispy_text)
def test_an_accepted_prefix_reads_once_closed(text):
    if check_prefix(text) is not None:
        return
    st = scan_prefix(text)
    assert st.ends_in is None
    try:
        read_all(text + "".join(reversed(st.closers)))
    except Exception as e:  # only text that stops where a form is still expected
        assert getattr(e, "offset", 0) >= len(text.rstrip())


def test_the_machine_asks_again_when_a_prefix_edit_ends_inside_a_string():
    """The runtime's own check (the CLI and run workers rely on it): the person is asked
    again with the problem, and the next edit goes through."""
    from spellide.spell import api
    from spellide.spell.api import Breakpoints, Controller, Decision, RunConfig
    from spellide.spell.machine import Run

    class Script(Controller):
        interactive = True

        def __init__(self):
            self.points = []

        def checkpoint(self, point):
            self.points.append(point)
            if len(self.points) == 1:
                return Decision(api.CONTINUE, point.text + '(def broken "unterminated', "alice")
            if len(self.points) == 2:
                return Decision(api.CONTINUE, point.text.rsplit("(def broken", 1)[0] + "(def ok 1) ", "alice")
            return Decision()

    ctl = Script()
    result = Run(RunConfig(prompt="P", model="hello", breakpoints=Breakpoints(before_model=True)),
                 controller=ctl).execute()
    refused = ctl.points[1]
    assert refused.reason == "edit refused" and "inside a string" in refused.error
    assert result.error is None and "(def ok 1)" in result.steps[0]["program"]
