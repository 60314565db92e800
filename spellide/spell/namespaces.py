"""One declaration per namespace: what a program can call under ``ns/``, documented once.

A ``Namespace`` says its name, what it is for, each function with its arity and doc, whether
it is an **effect** namespace (its calls go through the effect gate, are recorded in the effect
cache and replayed from it, and exist only inside ``eval``), which run setting enables it
(``RunConfig`` field; ``None`` = always there), and for each function whether a **replay miss
needs approval** (a fork or replay that has to run it live again pauses for a person first,
because running it can change the world outside the run).

Everything that shows or builds a namespace reads the declaration: the machine binds the
effect namespaces a run's settings enable (``bind``), ``describe`` / ``!describe`` print the
docs (also for namespaces not available in a run), the system prompts list the effect
namespaces (``effects_guide``), the IDE names effect kinds. Pure namespaces (``strings/``,
``math/``) are declared by the builtins' existing ``namespace(...)`` call, which collects its
functions' docs and arities here.

Adding an effect namespace, e.g. ``http/``, is one module that calls ``declare`` at import
time with a ``make(setup)`` returning the functions, listed in ``EFFECT_MODULES`` (or imported
by whoever adds it, as a test does), plus its tests.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# Modules whose import declares the built-in effect namespaces.
EFFECT_MODULES = ("spellide.spell.effects.io", "spellide.spell.effects.globals",
                  "spellide.spell.effects.model", "spellide.spell.agents.namespace")


@dataclass(frozen=True)
class Fn:
    """One function of a namespace. ``arity`` is (least, most) arguments, ``most`` None for
    any number; ``doc`` defaults to the implementation's docstring; ``setting`` names a
    ``RunConfig`` field that must be true for the function to run (``io/sh``: allow_shell)."""

    name: str
    arity: tuple[int, Optional[int]] = (0, None)
    doc: str = ""
    approve_replay_miss: bool = False
    setting: Optional[str] = None

    def signature(self, ns: str) -> str:
        lo, hi = self.arity
        n = "any number of" if hi is None and lo == 0 else (
            f"{lo} or more" if hi is None else str(lo) if lo == hi else f"{lo} to {hi}")
        return f"{ns}/{self.name} ({n} argument{'' if (lo, hi) == (1, 1) else 's'})"


@dataclass
class Setup:
    """What ``make`` gets to build a run's functions: the run's configuration and the
    services of the machine (``apply_fn(f, args)`` calls a Spell function; ``state`` is a
    per-run dict a namespace may keep its store in, e.g. ``globals``)."""

    config: Any
    apply_fn: Callable[[Any, list], Any]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Namespace:
    name: str
    doc: str
    functions: list[Fn]
    effect: bool = True
    setting: Optional[str] = None          # RunConfig field that enables it; None = always
    unavailable: str = ""                  # why it is missing when the setting is off
    make: Optional[Callable[[Setup], dict[str, Callable[..., Any]]]] = None
    bound: bool = True                     # False: effect names only (model/...), no ns/ to call
    sample: Optional[Callable[[], dict[str, Callable[..., Any]]]] = None   # impls, for their docs

    def __post_init__(self) -> None:
        self._documented = False

    def documented(self) -> "Namespace":
        """The declaration with each function's doc filled from its implementation's
        docstring (built once from ``sample``), so the docs are written in one place."""
        if not self._documented and self.sample is not None:
            impls = self.sample()
            self.functions = [f if f.doc else _with_doc(f, impls.get(f.name)) for f in self.functions]
        self._documented = True
        return self

    def fn(self, name: str) -> Optional[Fn]:
        return next((f for f in self.functions if f.name == name), None)

    def enabled(self, config: Any) -> bool:
        return self.setting is None or bool(getattr(config, self.setting, None))

    def describe(self, keys: Optional[list[str]] = None) -> str:
        """The documentation ``describe`` prints: the overview, then one line per function."""
        lines = [f"## {self.name}", self.doc] if self.doc else [f"## {self.name}"]
        for f in self.documented().functions:
            if keys and f.name not in keys:
                continue
            extra = []
            if f.setting:
                extra.append(f"needs {f.setting}")
            if f.approve_replay_miss:
                extra.append("a replay miss waits for approval")
            note = f" [{'; '.join(extra)}]" if extra else ""
            lines.append(f"{self.name}/{f.name}" + (f" - {f.doc}" if f.doc else "") + note)
        return "\n".join(lines)


REGISTRY: dict[str, Namespace] = {}


def declare(ns: Namespace) -> Namespace:
    """Register ``ns`` (replacing a declaration of the same name)."""
    REGISTRY[ns.name] = ns
    return ns


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def _with_doc(f: Fn, impl: Optional[Callable[..., Any]]) -> Fn:
    doc = inspect.getdoc(impl) if impl is not None else None
    return Fn(f.name, f.arity, " ".join((doc or "").split()), f.approve_replay_miss, f.setting)


def arity_of(fn: Callable[..., Any], skip: int = 0) -> tuple[int, Optional[int]]:
    """(least, most) positional arguments of a Python function, ``skip`` leading ones (ctx,
    env) not counted; (0, None) when it cannot be told."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return 0, None
    lo, hi = 0, 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return lo, None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            hi += 1
            if p.default is p.empty:
                lo += 1
    return lo, hi


