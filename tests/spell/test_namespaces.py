"""One declaration per namespace: a new effect namespace is one module, and the declaration is
what binds, gates, documents and approves it."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from spellide.spell import api, namespaces
from spellide.spell.effects.globals import GlobalsStore, make_globals_namespace
from spellide.spell.effects.io import make_io_namespace
from spellide.spell.errors import SpellError

# What adding ``http/`` would take: this module, nothing else.
THROWAWAY = '''
"""A throwaway effect namespace for the tests: ``echo/say`` and ``echo/shout``."""
from spellide.spell.namespaces import Fn, Namespace, declare

CALLS = []


def make(setup):
    def say(text):
        """(echo/say text) -> the text, said once."""
        CALLS.append(text)
        return text

    def shout(text):
        """(echo/shout text) -> the text in capitals."""
        CALLS.append(text)
        return text.upper()

    return {"say": say, "shout": shout}


declare(Namespace("echo", "Says things back.", [Fn("say", (1, 1)), Fn("shout", (1, 1), approve_replay_miss=True)],
                  setting="allow_shell", unavailable="echo/ needs allow_shell in this run", make=make,
                  sample=lambda: make(None)))
'''


@pytest.fixture
def echo(tmp_path):
    (tmp_path / "echo_ns.py").write_text(textwrap.dedent(THROWAWAY), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("echo_ns")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("echo_ns", None)
        namespaces.unregister("echo")


class Recorder(api.Controller):
    interactive = True

    def __init__(self) -> None:
        self.points: list[api.PausePoint] = []

    def checkpoint(self, point: api.PausePoint) -> api.Decision:
        self.points.append(point)
        return api.Decision()


def run(init: str, *, record=None, controller=None, **cfg):
    r = api.Run(api.RunConfig(init=init, budget=None, **cfg), model=api.ScriptedModel(["1", "2", "3"]),
                record=record, controller=controller)
    return r, api.execute_with_deep_stack(r.execute)


def test_a_new_namespace_module_is_callable_described_and_gated(echo):
    r, res = run("(eval (quote (echo/shout \"hi\")))", allow_shell=True)
    assert res.error is None and res.value == "HI" and echo.CALLS == ["hi"]
    assert [e["name"] for e in res.effects] == ["echo/shout"]          # through the effect gate
    # outside eval it is an effect namespace, like io/
    _, res = run("(echo/say \"x\")", allow_shell=True)
    assert "echo/ is an effect namespace" in res.error
    # the setting that enables it is the declaration's
    _, res = run("(eval (quote (echo/say \"x\")))")
    assert "echo/ needs allow_shell in this run" in res.error
    # described from the declaration: the overview and each function's docstring
    _, res = run("(quine completion (eval (do (quote (!describe echo)))))", allow_shell=True)
    program = res.steps[0]["prefix"]
    assert "Says things back." in program and "echo/say - (echo/say text) -> the text, said once." in program
    _, res = run("(describe 'echo)")
    assert "echo/shout - (echo/shout text) -> the text in capitals." in res.value
    assert "echo/ needs allow_shell in this run" in res.value
    # and listed for the model
    assert "echo/say" in namespaces.effects_guide()


def test_a_replay_miss_waits_for_approval_only_where_declared(echo):
    live, res = run("(eval (quote (do (echo/say \"a\") (echo/shout \"b\"))))", allow_shell=True)
    assert res.error is None
    record = live.record()
    ctl = Recorder()
    _, res = run("(eval (quote (do (echo/say \"A\") (echo/shout \"B\"))))", allow_shell=True, record=record,
                 controller=ctl, cache_mode="replay")
    assert res.error is None
    asked = [(p.effect["name"], p.reason) for p in ctl.points if p.kind == api.BEFORE_EFFECT]
    assert asked == [("echo/shout", "replay miss of an unsafe effect")]


def test_io_and_globals_declarations_match_their_functions(tmp_path):
    impls = {"io": make_io_namespace(tmp_path), "globals": make_globals_namespace(GlobalsStore(), lambda f, a: None)}
    decls = namespaces.load()
    for name, fns in impls.items():
        decl = decls[name].documented()
        assert [f.name for f in decl.functions] == list(fns), name
        for f in decl.functions:
            assert f.doc.startswith(f"({name}/{f.name}"), (name, f.name, f.doc)
            lo, hi = f.arity
            if hi is not None:   # one argument too many is refused, as declared
                with pytest.raises(SpellError, match="argument"):
                    fns[f.name](*(["x"] * (hi + 1)))
            if lo > 0:
                with pytest.raises(SpellError, match="argument"):
                    fns[f.name](*(["x"] * (lo - 1)))
    assert [f.name for f in decls["io"].functions if f.approve_replay_miss] == ["sh", "exec"]
    assert decls["io"].fn("sh").setting == "allow_shell" and decls["io"].setting == "workspace"


def test_describe_shows_effect_namespace_docs(tmp_path):
    _, res = run("(quine completion (eval (do (quote (!describe io)))))", workspace=str(tmp_path))
    prefix = res.steps[0]["prefix"]
    assert "io/slurp - (io/slurp path) -> {:ok text}" in prefix
    assert "Files and directories of the run's workspace" in prefix
    _, res = run("(describe 'globals 'io)")
    assert "globals/update - (globals/update key f & more)" in res.value
    assert "io/ is not available in this run (no workspace was given)" in res.value


def test_pure_namespaces_are_declared_by_their_existing_registration():
    api.core_builtins()
    math = namespaces.load()["math"]
    assert not math.effect and math.fn("pow").doc
    strings = namespaces.load()["strings"]
    assert all(f.doc for f in strings.functions[:3])
    assert namespaces.arity_of(lambda ctx, env, a, b=1: 0, skip=2) == (1, 2)
    assert namespaces.arity_of(lambda *xs: 0) == (0, None)
    assert "math" not in [ns.name for ns in namespaces.effect_namespaces()]
    core = namespaces.load()["builtins"]      # the core functions, from their @builtin registrations
    assert not core.effect and core.fn("count").arity == (1, 1) and core.fn("count").doc


def test_the_turn_vocabulary_is_declared_and_described():
    """``!extend`` & co. are declared once (turns.TURN_HELPERS): the registry has them with
    their docs and arities, and ``(!describe turns)`` prints them into the next prefix."""
    turns = namespaces.load()["turns"]
    assert not turns.effect
    assert turns.fn("!call-now").doc.startswith("(!call-now name expr")
    assert turns.fn("deep-truncate").arity == (1, 2) and turns.fn("edit-reopen").arity == (1, 1)
    assert all(f.doc for f in turns.functions)
    _, res = run("(quine completion (eval (do (quote (!describe turns)))))")
    prefix = res.steps[0]["prefix"]
    assert "turns/!extend - (!extend [quine]): continue" in prefix
    assert "turns/!peek - (!peek name expr ... [limit])" in prefix


def test_the_system_prompt_lists_the_declared_effect_namespaces():
    prompt = api.system_prompt("prefill")
    for ns in api.effect_namespaces():
        if ns.bound:
            assert all(f"{ns.name}/{f.name}" in prompt for f in ns.functions)
    assert "{{" not in prompt
