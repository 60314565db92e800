"""``spellide`` command line: run agents, replay records, import reference traces.

The flags and the ``--json`` shape are a contract that other tools drive; exit status is 0 on
success, 1 when the program failed, 2 on bad usage (including unreadable input files).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from .api import DEFAULT_MEMORY_MB, DEFAULT_RUN_SECONDS, DEFAULT_STEP_SECONDS, MIN_MEMORY_MB

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_DEPTH = 1000  # deeper self-calls than this are a runaway, not a limit (the IDE's form agrees)


class UsageError(Exception):
    pass


def _budget(text: str) -> float:
    """``--budget``: a finite number of dollars, 0 or more. ``float`` alone takes ``nan``,
    ``inf``, ``1e309`` (= inf) and negatives, and a budget of nan never stops a run."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of dollars")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative (0 means unlimited)")
    return value


def _depth(text: str) -> int:
    """``--depth``: a whole number from 0 (unlimited) to ``MAX_DEPTH``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 (unlimited) and {MAX_DEPTH}")
    return value


def _read_file(path: str, what: str) -> str:
    from .api import read_input
    try:
        return read_input(path, what)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory: {path}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None
    except ValueError as e:   # larger than the input limit
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spellide", description="Run and inspect Spell agents.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an agent")
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="a natural-language root prompt")
    src.add_argument("--prompt-file", help="read the root prompt from a file")
    src.add_argument("--init", help="a complete program to evaluate")
    src.add_argument("--init-file", help="read the complete program from a file")
    run.add_argument("--model", default="hello",
                     help="hello | scripted:FILE | replay:FILE | profile:NAME (default hello)")
    run.add_argument("--depth", type=_depth, default=None, help="max model-call depth (0 = unlimited)")
    run.add_argument("--budget", type=_budget, default=1.0, help="spend cap in USD (0 = unlimited)")
    run.add_argument("--no-recover", action="store_true", help="fail on errors instead of re-prompting")
    run.add_argument("--workspace", help="directory io/ effects are confined to (no io/ without it)")
    run.add_argument("--allow-shell", action="store_true", help="enable io/sh and io/exec in the workspace")
    run.add_argument("--allow-multiple", action="store_true",
                     help="wrap several top-level forms in (do ...) instead of failing")
    run.add_argument("--seed", type=int, default=0, help="seed of the per-step random generators")
    run.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                     help=f"the run's memory limit in MB (0 = unlimited; default {DEFAULT_MEMORY_MB})")
    run.add_argument("--step-time", type=float, default=DEFAULT_STEP_SECONDS,
                     help="seconds a step's own evaluation may take (0 = unlimited; default "
                          f"{DEFAULT_STEP_SECONDS:g})")
    run.add_argument("--run-time", type=float, default=DEFAULT_RUN_SECONDS,
                     help="seconds the whole run may take (0 = unlimited; default "
                          f"{DEFAULT_RUN_SECONDS:g})")
    run.add_argument("--strict", action="store_true",
                     help="with replay:FILE, treat any difference from the record as a divergence")
    run.add_argument("--record", help="write the run's record (for replay) to FILE")
    run.add_argument("--trace-dir", help="write a trace directory in the reference's layout")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")

    trace = sub.add_parser("trace", help="trace tools")
    tsub = trace.add_subparsers(dest="trace_command", required=True)
    imp = tsub.add_parser("import", help="read a reference trace directory as JSON")
    imp.add_argument("directory")
    return p


def _config_from(args: argparse.Namespace) -> Any:
    from .api import RunConfig
    cfg = RunConfig(model=args.model, recover=not args.no_recover, seed=args.seed,
                    depth=args.depth or None, budget=args.budget or None,
                    allow_shell=args.allow_shell, allow_multiple_top_level=args.allow_multiple)
    if args.prompt is not None:
        cfg.prompt = args.prompt
    elif args.prompt_file is not None:
        cfg.prompt = _read_file(args.prompt_file, "prompt file")
    elif args.init is not None:
        cfg.init = args.init
    else:
        cfg.init = _read_file(args.init_file, "program file")
    if args.workspace:
        ws = Path(args.workspace)
        if not ws.is_dir():
            raise UsageError(f"workspace is not a directory: {ws}")
        cfg.workspace = str(ws.resolve())
    if args.memory_mb < 0 or 0 < args.memory_mb < MIN_MEMORY_MB:
        raise UsageError(f"--memory-mb must be 0 (unlimited) or at least {MIN_MEMORY_MB}")
    for flag, value in (("--step-time", args.step_time), ("--run-time", args.run_time)):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{flag} must be a number of seconds >= 0, not {value:g}")
    cfg.memory_mb = args.memory_mb or None
    cfg.step_time_limit = args.step_time or None
    cfg.run_time_limit = args.run_time or None
    if args.model.startswith("replay:"):
        cfg.cache_mode = "strict" if args.strict else "replay"
    elif args.strict:
        raise UsageError("--strict needs --model replay:FILE")
    return cfg


def _cmd_run(args: argparse.Namespace) -> int:
    from .api import Run, execute_with_deep_stack
    from .api import process_memory, watch_overrun
    cfg = _config_from(args)
    try:
        run = Run(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    def end_past_limit(message: str) -> None:   # one long call past the time limit
        if args.json:
            json.dump({"value": None, "error": message, "error_kind": "timeout", "status": "failed"},
                      sys.stdout)
            sys.stdout.write("\n")
        print(f"spellide: failed: {message} (the run was ended inside one long call; no record "
              f"or trace was written)", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_FAILED)

    def execute() -> Any:
        with process_memory(cfg.memory_mb):   # the command runs the agent in its own process
            return run.execute()

    watch_overrun(lambda: run.clock, end_past_limit)
    result = execute_with_deep_stack(execute)
    out = result.to_json()
    if args.record:
        try:
            run.record().save(args.record)
        except OSError as e:
            print(f"spellide: cannot write record {args.record}: {e.strerror}", file=sys.stderr)
    if args.trace_dir:
        from .api import write_trace_dir
        try:
            write_trace_dir(out, args.trace_dir)
            print(f"Trace: {args.trace_dir}", file=sys.stderr)
        except OSError as e:
            print(f"spellide: cannot write trace to {args.trace_dir}: {e.strerror}", file=sys.stderr)
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    elif result.error is None:
        print(result.value_text)
    if result.error is not None:
        if not args.json:
            where = ""
            if result.error_span and result.error_kind != "read":
                where = f" (line {result.error_span['line']}, column {result.error_span['col']})"
            print(f"spellide: {result.status}: {result.error}{where}", file=sys.stderr)
        return EXIT_FAILED
    if result.cost:
        print(f"Cost: ${result.cost:.4f}", file=sys.stderr)
    return EXIT_OK


def _cmd_trace_import(args: argparse.Namespace) -> int:
    from .api import import_trace_dir
    try:
        data = import_trace_dir(args.directory)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise UsageError(str(e)) from None
    json.dump(data, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "trace" and args.trace_command == "import":
            return _cmd_trace_import(args)
    except UsageError as e:
        print(f"spellide: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    except Exception as e:  # the last line of defence: never a traceback for the user
        from .api import SpellError
        if isinstance(e, SpellError):
            print(f"spellide: {e.message}", file=sys.stderr)
            return EXIT_FAILED
        print(f"spellide: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
