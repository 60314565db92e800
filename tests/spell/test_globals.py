"""globals/: the per-run shared map, its atomic operations, and its trip through the record."""

from __future__ import annotations

import json
import threading
import time

import pytest

from spellide.spell.data import List, Map, Vector, kw, slist, smap, vec
from spellide.spell.effects.globals import GlobalsStore, initial_globals, make_globals_namespace
from spellide.spell.errors import SpellError


def py_apply(f, args):
    return f(*args)


@pytest.fixture
def ns():
    store = GlobalsStore()
    return store, make_globals_namespace(store, py_apply)


def test_initial_state(ns):
    store, g = ns
    assert g["all"]() == smap(kw("roles"), smap(kw("main"), Map()), kw("tasks"), vec())
    assert g["keys"]() == vec(kw("roles"), kw("tasks"))
    assert isinstance(g["keys"](), Vector)
    assert g["get"](kw("tasks")) == vec()
    assert g["get"](kw("missing")) is None


def test_set_returns_the_value_and_all_is_a_snapshot(ns):
    _, g = ns
    before = g["all"]()
    assert g["set"](kw("status"), "running") == "running"
    assert g["get"](kw("status")) == "running"
    assert kw("status") not in before  # what was handed out earlier does not change
    assert g["keys"]()[-1] == kw("status")
    assert g["set"]("string key", 1) == 1 and g["get"]("string key") == 1


def test_update_applies_the_function_through_the_callback(ns):
    _, g = ns
    calls = []

    def apply_fn(f, args):
        calls.append((f, args))
        return f(*args)

    store = GlobalsStore()
    g = make_globals_namespace(store, apply_fn)
    conj = lambda coll, x: Vector((*coll, x))
    assert g["update"](kw("tasks"), conj, smap(kw("id"), 1)) == vec(smap(kw("id"), 1))
    assert calls == [(conj, [vec(), smap(kw("id"), 1)])]
    assert g["update"](kw("n"), lambda old: (old or 0) + 1) == 1
    assert g["get"](kw("n")) == 1


def test_update_failure_leaves_the_store_unchanged(ns):
    _, g = ns
    g["set"](kw("n"), 1)

    def boom(old):
        raise SpellError("nope")

    with pytest.raises(SpellError, match="nope"):
        g["update"](kw("n"), boom)
    assert g["get"](kw("n")) == 1


def test_update_is_atomic_under_contention():
    store = GlobalsStore()
    g = make_globals_namespace(store, py_apply)
    g["set"](kw("n"), 0)

    def slow_inc(old):
        time.sleep(0.0005)  # widen the read-modify-write window
        return old + 1

    def worker():
        for _ in range(20):
            g["update"](kw("n"), slow_inc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert g["get"](kw("n")) == 160


def test_update_function_may_read_globals_without_deadlock(ns):
    _, g = ns
    g["set"](kw("a"), 5)
    done = []

    def run():
        done.append(g["update"](kw("b"), lambda old: g["get"](kw("a")) * 2))

    t = threading.Thread(target=run)
    t.start()
    t.join(5)
    assert done == [10]


def test_pop(ns):
    _, g = ns
    g["set"](kw("q"), vec(1, 2, 3))
    assert g["pop"](kw("q")) == 1
    assert g["get"](kw("q")) == vec(2, 3) and isinstance(g["get"](kw("q")), Vector)
    g["set"](kw("l"), slist("a"))
    assert g["pop"](kw("l")) == "a"
    assert isinstance(g["get"](kw("l")), List) and len(g["get"](kw("l"))) == 0
    assert g["pop"](kw("l")) is None
    assert g["pop"](kw("missing")) is None
    assert kw("missing") not in g["all"]()
    g["set"](kw("m"), smap(kw("a"), 1))
    with pytest.raises(SpellError, match="not a list or vector"):
        g["pop"](kw("m"))


def test_pop_hands_each_task_to_exactly_one_worker():
    store = GlobalsStore()
    g = make_globals_namespace(store, py_apply)
    g["set"](kw("tasks"), Vector(range(500)))
    taken: list[int] = []
    lock = threading.Lock()

    def worker():
        while (item := g["pop"](kw("tasks"))) is not None:
            with lock:
                taken.append(item)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(500))