def load() -> dict[str, Namespace]:
    """Every declared namespace (importing the modules that declare the built-in ones)."""
    for m in EFFECT_MODULES:
        importlib.import_module(m)
    return REGISTRY


def effect_namespaces() -> list[Namespace]:
    return [ns for ns in load().values() if ns.effect]


def effects_guide() -> str:
    """The effect namespaces as the system prompts list them: one line each with what it is
    for, which setting it needs, and its functions."""
    out = []
    # by name: the prompt (and so its digest, part of every model call's cache key) must not
    # depend on the order in which modules happened to declare their namespaces
    for ns in sorted(effect_namespaces(), key=lambda n: n.name):
        if not ns.bound:   # made by the machine (model calls), not called by programs
            continue
        when = f" (only when the run has a {ns.setting})" if ns.setting else ""
        names = ", ".join(f"{ns.name}/{f.name}" for f in ns.functions)
        out.append(f"- {ns.name}/{when}: {ns.doc} {names}.")
    return "\n".join(out)


def effect_kinds() -> list[str]:
    """Names an effect breakpoint or filter can use: each effect namespace."""
    return [ns.name for ns in effect_namespaces()]


def bind(ns: "Namespace | str", impls: dict[str, Callable[..., Any]],
         wrap: Callable[..., Any]) -> Any:
    """The namespace map a program calls (``{:fn builtin ... :docs {:fn "doc"}}``): each
    function wrapped by ``wrap(name, fn, unsafe=..., doc=...)`` (the effect gate's
    ``builtin``). ``ns`` may be a bare name for an undeclared namespace (no docs)."""
    from .data import Keyword, Map
    decl = ns if isinstance(ns, Namespace) else REGISTRY.get(ns)
    name = ns.name if isinstance(ns, Namespace) else ns
    table, docs = Map(), Map()
    for fname, impl in impls.items():
        f = decl.fn(fname) if decl is not None else None
        doc = (f.doc if f is not None and f.doc else " ".join((inspect.getdoc(impl) or "").split()))
        dict.__setitem__(table, Keyword(fname), wrap(f"{name}/{fname}", impl,
                                                     unsafe=bool(f and f.approve_replay_miss), doc=doc))
        if doc:
            dict.__setitem__(docs, Keyword(fname), doc)
    if decl is not None and decl.doc:
        dict.__setitem__(docs, Keyword("overview"), decl.doc)
    dict.__setitem__(table, Keyword("docs"), docs)
    return table
