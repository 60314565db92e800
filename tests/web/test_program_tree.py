"""Program text -> display tree, and Spell highlighting."""

from __future__ import annotations

from spellide.web import program_tree as T
from spellide.web.highlight import highlight, highlight_segments

PROGRAM = ('(quine completion (eval (do (quine prompt "Summarise the files") '
           '(def x {:a 1 :b [1 2 (+ 3 4)]}) (persist kept (subvec rows 1)) (prune 2) '
           '(rethink "retry" (def c 3)) (think "a note" 1) (!call-now r (io/slurp "f")) '
           '(defn f [a] (let [b (* a 2)] b)) (fn [y] y) 42 (quote (!extend)))))')


def body_nodes(tree: T.Tree) -> list[T.TreeNode]:
    quine = tree.roots[0]
    eval_ = quine.children[1]
    do = eval_.children[0]
    return do.children


def test_kinds_of_forms():
    tree = T.build_tree(PROGRAM)
    assert tree.error is None
    quine = tree.roots[0]
    assert quine.kind == "quine"
    assert quine.children[1].kind == "eval"
    assert quine.children[1].children[0].kind == "do"
    kinds = [n.kind for n in body_nodes(tree)]
    assert kinds == ["quine", "def", "persist", "prune", "rethink", "think", "effect", "defn", "fn",
                     "literal", "trailing"]
    effect = body_nodes(tree)[6]
    assert effect.head == "!call-now" and effect.label == "effect"
    assert body_nodes(tree)[-1].children[0].kind == "effect"  # (!extend) inside the trailing quote


def test_let_and_other_calls():
    tree = T.build_tree("(do (let [a (f 1)] (g a (h 2))))")
    let = tree.roots[0].children[0]
    assert let.kind == "let"
    assert let.children[1].kind == "call" and let.children[1].head == "g"


def test_spans_point_into_the_source():
    tree = T.build_tree(PROGRAM)
    for n in body_nodes(tree):
        assert PROGRAM[n.start:n.end].startswith(("(", "4"))
    d = body_nodes(tree)[1]
    assert PROGRAM[d.start:d.end] == "(def x {:a 1 :b [1 2 (+ 3 4)]})"
    assert d.line == 1 and d.col == d.start + 1


def test_spans_of_multiline_program_have_lines():
    text = "(do\n  (def a 1)\n  (def b\n    2))"
    tree = T.build_tree(text)
    defs = tree.roots[0].children
    assert [(n.line, n.col) for n in defs] == [(2, 3), (3, 3)]
    assert defs[1].preview == "(def b 2)"


def test_long_strings_are_folded():
    long = "word " * 400
    tree = T.build_tree(f'(do (def s "{long}"))')
    s = tree.roots[0].children[0].children[1]
    assert s.kind == "string" and s.folded and s.length == len(long)
    assert len(s.preview) < 80


def test_short_flat_forms_are_leaves():
    tree = T.build_tree("(do (+ 1 2) [a b])")
    assert all(not n.has_children for n in tree.roots[0].children)


def test_open_prefix_is_closed_for_display():
    prefix = '(quine completion (eval (do (quine prompt "x (not a paren") (def a 1) '
    tree = T.build_tree(prefix, open_prefix=True)
    assert tree.error is None and tree.balanced == 3
    assert tree.roots[0].kind == "quine"


def test_read_error_has_position():
    tree = T.build_tree("(do\n  (def a 1)))\n  ]")
    assert tree.error and tree.error_line is not None and tree.error_col is not None
    assert tree.roots == []


def test_long_bodies_show_head_and_tail_and_load_the_middle_on_demand():
    body = " ".join(f"(def v{i} {i})" for i in range(400))
    text = f"(do {body})"
    tree = T.build_tree(text)
    do = tree.roots[0]
    kinds = [c.kind for c in do.children]
    assert kinds[:5] == ["def"] * 5 and kinds[5] == "more" and kinds[6:] == ["def"] * 55
    gap = do.children[5]
    assert (gap.more_from, gap.more_to, gap.more) == (5, 345, 340) and gap.path == "0"
    assert do.children[-1].path == "0.399"      # the newest forms are always shown
    chunk = T.children_range(text, "0", 5, 345)
    assert [c.path for c in chunk[:2]] == ["0.5", "0.6"] and len(chunk) == T.CHUNK + 1
    assert chunk[-1].kind == "more" and (chunk[-1].more_from, chunk[-1].more_to) == (205, 345)
    assert T.children_range(text, "0", 300, 345)[-1].path == "0.344"
    assert T.children_range(text, "7", 0, 3) is None


def test_node_budget_leaves_placeholders():
    body = " ".join(f"(def v{i} (f {i} (g {i})))" for i in range(40))
    text = f"(do {body})"
    tree = T.build_tree(text, max_nodes=60)
    assert tree.truncated and tree.node_count <= 61
    do = tree.roots[0]
    assert do.children[-1].kind == "more" and do.children[-1].more_to == 40
    node = T.subtree(text, "0.25", max_nodes=50)
    assert node is not None and node.kind == "def" and node.path == "0.25"
    assert T.subtree(text, "0.99999") is None
    assert T.subtree(text, "nonsense") is None


