"""The facade's program analysis: the parts of a program and closing an open prefix."""

from spellide.spell import api

PROGRAM = ('(quine completion (eval (do (def x {:a 1 :b [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18]}) '
           '(defn f [a b] (let [c (+ a b)] (* c c c c c c c c c c c c c c c c))) "a \\"quoted\\" string" '
           '#{:k} (quote (!extend)))))')


def test_split_program_and_balance_open():
    form = api.read_all_spans(PROGRAM)[0][0]
    args, arg_spans, body, spans = api.split_program(form)
    assert [api.pr_str(a) for a in args] == ["completion"]
    assert len(body) == 5 and api.pr_str(body[-1]) == "(quote (!extend))"
    assert PROGRAM[spans[0].start:spans[0].end].startswith("(def x")
    assert api.split_program(api.read_one("(do 1 2)"))[2] == [1, 2]
    assert api.balance_open('(a "(" (b ')[1] == 2
