"""Building the C speed-ups (``./dev setup`` runs spellide/spell/_speedups/build.py): a
module that compiles is importable; one that does not leaves nothing behind and says why, so
the pure-Python code stays in charge."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig

import pytest

from spellide.spell._speedups.build import build

needs_cc = pytest.mark.skipif(shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is None,
                              reason="no C compiler")

_GOOD = r'''
#include <Python.h>
static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "tiny", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_tiny(void) { return PyModule_Create(&m); }
'''


@needs_cc
def test_a_module_that_compiles_is_built_next_to_its_source(tmp_path):
    (tmp_path / "tiny.c").write_text(_GOOD)
    out = build(tmp_path / "tiny.c")
    assert out.parent == tmp_path and out.name.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
    spec = importlib.util.spec_from_file_location("tiny", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.__name__ == "tiny"


@needs_cc
def test_a_module_that_does_not_compile_leaves_nothing_and_says_why(tmp_path):
    (tmp_path / "bad.c").write_text("#include <Python.h>\nthis is not C;\n")
    with pytest.raises(RuntimeError, match="bad.c"):
        build(tmp_path / "bad.c")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.c"]
