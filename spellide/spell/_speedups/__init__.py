"""Optional C speed-ups of the Spell core, built by ``./dev setup`` (``build.py``).

Each one is a fast path of a pure-Python module that stays the reference: when a speed-up
is not built (no compiler, another Python) or ``SPELLIDE_PURE_PYTHON=1`` is set, the Python
code runs instead and gives the same results.
"""
