"""Trace directories in the reference's layout: writing them from a run, importing them.

A run result (the CLI's ``--json`` shape: ``{"value", "error", "steps": [...], ...}``) is
written as the reference writes a trace (``src/spell/trace.clj``, spell-language.md 7.1), so
its tools keep working on spellide's traces, and a directory the reference wrote can be
imported into the same JSON shape to be browsed in the IDE:

* ``NNNN.spl`` (4-digit zero-padded step id; ``NNNN.txt`` for leaf calls): the step's full
  program text (prefix + completion, as evaluated).
* ``trace.edn``: ``{:nodes [...] :next-id N :root id}``. A node has the reference's keys
  ``:id :parent :depth :variant :prompt :start-ms :children [{:child-id :call-prompt}] :end-ms
  :response :program`` and either ``:value`` or ``:error``, plus ``:file``. Everything
  spellide knows beyond that goes under ``:spellide/...`` keys that reference tools ignore:
  ``:spellide/usage`` (tokens and cost per step, which the reference does not record),
  ``:spellide/effects``, ``:spellide/value-text`` and any other step field; the run's own
  fields (value, error, status, ...) go under a top-level ``:spellide/run``. Importing a
  directory spellide wrote is therefore lossless.
* ``tree.txt``: ``id [leaf] [:h] <prompt ≤40 chars...> → <value ≤30>`` or ``✗ <error ≤30>``,
  with ``├─ └─ │`` connectors; ``[:h]`` (``[:h gen 2]`` past an agent's first lifecycle) names
  the agent of a node that is not the root agent's first lifecycle.

Multi-agent runs (spell-agents.md section 9). Every model call of every agent is a node; the
runtime numbers steps in start order across agents and gives a spawned agent's first call the
spawning step as parent (a wait-resumed call hangs under the node that waited), so the nodes keep
the reference's parentage as they are. The reference's nodes carry no handle: spellide writes the
step's agent and lifecycle as ``:spellide/agent :w`` and ``:spellide/generation 2``. The run's
coordinator warnings are the top-level ``:warnings [{:message :data :timestamp-ms}]`` the
reference writes (``:data`` as EDN data); in the JSON shape they are ``{"message", "data" (printed
EDN), "timestamp_ms"}``. Top-level keys neither format knows are kept on import (``extra``: the
printed key, e.g. ``":run/config"``, -> the printed value) and written back unchanged.

Importing a reference trace (no ``:spellide/agent`` keys): every step is given to ``:main``,
generation 1. The handles cannot be recovered reliably from the prompts (a spawned agent's first
prompt is a fresh program, like a self-call's, and the spawn form need not name the handle, e.g.
``agents/spawn`` picks ``:spawn-1``), so none is guessed. ``message_receipts`` reads the messages
an agent received back out of the receipt forms in its prompts, for steps whose agent is known.

Choices that differ from the reference, on purpose:

* ``:value`` is the value as EDN data, as in the reference (not a string holding the printed
  value), so ``(pr-str (:value node))`` in its tools shows the same text. The exact printed
  text is also kept in ``:spellide/value-text``. A value whose printed text does not read
  back is written as a string.
* ``:program`` is the program *text* (the reference stores the read form). Imports accept both.
* ``:file`` is only added to nodes that have a file (the reference names a file for every node,
  even when it wrote none).
* ``tree.txt`` renders *every* root (every node without a parent in the trace), not only
  ``:root``: the reference shows just node 0 when an init program makes several top-level
  model calls (spell-language.md section 13, case 47), hiding the others. Newlines in prompts
  are shown as ``\\n`` so each node stays on one line, and past 50 levels of nesting the
  leftmost indentation is elided as ``…`` so a 10,000-step chain gives a file of linear size.
"""

from __future__ import annotations

import math
import os
import re
import stat as st
from pathlib import Path
from typing import Any, Iterable, Optional

from .data import Keyword, List, Map, Vector, is_number, kw

