"""Build the C speed-ups in place: ``python -m spellide.spell._speedups.build``.

Called by ``./dev setup``. It compiles each ``*.c`` here with the C compiler Python was built
with (``sysconfig``), into ``<name><EXT_SUFFIX>`` next to it. A failure is reported and
leaves the pure-Python code in charge (exit status 1, nothing half-built left behind), so a
machine without a compiler or Python headers still gets a working spellide.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(source: Path) -> Path:
    """Compile one extension module; returns the path of the shared object."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    target = source.with_name(source.stem + suffix)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        raise RuntimeError(f"no Python.h in {include}")
    cmd = [*cc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror=implicit-function-declaration",
           f"-I{include}", str(source), "-o", str(tmp)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        os.replace(tmp, target)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{e.stderr}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def main() -> int:
    status = 0
    for source in sorted(HERE.glob("*.c")):
        try:
            out = build(source)
        except (RuntimeError, OSError) as e:
            print(f"speed-up {source.name} not built (the pure-Python code will run): {e}",
                  file=sys.stderr)
            status = 1
            continue
        print(f"built {out.relative_to(HERE.parent.parent.parent)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