def test_deep_nesting_does_not_crash():
    text = "(" * 1500 + ")" * 1500
    tree = T.build_tree(text)
    assert tree.error or tree.truncated


def test_highlight_escapes_and_labels_spell_names():
    html = str(highlight('(do (def x "<script>alert(1)</script>") (prune 2) (!call-now r (io/!x 1)) (quine c 1))'))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 't-nf-Effect">!call-now<' in html
    assert 't-k-Marker">prune<' in html
    assert 't-k-Boundary">quine<' in html


def test_highlight_keeps_text_exact():
    import html as H
    import re
    text = '(do\n  ;; comment <b>\n  (def s "a\nb") \\a)\n'
    out = str(highlight(text))
    assert H.unescape(re.sub(r"<[^>]+>", "", out)) == text


def test_highlight_segments_wrap_provenance_without_changing_text():
    import html as H
    import re
    text = '(do (def s "prefix part|model part") (def t 1))'
    cut = text.index("|")
    segs = [{"start": 0, "end": cut, "source": "prefix"},
            {"start": cut, "end": len(text), "source": "human", "author": '<img src=x onerror="alert(1)">'}]
    out = str(highlight_segments(text, segs))
    assert H.unescape(re.sub(r"<[^>]+>", "", out)) == text
    assert 'class="prov prov-prefix"' in out and 'class="prov prov-human"' in out
    assert "<img" not in out and "&lt;img" in out
    assert f'data-start="{cut}"' in out


def test_unknown_provenance_source_is_not_injected_as_a_class():
    out = str(highlight_segments("(do 1)", [{"start": 0, "end": 6, "source": '"><script>'}]))
    assert "<script>" not in out and "prov-other" in out


from hypothesis import given, settings, strategies as st  # noqa: E402

_spellish = st.text(alphabet=st.sampled_from(list('()[]{}"\\ \n;:!#\'abcxyz019<>&/-')), max_size=200)


@settings(max_examples=200, deadline=None)
@given(_spellish, st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_highlighted_lines_always_reproduce_the_text(text, cuts):
    """Whatever the text and provenance cuts, the lines' text is exactly the input, and no
    character of it reaches the page unescaped."""
    import html as H
    import re
    from spellide.web.highlight import highlight_lines
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    sources = ["prefix", "model", "human", "recovery"]
    segs = [{"start": a, "end": b, "source": sources[i % 4], "author": "<x>"}
            for i, (a, b) in enumerate(zip(bounds, bounds[1:])) if b > a]
    lines = [str(x) for x in highlight_lines(text, segs)]
    joined = "".join(lines)
    assert H.unescape(re.sub(r"<[^>]+>", "", joined)) == text
    assert all(line.count("\n") <= 1 for line in lines)
    assert "<x>" not in joined and "<b" not in re.sub(r"<(/?)(span)[^>]*>", "", joined)


def test_cut_rows_expand_to_the_whole_form_laid_out_and_open_rows_show_their_head():
    """A row's preview is cut at ``PREVIEW_CHARS``: a leaf carries its whole form
    pretty-printed (to expand), an open node a head (``(def todo …``) as its children follow."""
    from spellide.spell.api import read_one

    long_note = "write the parser, add tests, update the README and say what changed " * 2
    text = f'(do (def todo (quote {{:ok "{long_note}"}})) (str "{long_note}"))'
    do = T.build_tree(text).roots[0]
    assert do.open_preview == "(do …"
    todo = do.children[0]
    assert todo.kind == "def" and todo.open_preview == "(def todo …"
    folded = do.children[1].children[0]
    assert folded.folded and read_one(folded.full) == long_note
    quoted_map = todo.children[1].children[0]
    assert quoted_map.kind == "map" and quoted_map.children[1].full == f'"{long_note}"'
    # short rows are not cut and carry nothing extra
    short = T.build_tree("(do (def x 1) (f 2))").roots[0]
    assert all(not n.full and not n.open_preview for n in short.children)


def test_the_tree_labels_the_forms_the_edit_trace_says_are_new():
    """The tree shows who brought each new form in, from the core's edit trace of the step."""
    from spellide.spell import api
    from spellide.web.program_tree import build_tree
    from spellide.web.stepinfo import flatten, mark_changes

    init = '(quine completion (eval (do (def a 1) (rethink "r" 2) (quote (!call-now x (+ 1 1))))))'
    events: list = []
    run = api.Run(api.RunConfig(init=init, budget=None), model=api.ScriptedModel(["(def y 3) 5"]),
                  listeners=[events.append])
    assert api.execute_with_deep_stack(run.execute).error is None
    [program] = [e.data for e in events if e.type == "program"]
    tree = build_tree(program["program"])
    mark_changes(tree.roots, program["trace"])
    labels = {it["node"].preview: it["node"].change for it in flatten(tree.roots)
              if "node" in it and it["node"].change}
    assert labels == {'(think "r" 2)': "think", "(def x 2)": "injected", "(def y 3)": "appended",
                      "5": "appended"}
