"""The layering rules, checked on the source: they hold by test, not by convention.

* Outside the core (``spellide/spell/``), code imports the core only through its facade,
  ``spellide.spell.api`` (the entry point ``spellide/__main__.py`` may import the CLI). The
  CLI lives in the core's package but is a client of it, so it is held to the same rule.
  The core's own tests (``tests/spell``, ``tests/providers``, ``tests/conformance``) test its
  modules directly and are exempt.
* The core never imports Django, Channels or the web layer: it is a library usable
  without them.

Imports are found with ``ast`` anywhere in a module (also inside functions and
``if TYPE_CHECKING`` blocks), relative imports are resolved, and so are
``importlib.import_module("...")`` / ``__import__("...")`` calls with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "spellide.spell"
FACADE = "spellide.spell.api"
WEB_STACK = ("django", "channels", "daphne", "spellide.web")

# Clients of the core: every module in these trees (the core's own tests excepted).
CLIENT_TREES = ("spellide", "bench", "tests")
EXEMPT = ("spellide/spell/", "tests/spell/", "tests/providers/", "tests/conformance/")
CLIENTS_IN_CORE = ("spellide/spell/cli.py",)
ALLOWED_EXTRA = {
    "spellide/__main__.py": {"spellide.spell.cli"},
    # changes what a marker does inside the core, to show the diff follows the core
    "tests/web/test_diff.py": {"spellide.spell.edits"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str = "") -> Iterator[tuple[int, str]]:
    """(line, module) for every module ``path`` imports; ``from M import n`` yields ``M.n``
    (``n`` may be a submodule), relative names resolved against the file's package (``name``
    is the module's dotted name, by default worked out from its place in the tree)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, module if alias.name == "*" else f"{module}.{alias.name}"
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in ("import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def boundary_violations(path: Path, allowed_extra: set[str] = frozenset(), name: str = "") -> list[str]:
    """Imports of ``path`` that reach the core other than through the facade."""
    out = []
    for line, module in imported_modules(path, name):
        if module == CORE:
            out.append(f"{line}: {module} (import the facade, {FACADE})")
            continue
        if not module.startswith(CORE + "."):
            continue
        if module == FACADE or module.startswith(FACADE + "."):
            continue
        if any(module == a or module.startswith(a + ".") for a in allowed_extra):
            continue
        out.append(f"{line}: {module}")
    return out


def _client_files() -> list[Path]:
    files = []
    for tree in CLIENT_TREES:
        for p in sorted((ROOT / tree).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if any(rel.startswith(e) for e in EXEMPT) or "/migrations/" in rel:
                continue
            files.append(p)
    return files + [ROOT / c for c in CLIENTS_IN_CORE]


def test_clients_import_the_core_only_through_the_facade():
    problems = []
    for p in _client_files():
        rel = p.relative_to(ROOT).as_posix()
        for v in boundary_violations(p, ALLOWED_EXTRA.get(rel, set())):
            problems.append(f"{rel}:{v}")
    assert not problems, "modules outside the core import core modules directly:\n" + "\n".join(problems)


def test_the_core_never_imports_the_web_stack():
    problems = []
    for p in sorted((ROOT / "spellide" / "spell").rglob("*.py")):
        for line, module in imported_modules(p):
            if any(module == w or module.startswith(w + ".") for w in WEB_STACK):
                problems.append(f"{p.relative_to(ROOT).as_posix()}:{line}: {module}")
    assert not problems, "the core imports the web stack:\n" + "\n".join(problems)


def test_the_checker_sees_every_kind_of_import(tmp_path):
    """The rule must not be dodged by a function-level, relative or dynamic import."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from spellide.spell.api import Run\n"             # fine
        "from spellide.spell import api\n"                 # fine
        "def f():\n"
        "    from spellide.spell.machine import Run\n"     # 4: function-level
        "    from ..spell import reader\n"                 # 5: relative
        "    import spellide.spell.events\n"               # 6: plain import
        "    import importlib\n"
        "    importlib.import_module('spellide.spell.evaluator')\n"  # 8: dynamic
        "    from spellide import spell\n",                # 9: the package itself
        encoding="utf-8")
    found = sorted(int(v.split(":")[0]) for v in boundary_violations(probe, name="spellide.web.probe"))
    assert found == [4, 5, 6, 8, 9]


def test_the_checker_sees_django_in_a_function(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("def f():\n    from django.conf import settings\n", encoding="utf-8")
    assert [m for _, m in imported_modules(probe, "spellide.spell.m")] == ["django.conf.settings"]


def test_every_name_of_the_facade_resolves():
    from spellide.spell import api

    missing = []
    for name in api.__all__:
        try:
            getattr(api, name)
        except (AttributeError, ImportError) as e:
            missing.append(f"{name}: {e}")
    assert not missing, missing
    with pytest.raises(AttributeError):
        api.not_a_name  # noqa: B018
