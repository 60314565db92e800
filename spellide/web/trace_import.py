"""A trace directory from the Clojure reference (or one ``spellide run --trace-dir`` wrote),
imported as a run that browses like any other: steps, programs, diffs, effects.

The core reads the directory (``api.import_trace_dir``: ``trace.edn`` plus a program file per
node); this module turns the steps it reports into the same events a live run emits and writes
them through ``RunPersister``, the one path by which events become rows, so the imported run is
stored exactly as a recorded one. Uploads arrive as a zip or tar of the directory and are
unpacked with limits (size, file count, plain files only, no path leaving the folder).
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from spellide.spell import api
from spellide.web.models import Run
from spellide.web.runner.persist import RunPersister

MAX_FILES = 20_000
MAX_BYTES = 512 * 1024 * 1024      # unpacked
MAX_UPLOAD = 256 * 1024 * 1024


class TraceRefused(ValueError):
    """An archive or directory that is not an importable trace; the message says why."""


def import_trace(directory: str | Path, owner: Any, title: str = "") -> Run:
    try:
        result = api.import_trace_dir(directory)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise TraceRefused(str(e)) from None
    steps = sorted(result.get("steps") or [], key=lambda s: s["id"])
    origin = "reference trace" if result.get("source") == "reference-trace" else "spellide trace"
    run = Run.objects.create(owner=owner, title=(title or f"{origin}: {Path(directory).name}")[:200],
                             status=Run.Status.RUNNING, config={"prompt": (steps[0].get("prefix") if steps else None),
                                                                "model": "trace", "breakpoints": {}},
                             origin={"trace": origin, "directory": Path(directory).name,
                                     "warnings": result.get("warnings") or []})
    persister = RunPersister(run, threaded=False, broadcast=False)
    seq = 0

    def emit(type_: str, ts: Optional[float], **data: Any) -> None:
        nonlocal seq
        seq += 1
        persister(api.Event(seq, type_, data, ts if ts is not None else time.time()))

    t0 = steps[0].get("started") if steps and steps[0].get("started") else time.time()
    emit(api.RUN_STARTED, t0, config=run.config, model_settings={"model": "trace"})
    for s in steps:
        sid = s["id"]
        emit(api.STEP_STARTED, s.get("started"), step=sid, parent=s.get("parent"), depth=s.get("depth") or 1,
             prefix=s.get("prefix") or "", model="trace")
        emit(api.COMPLETION, s.get("started"), step=sid, completion=s.get("completion") or "",
             usage=s.get("usage") or {}, model="trace", transport="")
        if s.get("program") is not None:
            emit(api.PROGRAM, s.get("started"), step=sid, program=s["program"], provenance=[])
        for i, eff in enumerate(s.get("effects") or []):
            if isinstance(eff, dict):
                emit(api.EFFECT, s.get("finished"), step=sid, effect=dict({"step": sid, "ordinal": i}, **eff))
        # a trace says each node's parent and value, not which child continued it in tail
        # position: nested calls show under their parent, each with its own value
        emit(api.STEP_FINISHED, s.get("finished") or s.get("started"), step=sid, value=s.get("value"),
             error=s.get("error"), continued_by=None)
    end = steps[-1].get("finished") if steps else None
    if result.get("error"):
        emit(api.RUN_FAILED, end, error=result["error"], kind=result.get("error_kind"))
    else:
        emit(api.RUN_FINISHED, end, value=result.get("value"))
    persister.close()
    if persister.error is not None:
        raise TraceRefused(f"the trace could not be stored: {persister.error}")
    run.refresh_from_db()
    return run


def import_archive(raw: bytes, name: str, owner: Any, title: str = "") -> Run:
    """An uploaded zip or tar (optionally compressed) of a trace directory."""
    if len(raw) > MAX_UPLOAD:
        raise TraceRefused(f"the archive is {len(raw):,} bytes; the limit is {MAX_UPLOAD:,}")
    tmp = Path(tempfile.mkdtemp(prefix="spellide-trace-"))
    try:
        _unpack(raw, name, tmp)
        found = sorted(p.parent for p in tmp.rglob("trace.edn") if len(p.relative_to(tmp).parts) <= 3)
        if not found:
            raise TraceRefused(f"{name}: no trace.edn in the archive (zip or tar a trace directory)")
        return import_trace(found[0], owner, title or f"trace: {Path(name).name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe(member: str) -> PurePosixPath:
    p = PurePosixPath(member)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise TraceRefused(f"archive member {member!r} would land outside the trace folder")
    return p


def _unpack(raw: bytes, name: str, dest: Path) -> None:
    files = total = 0

    def write(member: str, data: bytes) -> None:
        nonlocal files, total
        files += 1
        total += len(data)
        if files > MAX_FILES or total > MAX_BYTES:
            raise TraceRefused(f"the archive holds more than {MAX_FILES:,} files or {MAX_BYTES:,} bytes unpacked")
        target = dest.joinpath(*_safe(member).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    if zipfile.is_zipfile(io.BytesIO(raw)):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                if info.file_size > MAX_BYTES:
                    raise TraceRefused(f"archive member {info.filename!r} is too large")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    continue                   # a symlink: never followed
                write(info.filename, z.read(info))
        return
    try:
        tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:*")
    except tarfile.TarError:
        raise TraceRefused(f"{name}: not a zip or tar archive") from None
    with tf:
        for m in tf:
            if not m.isfile():
                continue                       # directories are made as needed; links skipped
            if m.size > MAX_BYTES:
                raise TraceRefused(f"archive member {m.name!r} is too large")
            f = tf.extractfile(m)
            write(m.name, f.read() if f else b"")