TREE_PROMPT_CHARS = 40
TREE_RESULT_CHARS = 30
TREE_MAX_INDENT = 50
MAIN = ":main"   # the root agent's handle as printed; a reference trace's steps all get it

# Step fields that map onto reference node keys; every other field goes under :spellide/<field>.
_MAPPED = frozenset({"id", "parent", "depth", "variant", "prefix", "completion", "program",
                     "value", "error", "started", "finished", "effects", "usage", "file"})
_NAME = r"[A-Za-z*+!_?<>=-][A-Za-z0-9*+!_?<>=.-]*"
_KEYWORD_RE = re.compile(f"{_NAME}(?:/{_NAME})?")
_FILE_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


# --- writing EDN -------------------------------------------------------------------------------

class _Raw(str):
    """Text that is already EDN (a canonically re-printed value)."""


def _edn(x: Any) -> str:
    """EDN text for JSON-like data (plus keywords and ``_Raw``)."""
    from .printer import print_float, print_string
    if isinstance(x, _Raw):
        return str(x)
    if x is None:
        return "nil"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, str):
        return print_string(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return print_float(x)
    if isinstance(x, Keyword):
        return ":" + x.full
    if isinstance(x, dict):
        return "{" + " ".join(f"{_edn_key(k)} {_edn(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (list, tuple)):
        return "[" + " ".join(_edn(v) for v in x) + "]"
    return print_string(str(x))


def _edn_key(k: Any) -> str:
    if isinstance(k, Keyword):
        return ":" + k.full
    if isinstance(k, str) and _KEYWORD_RE.fullmatch(k):
        return ":" + k
    return _edn(k)


def _value_edn(printed: str) -> Any:
    """The value as EDN data: the canonical re-print of ``printed`` when it reads back as one
    form (re-printing guarantees no comments or trailing text sneak into trace.edn)."""
    from .errors import SpellError
    from .printer import pr_str
    from .reader import read_one
    try:
        return _Raw(pr_str(read_one(printed)))
    except SpellError:  # not readable (or not one form): keep it as a string
        return printed


def _ms(seconds: Any) -> Optional[int]:
    if is_number(seconds) and not (isinstance(seconds, float) and not math.isfinite(seconds)):
        return int(round(float(seconds) * 1000))
    return None


def _file_name(step: dict) -> str:
    ext = ".txt" if step.get("variant") == "leaf" else ".spl"
    return f"{int(step['id']):04d}{ext}"


def _program_text(step: dict) -> Optional[str]:
    if isinstance(step.get("program"), str):
        return step["program"]
    if isinstance(step.get("completion"), str):
        return (step.get("prefix") or "") + step["completion"]
    return None


def _node(step: dict, children: list[dict], has_file: bool) -> dict:
    node: dict[str, Any] = {
        "id": int(step["id"]), "parent": step.get("parent"), "depth": step.get("depth"),
        "variant": kw(str(step.get("variant") or "default")), "prompt": step.get("prefix") or "",
        "start-ms": _ms(step.get("started")),
        "children": [{"child-id": int(c["id"]), "call-prompt": c.get("prefix") or ""} for c in children],
    }
    end = _ms(step.get("finished"))
    if end is not None:
        node["end-ms"] = end
    if step.get("completion") is not None:
        node["response"] = step["completion"]
    if step.get("program") is not None:
        node["program"] = step["program"]
    if step.get("error") is not None:
        node["error"] = str(step["error"])
    elif step.get("value") is not None:
        node["value"] = _value_edn(str(step["value"]))
        node["spellide/value-text"] = str(step["value"])
    if has_file:
        node["file"] = _file_name(step)
    if step.get("usage") is not None:
        node["spellide/usage"] = step["usage"]
    if step.get("effects"):
        node["spellide/effects"] = step["effects"]
    for k, v in step.items():
        if k not in _MAPPED:
            node[f"spellide/{k}"] = _handle_edn(v) if k == "agent" else v
    return node


def _handle_edn(shown: Any) -> Any:
    """An agent handle as printed (``":w"``) as the keyword it is; anything else as it is."""
    if isinstance(shown, str) and shown.startswith(":") and _KEYWORD_RE.fullmatch(shown[1:]):
        return kw(shown[1:])
    return shown


def write_trace_dir(result: dict, directory: str | Path) -> None:
    """Write ``result`` (a run result in the CLI's JSON shape) as a reference trace directory:
    ``NNNN.spl`` per step, ``trace.edn`` and ``tree.txt``. The directory is created if needed;
    files of an earlier trace with other names are left alone."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    steps = sorted((s for s in result.get("steps") or [] if s.get("id") is not None),
                   key=lambda s: int(s["id"]))
    ids = {int(s["id"]) for s in steps}
    children: dict[int, list[dict]] = {}
    for s in steps:
        p = s.get("parent")
        if p is not None and p in ids:
            children.setdefault(int(p), []).append(s)
    has_file: set[int] = set()
    for s in steps:
        text = _program_text(s)
        if text is not None:
            (out / _file_name(s)).write_text(text, encoding="utf-8", newline="")
            has_file.add(int(s["id"]))

    step_ids = ids
    run = {k: v for k, v in result.items()
           if k not in ("steps", "effects", "warnings", "source", "trace_dir", "extra")}
    root_effects = [e for e in result.get("effects") or []
                    if not (isinstance(e, dict) and e.get("step") in step_ids)]
    if root_effects:
        run["root_effects"] = root_effects
    roots = [int(s["id"]) for s in steps if s.get("parent") is None or s.get("parent") not in ids]
    with open(out / "trace.edn", "w", encoding="utf-8", newline="\n") as f:
        f.write("{:nodes [")
        for i, s in enumerate(steps):
            if i:
                f.write("\n         ")
            f.write(_edn(_node(s, children.get(int(s["id"]), []), int(s["id"]) in has_file)))
        f.write("]\n :next-id ")
        f.write(str(max(ids) + 1 if ids else 0))
        f.write("\n :root ")
        f.write(str(roots[0]) if roots else ("nil" if not steps else str(int(steps[0]["id"]))))
        if result.get("warnings"):
            f.write("\n :warnings ")
            f.write(_edn([_warning_edn(w) for w in result["warnings"]]))
        for key, text in _extra_keys(result.get("extra")):
            f.write(f"\n {key} {text}")
        f.write("\n :spellide/run ")
        f.write(_edn(run))
        f.write("}\n")
    (out / "tree.txt").write_text(render_tree(steps) + "\n", encoding="utf-8")


# the trace's own top-level keys; any other key of a directory read in is kept in ``extra``
_TOP_LEVEL = frozenset({"nodes", "next-id", "root", "warnings", "spellide/run"})


def _extra_keys(extra: Any) -> list[tuple[str, str]]:
    """The top-level keys an import kept (printed key -> printed value), as EDN text to write
    back: re-printed canonically (no comment or trailing text can slip in), the trace's own
    keys and anything that does not read as one form left out."""
    from .errors import SpellError
    from .printer import pr_str
    from .reader import read_one
    out: list[tuple[str, str]] = []
    for key, text in (extra or {}).items() if isinstance(extra, dict) else ():
        try:
            k, v = read_one(str(key)), read_one(str(text))
        except SpellError:
            continue
        if not (isinstance(k, Keyword) and k.full in _TOP_LEVEL):
            out.append((pr_str(k), pr_str(v)))
    return out


def _warning_edn(w: Any) -> Any:
    """A warning as the reference writes it: ``data`` (arbitrary EDN kept as printed text in
    JSON) written back as data, ``timestamp_ms`` as ``:timestamp-ms``."""
    if not isinstance(w, dict):
        return w
    return {("timestamp-ms" if k == "timestamp_ms" else k):
            (_value_edn(v) if k == "data" and isinstance(v, str) else v) for k, v in w.items()}


# --- tree.txt ------------------------------------------------------------------------------------

def _clip(text: str, n: int) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text[:n] + "..." if len(text) > n else text


def _label(step: dict) -> str:
    parts = [str(step["id"])]
    if step.get("variant") == "leaf":
        parts.append(" [leaf]")
    agent, generation = step.get("agent") or MAIN, step.get("generation") or 1
    if agent != MAIN or generation != 1:
        parts.append(f" [{_clip(str(agent), TREE_PROMPT_CHARS)}"
                     + (f" gen {generation}]" if generation != 1 else "]"))
    parts.append(" " + _clip(step.get("prefix") or "", TREE_PROMPT_CHARS))
    if step.get("error") is not None:
        parts.append(" \u2717 " + _clip(str(step["error"]), TREE_RESULT_CHARS))
    elif step.get("value") is not None:
        parts.append(" \u2192 " + _clip(str(step["value"]), TREE_RESULT_CHARS))
    return "".join(parts)


def render_tree(steps: Iterable[dict]) -> str:
    """The ``tree.txt`` text for steps in the JSON shape (no trailing newline)."""
    steps = sorted((s for s in steps if s.get("id") is not None), key=lambda s: int(s["id"]))
    by_id = {int(s["id"]): s for s in steps}
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for s in steps:
        sid, p = int(s["id"]), s.get("parent")
        if p is not None and p in by_id and p != sid:
            children.setdefault(int(p), []).append(sid)
        else:
            roots.append(sid)
    lines: list[str] = []
    seen: set[int] = set()
    # A prefix is a linked list (extension, outer prefix): children share their parent's,
    # and only the innermost TREE_MAX_INDENT levels are ever materialised.
    Prefix = Optional[tuple]
    LAST, MIDDLE = "\u2514\u2500 ", "\u251c\u2500 "

    def indent(prefix: Prefix) -> str:
        exts: list[str] = []
        node = prefix
        while node is not None and len(exts) < TREE_MAX_INDENT:
            exts.append(node[0])
            node = node[1]
        return ("… " if node is not None else "") + "".join(reversed(exts))

    # unvisited nodes (parent cycles in an imported trace) are rendered as roots, never hidden
    root_set = set(roots)
    pending = roots + [sid for sid in by_id if sid not in root_set]
    for root in pending:
        if root in seen:
            continue
        stack: list[tuple[int, Prefix, str]] = [(root, None, "")]
        while stack:
            sid, prefix, connector = stack.pop()
            if sid in seen:
                continue
            seen.add(sid)
            lines.append(indent(prefix) + connector + _label(by_id[sid]))
            kids = [k for k in children.get(sid, []) if k not in seen]
            # the children's prefix is this node's prefix plus this node's own extension
            base = (("   " if connector == LAST else "\u2502  "), prefix) if connector else prefix
            for i in range(len(kids) - 1, -1, -1):
                stack.append((kids[i], base, LAST if i == len(kids) - 1 else MIDDLE))
    return "\n".join(lines).rstrip()


# --- importing -----------------------------------------------------------------------------------

def _to_json(x: Any) -> Any:
    """EDN data to JSON-like data (keywords as their names when keys; printed otherwise)."""
    from .printer import pr_str
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else pr_str(x)
    if isinstance(x, Map):
        return {(k.full if isinstance(k, Keyword) else k if isinstance(k, str) else pr_str(k)): _to_json(v)
                for k, v in x.items()}
    if isinstance(x, (Vector, List)):
        return [_to_json(v) for v in x]
    return pr_str(x)


def _where(directory: Path, node_index: int, node: Any) -> str:
    nid = node.get(kw("id")) if isinstance(node, Map) else None
    return f"{directory / 'trace.edn'}: node {node_index}" + (f" (id {nid})" if nid is not None else "")


def import_trace_dir(directory: str | Path) -> dict:
    """Read a trace directory (the reference's, or one ``write_trace_dir`` made) into the run
    result JSON shape. Raises ``FileNotFoundError`` / ``NotADirectoryError`` for a missing
    directory or ``trace.edn``, and ``ValueError`` (saying what and where) for content that
    cannot be read."""
    from .errors import ReadError
    from .printer import pr_str
    from .reader import read_one

    d = Path(directory)
    if not d.exists():
        raise FileNotFoundError(f"trace directory not found: {d}")
    if not d.is_dir():
        raise NotADirectoryError(f"not a directory: {d} (expected a trace directory)")
    edn_path = d / "trace.edn"
    if not edn_path.is_file():
        raise FileNotFoundError(f"no trace.edn in {d} (is it a trace directory?)")
    try:
        text = edn_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{edn_path}: not UTF-8 text (byte {e.start})") from None
    try:
        data = read_one(text)
    except ReadError as e:
        raise ValueError(f"{edn_path}: cannot read EDN at line {e.line}, column {e.col}: {e.reason}") from None
    if not isinstance(data, Map):
        raise ValueError(f"{edn_path}: expected a map {{:nodes [...] ...}}, got {_kind(data)}")
    nodes = data.get(kw("nodes"))
    if nodes is None:
        nodes = Vector()
    if not isinstance(nodes, (Vector, List)):
        raise ValueError(f"{edn_path}: :nodes must be a vector, got {_kind(nodes)}")

    steps: list[dict] = []
    seen: set[int] = set()
    for i, node in enumerate(nodes):
        where = _where(d, i, node)
        if not isinstance(node, Map):
            raise ValueError(f"{where}: a node must be a map, got {_kind(node)}")
        steps.append(_import_node(d, node, where, pr_str))
        if steps[-1]["id"] in seen:
            raise ValueError(f"{where}: duplicate :id {steps[-1]['id']}")
        seen.add(steps[-1]["id"])

    run = data.get(kw("spellide/run"))
    result: dict[str, Any] = {"value": None, "error": None, "error_kind": None, "status": "incomplete"}
    root_effects: list = []
    if isinstance(run, Map):
        result.update(_to_json(run))
        root_effects = result.pop("root_effects", None) or []
    else:
        root_id = data.get(kw("root"))
        root = next((s for s in steps if s["id"] == root_id), steps[0] if steps else None)
        if root is not None:
            if root["error"] is not None:
                result.update(error=root["error"], status="failed")
            elif root["value"] is not None:
                result.update(value=root["value"], status="finished")
    result["steps"] = steps
    result["effects"] = list(root_effects) + [e for s in steps for e in s["effects"]]
    result["source"] = "spellide-trace" if isinstance(run, Map) else "reference-trace"
    result["trace_dir"] = str(d)
    warnings = data.get(kw("warnings"))
    if isinstance(warnings, (Vector, List)):
        result["warnings"] = [_import_warning(w) for w in warnings]
    else:
        result.setdefault("warnings", [])
    result.setdefault("agents", [])
    for k, v in data.items():
        if not (isinstance(k, Keyword) and k.full in _TOP_LEVEL):
            result.setdefault("extra", {})[pr_str(k)] = pr_str(v)   # printed: written back unchanged
    return result


def _import_warning(w: Any) -> Any:
    """``{:message :data :timestamp-ms}`` as the JSON shape's ``{"message", "data",
    "timestamp_ms"}``; ``:data`` is arbitrary EDN, kept as its printed text."""
    from .printer import pr_str
    if not isinstance(w, Map):
        return _to_json(w)
    out: dict[str, Any] = {}
    for k, v in w.items():
        name = k.full if isinstance(k, Keyword) else pr_str(k)
        out["timestamp_ms" if name == "timestamp-ms" else name] = pr_str(v) if name == "data" else _to_json(v)
    return out


def _kind(x: Any) -> str:
    from .printer import pr_str
    if isinstance(x, Map):
        return "a map"
    if isinstance(x, (Vector, List)):
        return "a sequence"
    text = pr_str(x)
    return text if len(text) <= 40 else text[:40] + "..."


def _import_node(d: Path, node: Map, where: str, pr_str: Any) -> dict:
    def get(name: str, default: Any = None) -> Any:
        return node.get(kw(name), default)

    nid = get("id")
    if not isinstance(nid, int) or isinstance(nid, bool):
        raise ValueError(f"{where}: :id must be an integer, got {_kind(nid)}")
    parent = get("parent")
    if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
        raise ValueError(f"{where}: :parent must be an integer or nil, got {_kind(parent)}")
    prompt = get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        prompt = pr_str(prompt)
    response = get("response")
    if response is not None and not isinstance(response, str):
        response = pr_str(response)
    variant = get("variant")
    variant = variant.full if isinstance(variant, Keyword) else (str(variant) if variant is not None else "default")

    file_name = get("file")
    program: Optional[str] = None
    used_file: Optional[str] = None
    if file_name is not None:
        if not isinstance(file_name, str) or not _FILE_RE.fullmatch(file_name):
            raise ValueError(f"{where}: :file must be a plain file name in the trace directory, got {_kind(file_name)}")
        program = _read_program(d / file_name, where)
        if program is not None:
            used_file = file_name
    if program is None:
        guess = f"{nid:04d}{'.txt' if variant == 'leaf' else '.spl'}"
        program = _read_program(d / guess, where)
        if program is not None:
            used_file = guess
    prog_field = get("program")
    if program is None and prog_field is not None:
        program = prog_field if isinstance(prog_field, str) else pr_str(prog_field)
    if program is None and response is not None:
        program = (prompt or "") + response

    error = get("error")
    if error is not None and not isinstance(error, str):
        error = pr_str(error)
    value: Optional[str] = None
    if error is None:
        text = get("spellide/value-text")
        if isinstance(text, str):
            value = text
        elif kw("value") in node:
            value = pr_str(get("value"))

    start, end = get("start-ms"), get("end-ms")
    step: dict[str, Any] = {
        "id": nid, "parent": parent, "depth": get("depth"), "variant": variant,
        "prefix": prompt, "completion": response, "program": program, "value": value, "error": error,
        "effects": _to_json(get("spellide/effects")) or [],
        "started": start / 1000 if is_number(start) else None,
        "finished": end / 1000 if is_number(end) else None,
        "usage": _to_json(get("spellide/usage")),
        "file": used_file,
    }
    known = {"id", "parent", "depth", "variant", "prompt", "response", "program", "value", "error",
             "file", "start-ms", "end-ms", "children", "raw-text", "spellide/effects",
             "spellide/usage", "spellide/value-text"}
    extra: dict[str, Any] = {}
    for k, v in node.items():
        name = k.full if isinstance(k, Keyword) else pr_str(k)
        if name in known:
            continue
        if name.startswith("spellide/"):
            step[name[len("spellide/"):]] = _to_json(v)
        else:
            extra[name] = _to_json(v)  # reference keys spellide has no field for (:hooked, :memo)
    if extra:
        step["reference"] = extra
    # a reference node names no agent: the root's (module docstring)
    if not isinstance(step.get("agent"), str):
        step["agent"] = MAIN
    if not isinstance(step.get("generation"), int) or isinstance(step.get("generation"), bool):
        step["generation"] = 1
    return step


def _read_program(path: Path, where: str) -> Optional[str]:
    """A node's program file, or None if there is none. Symlinks are not followed: a trace
    directory may come from someone else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if st.S_ISLNK(info.st_mode):
        raise ValueError(f"{where}: {path.name} is a symbolic link (not followed)")
    if not st.S_ISREG(info.st_mode):
        raise ValueError(f"{where}: {path.name} is not a regular file")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None


# --- messages received, read back from prompts ----------------------------------------------------

def _receipt_patterns() -> tuple[re.Pattern, re.Pattern, dict[str, str]]:
    from .agents.receipt import LABELS
    sites = {label: site for site, label in LABELS.items()}
    head = re.compile(r'\(think "(' + "|".join(re.escape(label) for label in LABELS.values())
                      + r')"\) \(def msg-(\d+) ')
    tail = re.compile(r"\) \(quote \(!extend [^\s()]+\)\)")
    return head, tail, sites


def message_receipts(steps: Iterable[dict]) -> list[dict]:
    """The messages each step's prompt received, read back from the receipt forms the runtime
    writes (``(think "wait resumed") (def msg-N M) (quote (!extend completion))``,
    spell-agents.md 2.3): for each step in id order, the ``msg-N`` its prompt binds that no
    earlier prompt of the same agent bound (names count per agent, across lifecycles). Each is
    ``{step, agent, site, name, message (printed), sender, kind, edge, body, sender_step}``:
    ``kind`` as the coordinator names it (``future`` from ``:future``, ``cancel``, ``request``
    when it expects a response, ``report`` with an edge id, else ``send``); ``sender_step`` is
    the sender's last step started before the receiving one (an inference: the trace does not
    record when a message was sent), None when the sender made no call.

    Only meaningful when the steps' agents are known (a trace spellide wrote): a reference
    trace gives every step to ``:main``, and a spawned agent's receipts would be read as the
    root's."""
    from .errors import SpellError
    from .printer import pr_str
    from .reader import read_one
    head, tail, sites = _receipt_patterns()
    ordered = sorted((s for s in steps if s.get("id") is not None), key=lambda s: int(s["id"]))
    latest: dict[str, int] = {}      # agent -> its last step so far
    bound: dict[str, int] = {}       # agent -> highest msg-N bound so far
    out: list[dict] = []
    for s in ordered:
        agent = s.get("agent") or MAIN
        prompt = s.get("prefix") or ""
        for m in head.finditer(prompt):
            n = int(m.group(2))
            if n <= bound.get(agent, 0):
                continue
            form = _message_form(prompt, m.end(), tail, read_one, SpellError)
            if form is None:
                continue
            bound[agent] = n
            out.append(_receipt(s, agent, sites[m.group(1)], f"msg-{n}", form, latest, pr_str))
        latest[agent] = int(s["id"])
    return out


def _message_form(prompt: str, start: int, tail: re.Pattern, read_one: Any, error: type) -> Optional[Map]:
    """The message bound at ``start``: the text up to the first receipt tail that reads as one
    form (a message body may itself contain a tail's text)."""
    for t in tail.finditer(prompt, start):
        try:
            form = read_one(prompt[start:t.start()])
        except error:
            continue
        if isinstance(form, List) and len(form) == 2 and getattr(form[0], "name", None) == "quote":
            form = form[1]   # a message that does not evaluate to itself is bound quoted
        return form if isinstance(form, Map) else None
    return None


def _receipt(step: dict, agent: str, site: str, name: str, message: Map, latest: dict[str, int],
             pr_str: Any) -> dict:
    sender = message.get(kw("from"))
    shown = pr_str(sender) if sender is not None else None
    edge = message.get(kw("edge-id"))
    if sender == kw("future"):
        kind = "future"
    elif message.get(kw("cancelled")) is True:
        kind = "cancel"
    elif message.get(kw("expects-response")) is True:
        kind = "request"
    elif isinstance(edge, int) and not isinstance(edge, bool):
        kind = "report"
    else:
        kind = "send"
    body = pr_str(message[kw("body")]) if kw("body") in message else None
    return {"step": int(step["id"]), "agent": agent, "site": site, "name": name,
            "message": pr_str(message), "sender": shown, "kind": kind,
            "edge": edge if isinstance(edge, int) and not isinstance(edge, bool) else None,
            "body": body, "sender_step": latest.get(shown) if isinstance(shown, str) else None}