def test_arity_errors(ns):
    _, g = ns
    for call in (lambda: g["get"](), lambda: g["set"](kw("a")), lambda: g["update"](kw("a")),
                 lambda: g["pop"](), lambda: g["keys"](1), lambda: g["all"](1)):
        with pytest.raises(SpellError, match="wrong number of arguments"):
            call()


def test_record_round_trip(ns):
    store, g = ns
    g["set"](kw("results"), vec(smap(kw("from"), kw("a"), kw("body"), "x\n\"y\""), 1.5, None, True))
    g["set"]("k", slist(1, 2))
    data = json.loads(json.dumps(store.to_json()))
    back = GlobalsStore.from_json(data)
    assert back.all() == store.all()
    assert list(back.all()) == list(store.all())  # key order survives
    assert GlobalsStore.from_json(data["edn"]).all() == store.all()
    with pytest.raises(ValueError):
        GlobalsStore.from_json({"edn": "[1 2]"})
    with pytest.raises(ValueError):
        GlobalsStore.from_json({})


def test_stores_are_independent():
    a, b = GlobalsStore(), GlobalsStore()
    make_globals_namespace(a, py_apply)["set"](kw("x"), 1)
    assert b.get(kw("x")) is None
    assert initial_globals() == b.all()


def test_through_a_real_run():
    """The namespace as the machine wires it: update calls a Spell function via apply_fn."""
    from spellide.spell.api import RunConfig
    from spellide.spell.machine import Run
    program = ("(eval '(do (globals/set :n 5) (globals/update :n + 2)"
               " (globals/update :tasks (fn [t] (conj t {:id 1})))"
               " [(globals/pop :tasks) (globals/get :n) (globals/keys)]))")
    result = Run(RunConfig(init=program)).execute()
    assert result.error is None, result.error
    assert result.value_text == "[{:id 1} 7 [:roles :tasks :n]]"


# --- wait-until (the reference's globals_test wait-until cases, with threads as the agents) ---

def test_wait_until_already_satisfied_returns_at_once(ns):
    _, g = ns
    g["set"](kw("x"), 42)
    assert g["wait-until"](lambda state: state.get(kw("x")) == 42) is True


def test_wait_until_blocks_until_another_writer_satisfies_it(ns):
    _, g = ns
    g["set"](kw("counter"), 0)
    out = []
    waiter = threading.Thread(target=lambda: out.append(
        g["wait-until"](lambda state: state.get(kw("counter")) >= 5)))
    waiter.start()
    time.sleep(0.05)
    assert waiter.is_alive() and out == []  # still blocked
    for _ in range(5):
        g["update"](kw("counter"), lambda n: n + 1)
    waiter.join(2)
    assert out == [True]


def test_wait_until_sees_a_write_racing_its_first_check(ns):
    _, g = ns
    g["set"](kw("ready"), False)
    writer = threading.Timer(0.01, lambda: g["set"](kw("ready"), True))
    writer.start()
    assert g["wait-until"](lambda state: state.get(kw("ready")), 2000) is True
    writer.join()


def test_wait_until_many_writers(ns):
    _, g = ns
    g["set"](kw("results"), vec())
    workers = [threading.Thread(target=lambda i=i: g["update"](
        kw("results"), lambda r: Vector((*r, i)))) for i in range(10)]
    out = []
    coordinator = threading.Thread(target=lambda: out.append(
        g["wait-until"](lambda state: len(state.get(kw("results"))) == 10)))
    coordinator.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(2)
    coordinator.join(2)
    assert out == [True] and len(g["get"](kw("results"))) == 10


def test_wait_until_times_out_with_false_and_checks_its_arguments(ns):
    _, g = ns
    t0 = time.monotonic()
    assert g["wait-until"](lambda state: state.get(kw("never")), 50) is False
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(SpellError, match="milliseconds"):
        g["wait-until"](lambda state: True, -1)
    with pytest.raises(SpellError, match="wrong number of arguments"):
        g["wait-until"]()


def test_wait_until_through_a_real_run():
    """The machine's wiring: the predicate is a Spell function called with the whole map."""
    from spellide.spell.api import RunConfig
    from spellide.spell.machine import Run
    program = ("(eval '(do (globals/set :x 1) (globals/update :x inc)"
               " [(globals/wait-until (fn [s] (= 2 (:x s))))"
               "  (globals/wait-until (fn [s] (:never s)) 20)]))")
    result = Run(RunConfig(init=program)).execute()
    assert result.error is None, result.error
    assert result.value_text == "[true false]"
