"""A person's edit at a pause point is checked for what it is: a prefix as a prefix (the
model continues it, so it must not end inside a string, comment or character literal), a
program as a program."""

from __future__ import annotations

import threading
import time

from spellide.spell import api
from spellide.web.runner.controller import EDIT, IdeController, check_parse

PREFIX = '(quine completion (eval (do (def x 1)\n'


def test_a_prefix_ending_in_an_open_string_is_refused_with_its_position():
    r = check_parse(api.BEFORE_MODEL, PREFIX + '(def broken "unterminated')
    assert r is not None and not r.ok and (r.line, r.col) == (2, 13) and "inside a string" in r.error
    assert r.text == PREFIX + '(def broken "unterminated'
    assert check_parse(api.ON_MODEL_ERROR, PREFIX + "; trailing comment") is not None
    assert check_parse(api.BEFORE_MODEL, PREFIX + "(def y (+ 1") is None
    # a whole program may still end early: assembly closes its forms
    assert check_parse(api.AFTER_COMPLETION, PREFIX + "(def y (+ 1") is None


def test_the_paused_run_is_not_released_by_a_refused_prefix_edit():
    ctl = IdeController()
    decided = []
    t = threading.Thread(target=lambda: decided.append(ctl.checkpoint(api.PausePoint(api.BEFORE_MODEL, 2, PREFIX))))
    t.start()
    while not ctl.paused:
        time.sleep(0.001)
    refused = ctl.act(EDIT, PREFIX + '(def broken "unterminated', "alice")
    assert not refused.ok and refused.line == 2 and ctl.paused and not decided
    accepted = ctl.act(EDIT, PREFIX + "(def fixed 2) ", "alice")
    t.join(5)
    assert accepted.ok and decided and decided[0].text == PREFIX + "(def fixed 2) "
