"""The ``io/`` effect namespace, confined to one per-run workspace directory.

Agent programs and model output are untrusted (design.md section 7), so every path an ``io/``
function receives is interpreted inside the run's workspace and nothing can reach outside it:

* A relative path is relative to the workspace; an absolute path is accepted only if it names
  something inside the workspace (either as given or after the workspace's own symlinks, such as
  ``/tmp`` -> ``/private/tmp``, are resolved).
* ``..`` is resolved lexically; a path whose ``..`` climbs above the workspace root is refused.
* Symbolic links are never followed and never operated on, wherever they are: a symlink as a
  parent directory, as the final component, pointing inside the workspace or outside. A symlink
  pointing inside is refused too, because it can be retargeted between a check and a use; one
  rule ("io/ does not touch symbolic links") is easier to trust than a resolution policy.
* Checks and uses do not race: after a first check on the resolved path (``os.path.realpath`` and
  ``is_relative_to``, which gives the clear message when a link leads outside), every operation
  walks the path one component at a time with directory file descriptors, opening each component
  with ``O_NOFOLLOW`` and creating missing parents only through those descriptors. A directory
  swapped for a symlink between the check and the use is therefore caught at the use. Files are
  opened non-blocking and must be regular files (a FIFO cannot hang a run).

Refusals are *raised*: ``SpellError(kind="io-refused")``, with a message that names the function
and the path (``io/slurp: path escapes the workspace: ../x``). The effect gate records a raised
``io-refused`` error as *blocked*, the program sees an error, and a refused call never looks like
an ordinary result. Ordinary failures (a missing file, a directory where a file was expected, a
string that does not occur) are *returned* as ``{:error "..."}`` maps, as in the reference
(``src/spell/io.clj``), so programs can branch on them. Wrong argument types and counts raise an
ordinary ``SpellError`` (``kind="eval"``): they are bugs in the program, not I/O outcomes.

Shell execution (``io/sh``, ``io/exec``) is off unless the run's profile enables it; a call while
it is off is refused (raised, ``io-refused``). When on, commands run with the workspace as their
working directory, a fixed minimal environment (never the host's), stdin closed, a wall-clock
timeout that kills the whole process group, and a cap on the bytes of stdout and stderr kept
(the rest is read and dropped, ``:truncated true``). When the command returns, whatever it left
running in its process group is killed (background children holding the output open get one
second first). A per-call ``{:timeout n}`` can shorten the profile's limit, never lift it. The
shell is *not* a sandbox: a shell command can do whatever the server's user can, including
creating the symlinks and hard links that ``io/`` itself refuses or cannot see (a hard link is
indistinguishable from a regular file). Enable it only for trusted agents or inside a container.

``io/env`` does not leak the host environment: it returns the fixed environment that shell
commands of this run see (``PATH``, ``HOME``, ``PWD``, ``LANG``, ``LC_ALL``), nothing else.

The functions do no caching (the effect gate does) and are deterministic given the filesystem:
listings are sorted, temporary file names are the first free ``tmp/spellN.tmp``, and ``io/cwd``
is the workspace's absolute path. POSIX only (directory file descriptors).
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import shutil
import signal
import stat as st
import subprocess
import threading
import time
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..data import Keyword, List, Map, Regex, Symbol, Vector, compile_regex, is_number, kw, smap, truthy
from ..errors import SpellError
from ..limits import limited

REFUSED = "io-refused"

MAX_FILE_BYTES = 64 * 1024 * 1024   # reads above this fail with {:error}: a run's memory is bounded
MAX_GREP_MATCHES = 1000             # default of {:max n}
GREP_LINE_CHARS = 500               # a matched line longer than this is clipped (with "…")
MAX_GLOB_RESULTS = 10_000
SKIP_DIRS = frozenset({".git"})     # grep and glob do not descend into these
BACKGROUND_GRACE = 1.0             # seconds a command's background children may keep its pipes open
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_OK, _ERROR = kw("ok"), kw("error")


def _ok(value: Any) -> Map:
    return smap(_OK, value)


def _err(message: str) -> Map:
    return smap(_ERROR, message)


class _Fail(Exception):
    """An ordinary failure: turned into ``{:error message}`` at the function boundary."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _refuse(fn: str, message: str) -> SpellError:
    return SpellError(f"{fn}: {message}", kind=REFUSED)


# --- argument helpers -----------------------------------------------------------------------

def _type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, str):
        return "string"
    if is_number(v):
        return "number"
    if isinstance(v, Keyword):
        return "keyword"
    if isinstance(v, Symbol):
        return "symbol"
    if isinstance(v, Map):
        return "map"
    if isinstance(v, Vector):
        return "vector"
    if isinstance(v, List):
        return "list"
    return type(v).__name__


def _arity(fn: str, args: tuple, lo: int, hi: Optional[int]) -> None:
    n = len(args)
    if n < lo or (hi is not None and n > hi):
        want = (f"{lo}" if lo == hi else f"{lo} or more" if hi is None
                else f"{lo} to {hi}" if hi - lo > 1 else f"{lo} or {hi}")
        raise SpellError(f"{fn}: wrong number of arguments ({n}); expected {want}")


def _path_arg(fn: str, v: Any, what: str = "path") -> str:
    if isinstance(v, str):
        return v
    raise SpellError(f"{fn}: {what} must be a string, got {_type_name(v)}")


def _int_arg(fn: str, what: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise SpellError(f"{fn}: {what} must be an integer, got {_type_name(v)}")


def _opts_arg(fn: str, v: Any) -> Map:
    if v is None:
        return Map()
    if isinstance(v, Map):
        return v
    raise SpellError(f"{fn}: options must be a map, got {_type_name(v)}")


def _flag(opts: Map, name: str) -> bool:
    return truthy(opts.get(kw(name)))


def _text_of(v: Any) -> str:
    """Clojure's ``str`` of one value (what the reference's ``spit`` writes)."""
    from ..printer import to_str
    return to_str(v)


def _quoted(s: str) -> str:
    """A string as Spell prints it, for error messages."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + out.replace("\r", "\\r") + '"'


def _split_lines(text: str) -> list[str]:
    """Lines without their terminators; a final newline does not start an empty line.

    Unlike Clojure's ``split-lines`` (Java ``split``), trailing blank lines are kept, so that
    ``replace-lines`` does not silently drop them from the file."""
    if text == "":
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _newline_of(text: str) -> str:
    n = text.count("\n")
    return "\r\n" if n and text.count("\r\n") == n else "\n"


def _clamp_range(start: int, end: int, n: int) -> tuple[int, int]:
    """The reference's clamping of a 1-based half-open range to a file of ``n`` lines."""
    start = max(1, min(start, n))
    end = max(start, min(end, n + 1))
    return start, end


def _decode_strict(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Fail(f"Not UTF-8 text (byte {e.start}): {path}") from None


def _os_message(e: OSError, path: str) -> str:
    if isinstance(e, FileNotFoundError):
        return f"File not found: {path}"
    if isinstance(e, IsADirectoryError):
        return f"Is a directory: {path}"
    if isinstance(e, NotADirectoryError):
        return f"Not a directory: {path}"
    if isinstance(e, FileExistsError):
        return f"Already exists: {path}"
    if isinstance(e, PermissionError):
        return f"Permission denied: {path}"
    if e.errno == errno.ENOTEMPTY:
        return f"Directory not empty: {path}"
    return f"{e.strerror or e}: {path}"


# --- the confined workspace -----------------------------------------------------------------

class Workspace:
    """A directory that ``io/`` functions cannot leave. See the module docstring for the rules."""

    def __init__(self, root: str | Path):
        p = Path(root)
        p.mkdir(parents=True, exist_ok=True)
        self.given = os.path.abspath(p)
        self.root = os.path.realpath(p)
        if not os.path.isdir(self.root):
            raise ValueError(f"workspace is not a directory: {root}")

    # lexical confinement, then the resolved-path check
    def parts(self, fn: str, path: str) -> tuple[str, ...]:
        """The path's components relative to the root, or a refusal naming the path."""
        if "\x00" in path:
            raise _Fail(f"Invalid path (contains a NUL character): {path!r}")
        rel = path
        if os.path.isabs(path):
            norm = os.path.normpath(path)
            for base in (self.root, self.given):
                if norm == base:
                    rel = ""
                    break
                if norm.startswith(base.rstrip(os.sep) + os.sep):
                    rel = norm[len(base.rstrip(os.sep)) + 1:]
                    break
            else:
                raise _refuse(fn, f"path escapes the workspace: {path}")
        parts: list[str] = []
        for part in rel.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise _refuse(fn, f"path escapes the workspace: {path}")
                parts.pop()
            else:
                parts.append(part)
        real = os.path.realpath(os.path.join(self.root, *parts))
        if not Path(real).is_relative_to(self.root):
            raise _refuse(fn, f"path escapes the workspace through a symbolic link: {path}")
        return tuple(parts)

    def _link_refusal(self, fn: str, path: str, at: tuple[str, ...]) -> SpellError:
        where = "/".join(at)
        shown = path if where == path.strip("/") else f"{path} (at {where})"
        return _refuse(fn, f"path goes through a symbolic link: {shown}")

    def open_dir(self, fn: str, path: str, parts: tuple[str, ...], create: bool = False) -> int:
        """Open ``parts`` as a directory, one component at a time, never following a symlink;
        with ``create``, make missing components (through the same descriptors). The caller
        closes the returned descriptor."""
        fd = os.open(self.root, _O_DIR)
        try:
            for i, name in enumerate(parts):
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise FileNotFoundError(errno.ENOENT, "not found", "/".join(parts[:i + 1])) from None
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if st.S_ISLNK(info.st_mode):
                    raise self._link_refusal(fn, path, parts[:i + 1])
                if not st.S_ISDIR(info.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/".join(parts[:i + 1]))
                try:
                    nfd = os.open(name, _O_DIR, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        # it changed since the stat above: a swap for a symlink is a refusal
                        raise self._link_refusal(fn, path, parts[:i + 1]) from None
                    raise
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    @contextmanager
    def parent(self, fn: str, path: str, create: bool = False) -> Iterator[tuple[int, Optional[str], tuple[str, ...]]]:
        """Yield (descriptor of the parent directory, final name or None for the root, parts)."""
        parts = self.parts(fn, path)
        fd = self.open_dir(fn, path, parts[:-1], create=create)
        try:
            yield fd, (parts[-1] if parts else None), parts
        finally:
            os.close(fd)

    def lstat(self, fn: str, path: str, dfd: int, name: Optional[str], parts: tuple[str, ...]) -> os.stat_result:
        """Stat the final component without following it; a symlink is refused."""
        if name is None:
            return os.fstat(dfd)
        info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if st.S_ISLNK(info.st_mode):
            raise self._link_refusal(fn, path, parts)
        return info

    def _open_final(self, fn: str, path: str, dfd: int, name: str, parts: tuple[str, ...],
                    flags: int, mode: int = 0o666) -> int:
        try:
            fd = os.open(name, flags, mode, dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._link_refusal(fn, path, parts) from None
            raise
        info = os.fstat(fd)
        if not st.S_ISREG(info.st_mode):
            os.close(fd)
            if st.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise _Fail(f"Not a regular file: {path}")
        return fd

    def read_bytes(self, fn: str, path: str) -> bytes:
        with self.parent(fn, path) as (dfd, name, parts):
            if name is None:
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            info = self.lstat(fn, path, dfd, name, parts)
            if st.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            fd = self._open_final(fn, path, dfd, name, parts, _O_READ)
            try:
                return _read_fd(fd, path)
            finally:
                os.close(fd)

    def write_bytes(self, fn: str, path: str, data: bytes, *, append: bool = False,
                    create_parents: bool = True) -> None:
        with self.parent(fn, path, create=create_parents) as (dfd, name, parts):
            if name is None:
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            try:
                info = self.lstat(fn, path, dfd, name, parts)
                if st.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            except FileNotFoundError:
                pass
            fd = self._open_final(fn, path, dfd, name, parts, _O_WRITE | (os.O_APPEND if append else 0))
            try:
                if not append:
                    os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)

    def walk(self, dfd: int, rel: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], os.stat_result, int]]:
        """Every entry under ``dfd`` in sorted order, depth first, symlinks skipped and never
        followed; yields (relative parts, lstat, descriptor of the containing directory)."""
        for name in sorted(os.listdir(dfd)):
            try:
                info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if st.S_ISLNK(info.st_mode):
                continue
            yield rel + (name,), info, dfd
            if st.S_ISDIR(info.st_mode) and name not in SKIP_DIRS:
                try:
                    sub = os.open(name, _O_DIR, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    yield from self.walk(sub, rel + (name,))
                finally:
                    os.close(sub)


def _read_fd(fd: int, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    size = os.fstat(fd).st_size
    if size > limit:
        raise _Fail(f"File too large ({size} bytes; io/ reads at most {limit}): {path}")
    chunks = []
    total = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise _Fail(f"File too large (more than {limit} bytes): {path}")
        chunks.append(chunk)
    return b"".join(chunks)


def _op(fn: str, path_of: Callable[[tuple], str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ordinary failures of an io/ function into ``{:error ...}`` maps; refusals and
    argument errors (``SpellError``) propagate."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            try:
                return f(*args)
            except _Fail as e:
                return _err(e.message)
            except OSError as e:
                return _err(_os_message(e, path_of(args)))
            except UnicodeError as e:
                return _err(f"Cannot encode text as UTF-8 ({e.reason}): {path_of(args)}")

        run.__name__ = f.__name__
        run.__doc__ = f.__doc__
        return run

    return wrap


def _first(args: tuple) -> str:
    return str(args[0]) if args else ""


def _second(args: tuple) -> str:
    return str(args[1]) if len(args) > 1 else ""


# --- processes ------------------------------------------------------------------------------

def _sandbox_env(root: str) -> dict[str, str]:
    return {"PATH": SAFE_PATH, "HOME": root, "PWD": root, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class _Drain(threading.Thread):
    """Read a pipe to its end, keeping at most ``limit`` bytes (the rest is read and dropped,
    so the process never blocks on a full pipe)."""

    def __init__(self, pipe: Any, limit: int):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.limit = limit
        self.kept = bytearray()
        self.truncated = False

    def run(self) -> None:
        try:
            while True:
                chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
                if not chunk:
                    break
                room = self.limit - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]
                if len(chunk) > max(room, 0):
                    self.truncated = True
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        # an incremental decode without ``final`` drops a multi-byte character cut by the limit
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        return dec.decode(bytes(self.kept), final=not self.truncated)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run_process(argv: list[str], root: str, timeout: float, output_limit: int) -> Map:
    try:
        proc = subprocess.Popen(argv, cwd=root, env=_sandbox_env(root), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True)
    except OSError as e:
        return smap(_OK, False, kw("exit"), -1, kw("out"), "",
                    kw("err"), f"Cannot start {argv[0]}: {e.strerror or e}", kw("truncated"), False)
    out, err = _Drain(proc.stdout, output_limit), _Drain(proc.stderr, output_limit)
    out.start()
    err.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    # Background children may hold the pipes open after the command exits: they get a short
    # grace period, then the whole process group is killed. Nothing a command started outlives
    # the call (unless it left the group with setsid; the shell is not a sandbox).
    grace = max(0.0, min(BACKGROUND_GRACE, deadline - time.monotonic()))
    for d in (out, err):
        d.join(grace)
    lingering = out.is_alive() or err.is_alive()
    _kill_group(proc)
    for d in (out, err):
        d.join(2.0)
    for d, pipe in ((out, proc.stdout), (err, proc.stderr)):
        if not d.is_alive():  # closing a pipe a blocked reader holds would block too
            pipe.close()
    out_text, err_text = out.text().strip(), err.text().strip()
    code = proc.returncode if proc.returncode is not None else -1
    note = ""
    if timed_out:
        code = -1
        note = f"Command timed out after {timeout:g} seconds"
    elif lingering:
        note = "Background processes that kept the output open were killed"
    if note:
        err_text = f"{err_text}\n{note}" if err_text else note
    result = smap(_OK, code == 0 and not timed_out, kw("exit"), code, kw("out"), out_text,
                  kw("err"), err_text, kw("truncated"), out.truncated or err.truncated)
    if timed_out:
        result = result.assoc(kw("timed-out"), True)
    return result


# --- the namespace --------------------------------------------------------------------------

def make_io_namespace(workspace: str | Path, *, allow_shell: bool = False, shell_timeout: float = 30.0,
                      output_limit: int = 100_000) -> dict[str, Callable[..., Any]]:
    """The ``io/`` functions of one run, confined to ``workspace`` (created if missing).

    Keys are the names without the ``io/`` prefix; values take Spell values positionally and
    return Spell values. ``allow_shell`` enables ``sh`` and ``exec``; ``shell_timeout`` (seconds)
    is the longest a command may run (a per-call ``{:timeout n}`` can only shorten it) and
    ``output_limit`` the bytes of stdout and of stderr kept from each command.
    """
    ws = Workspace(workspace)
    K = kw

    # -- reading -------------------------------------------------------------------------
    @_op("io/slurp", _first)
    def slurp(*args: Any) -> Map:
        """(io/slurp path) -> {:ok text} | {:error msg}. Invalid UTF-8 bytes read as U+FFFD."""
        _arity("io/slurp", args, 1, 1)
        path = _path_arg("io/slurp", args[0])
        return _ok(ws.read_bytes("io/slurp", path).decode("utf-8", "replace"))

    def _lines_of(fn: str, path: str) -> list[str]:
        return _split_lines(ws.read_bytes(fn, path).decode("utf-8", "replace"))

    def _check_range(fn: str, args: tuple) -> None:
        if len(args) > 1:
            _int_arg(fn, "start line", args[1])
        if len(args) > 2 and args[2] is not None:
            _int_arg(fn, "end line", args[2])

    def _range_args(fn: str, args: tuple, n: int) -> tuple[int, int]:
        start = _int_arg(fn, "start line", args[1]) if len(args) > 1 else 1
        end = _int_arg(fn, "end line", args[2]) if len(args) > 2 and args[2] is not None else n + 1
        return _clamp_range(start, end, n)

    @_op("io/read-file", _first)
    def read_file(*args: Any) -> Any:
        """(io/read-file path [start [end]]) -> "1: first\\n2: second" (right-aligned numbers);
        the optional range is 1-based and half-open, clamped to the file like the reference."""
        _arity("io/read-file", args, 1, 3)
        path = _path_arg("io/read-file", args[0])
        _check_range("io/read-file", args)
        lines = _lines_of("io/read-file", path)
        if not lines:
            return ""
        start, end = _range_args("io/read-file", args, len(lines))
        width = len(str(max(end - 1, start)))
        return "\n".join(f"{i:>{width}}: {lines[i - 1]}" for i in range(start, end))

    @_op("io/read-lines", _first)
    def read_lines(*args: Any) -> Any:
        """(io/read-lines path [start [end]]) -> a vector of lines whose ``first_line`` attribute
        is the 1-based number of its first line (the reference's ``:spell/line-offset``)."""
        _arity("io/read-lines", args, 1, 3)
        path = _path_arg("io/read-lines", args[0])
        _check_range("io/read-lines", args)
        lines = _lines_of("io/read-lines", path)
        if not lines:
            first = _int_arg("io/read-lines", "start line", args[1]) if len(args) > 1 else 1
            v = Vector()
            v.first_line = max(1, first)
            return v
        start, end = _range_args("io/read-lines", args, len(lines))
        v = Vector(lines[start - 1:end - 1])
        v.first_line = start
        return v

    # -- writing -------------------------------------------------------------------------
    @_op("io/spit", _first)
    def spit(*args: Any) -> Map:
        """(io/spit path content [{:append true}]) -> {:ok path}; creates parent directories.
        Content that is not a string is written as Clojure's ``str`` would render it."""
        _arity("io/spit", args, 2, 3)
        path = _path_arg("io/spit", args[0])
        opts = _opts_arg("io/spit", args[2] if len(args) > 2 else None)
        ws.write_bytes("io/spit", path, _text_of(args[1]).encode("utf-8"), append=_flag(opts, "append"))
        return _ok(path)

    @_op("io/write-file", _first)
    def write_file(*args: Any) -> Map:
        """(io/write-file path content) -> {:ok path}; creates parent directories."""
        _arity("io/write-file", args, 2, 2)
        path = _path_arg("io/write-file", args[0])
        ws.write_bytes("io/write-file", path, _text_of(args[1]).encode("utf-8"))
        return _ok(path)

    @_op("io/str-replace", _first)
    def str_replace(*args: Any) -> Map:
        """(io/str-replace path old new [{:all true}]) -> {:ok path}. ``old`` must occur exactly
        once, or at least once with ``:all``; the file must be UTF-8 text."""
        _arity("io/str-replace", args, 3, 4)
        path = _path_arg("io/str-replace", args[0])
        old, new = args[1], args[2]
        if old is None:
            return _err("old-str cannot be nil")
        if new is None:
            return _err("new-str cannot be nil")
        old = _path_arg("io/str-replace", old, "old-str")
        new = _path_arg("io/str-replace", new, "new-str")
        opts = _opts_arg("io/str-replace", args[3] if len(args) > 3 else None)
        if old == "":
            return _err("old-str cannot be empty")
        text = _decode_strict(ws.read_bytes("io/str-replace", path), path)
        count = text.count(old)
        if count == 0:
            return _err(f"String not found in file: {_quoted(old)}")
        if count > 1 and not _flag(opts, "all"):
            return _err(f"String appears {count} times (must be unique): {_quoted(old)}")
        text = text.replace(old, new) if _flag(opts, "all") else text.replace(old, new, 1)
        ws.write_bytes("io/str-replace", path, text.encode("utf-8"), create_parents=False)
        return _ok(path)

    @_op("io/replace-lines", _first)
    def replace_lines(*args: Any) -> Map:
        """(io/replace-lines path start end content) or (io/replace-lines path [[start end content] ...])
        -> {:ok path}. Ranges are 1-based half-open and refer to the original file (no drift);
        ``start == end`` inserts, empty content deletes; overlapping edits are an error."""
        fn = "io/replace-lines"
        if len(args) not in (2, 4):
            raise SpellError(f"{fn}: wrong number of arguments ({len(args)}); expected 2 or 4")
        path = _path_arg(fn, args[0])
        raw_edits = Vector([Vector(args[1:])]) if len(args) == 4 else args[1]
        if not isinstance(raw_edits, (Vector, List)):
            raise SpellError(f"{fn}: edits must be a vector of [start end content], got {_type_name(raw_edits)}")
        edits = []
        for e in raw_edits:
            if not isinstance(e, (Vector, List, tuple)) or len(e) != 3:
                raise SpellError(f"{fn}: each edit must be [start end content]")
            edits.append((_int_arg(fn, "start line", e[0]), _int_arg(fn, "end line", e[1]),
                          _path_arg(fn, e[2], "content")))
        text = _decode_strict(ws.read_bytes(fn, path), path)
        lines = _split_lines(text)
        n = len(lines)
        for start, end, _ in edits:
            if start < 1 or start > n + 1:
                return _err(f"Start line {start} out of range (file has {n} lines)")
            if end < start or end > n + 1:
                return _err(f"End line {end} out of range (start={start}, file has {n} lines)")
        ordered = sorted(edits, key=lambda e: e[0])
        for (_, end1, _), (start2, _, _) in zip(ordered, ordered[1:]):
            if start2 < end1:
                return _err("Edits have overlapping line ranges")
        for start, end, content in reversed(ordered):
            lines[start - 1:end - 1] = _split_lines(content)
        nl = _newline_of(text)
        out = nl.join(lines) + (nl if text.endswith("\n") else "")
        ws.write_bytes(fn, path, out.encode("utf-8"), create_parents=False)
        return _ok(path)

    # -- directories and metadata ----------------------------------------------------------
    def _probe(fn: str, path: str) -> Optional[os.stat_result]:
        try:
            with ws.parent(fn, path) as (dfd, name, parts):
                return ws.lstat(fn, path, dfd, name, parts)
        except OSError:
            return None
        except _Fail:
            return None

    def exists(*args: Any) -> bool:
        """(io/exists? path) -> true | false."""
        _arity("io/exists?", args, 1, 1)
        return _probe("io/exists?", _path_arg("io/exists?", args[0])) is not None

    def directory(*args: Any) -> bool:
        """(io/directory? path) -> true | false."""
        _arity("io/directory?", args, 1, 1)
        info = _probe("io/directory?", _path_arg("io/directory?", args[0]))
        return info is not None and st.S_ISDIR(info.st_mode)

    @_op("io/ls", _first)
    def ls(*args: Any) -> Any:
        """(io/ls [path]) -> a sorted vector of entry names, or {:error msg}."""
        _arity("io/ls", args, 0, 1)
        path = _path_arg("io/ls", args[0]) if args else "."
        fd = ws.open_dir("io/ls", path, ws.parts("io/ls", path))
        try:
            return Vector(sorted(os.listdir(fd)))
        finally:
            os.close(fd)

    @_op("io/mkdir", _first)
    def mkdir(*args: Any) -> Map:
        """(io/mkdir path) -> {:ok path}; the parent must exist; an existing path is an error."""
        _arity("io/mkdir", args, 1, 1)
        path = _path_arg("io/mkdir", args[0])
        with ws.parent("io/mkdir", path) as (dfd, name, parts):
            if name is None:
                raise _Fail(f"Already exists: {path}")
            try:
                ws.lstat("io/mkdir", path, dfd, name, parts)  # an existing symlink is refused
            except FileNotFoundError:
                pass
            else:
                raise _Fail(f"Already exists: {path}")
            os.mkdir(name, 0o777, dir_fd=dfd)
        return _ok(path)

    @_op("io/mkdirs", _first)
    def mkdirs(*args: Any) -> Map:
        """(io/mkdirs path) -> {:ok path}; creates missing parents; an existing directory is fine."""
        _arity("io/mkdirs", args, 1, 1)
        path = _path_arg("io/mkdirs", args[0])
        os.close(ws.open_dir("io/mkdirs", path, ws.parts("io/mkdirs", path), create=True))
        return _ok(path)

    def cwd(*args: Any) -> str:
        """(io/cwd) -> the workspace's absolute path (relative paths start there)."""
        _arity("io/cwd", args, 0, 0)
        return ws.root

    @_op("io/delete", _first)
    def delete(*args: Any) -> Map:
        """(io/delete path [{:recursive true}]) -> {:ok path}; a directory must be empty unless
        ``:recursive`` (which removes the tree without following any symlink inside it)."""
        _arity("io/delete", args, 1, 2)
        path = _path_arg("io/delete", args[0])
        opts = _opts_arg("io/delete", args[1] if len(args) > 1 else None)
        with ws.parent("io/delete", path) as (dfd, name, parts):
            if name is None:
                raise _Fail(f"Cannot delete the workspace root: {path}")
            info = ws.lstat("io/delete", path, dfd, name, parts)
            if st.S_ISDIR(info.st_mode):
                if _flag(opts, "recursive"):
                    shutil.rmtree(name, dir_fd=dfd)
                else:
                    os.rmdir(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
        return _ok(path)

    @_op("io/copy", _first)
    def copy(*args: Any) -> Map:
        """(io/copy src dest) -> {:ok dest}; files only; replaces an existing dest file."""
        _arity("io/copy", args, 2, 2)
        src = _path_arg("io/copy", args[0])
        dest = _path_arg("io/copy", args[1])
        ws.parts("io/copy", dest)  # refuse an escaping destination before reading anything
        try:
            data = ws.read_bytes("io/copy", src)
        except FileNotFoundError:
            raise _Fail(f"Source not found: {src}") from None
        try:
            ws.write_bytes("io/copy", dest, data, create_parents=False)
        except OSError as e:
            raise _Fail(_os_message(e, dest)) from None
        return _ok(dest)

    @_op("io/move", _first)
    def move(*args: Any) -> Map:
        """(io/move src dest) -> {:ok dest}; files or directories; replaces an existing dest file."""
        _arity("io/move", args, 2, 2)
        src = _path_arg("io/move", args[0])
        dest = _path_arg("io/move", args[1])
        ws.parts("io/move", dest)
        with ws.parent("io/move", src) as (sfd, sname, sparts):
            if sname is None:
                raise _Fail(f"Cannot move the workspace root: {src}")
            try:
                ws.lstat("io/move", src, sfd, sname, sparts)
            except FileNotFoundError:
                raise _Fail(f"Source not found: {src}") from None
            try:
                with ws.parent("io/move", dest) as (dfd, dname, dparts):
                    if dname is None:
                        raise _Fail(f"Cannot replace the workspace root: {dest}")
                    try:
                        ws.lstat("io/move", dest, dfd, dname, dparts)
                    except FileNotFoundError:
                        pass
                    os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as e:
                raise _Fail(_os_message(e, dest)) from None
        return _ok(dest)

    @_op("io/stat", _first)
    def stat(*args: Any) -> Map:
        """(io/stat path) -> {:size :modified (epoch ms) :readable :writable :executable
        :directory :file}, or {:error msg}."""
        _arity("io/stat", args, 1, 1)
        path = _path_arg("io/stat", args[0])
        with ws.parent("io/stat", path) as (dfd, name, parts):
            info = ws.lstat("io/stat", path, dfd, name, parts)
            target: Any = name if name is not None else "."
            where = dfd if name is not None else ws.root

            def can(mode: int) -> bool:
                if name is None:
                    return os.access(ws.root, mode)
                return os.access(target, mode, dir_fd=where, follow_symlinks=False)

            return smap(K("size"), info.st_size, K("modified"), info.st_mtime_ns // 1_000_000,
                        K("readable"), can(os.R_OK), K("writable"), can(os.W_OK),
                        K("executable"), can(os.X_OK), K("directory"), st.S_ISDIR(info.st_mode),
                        K("file"), st.S_ISREG(info.st_mode))

    @_op("io/temp-file", lambda a: "tmp/")
    def temp_file(*args: Any) -> Map:
        """(io/temp-file [prefix suffix]) -> {:ok "tmp/spellN.tmp"}: a new empty file under the
        workspace's ``tmp/`` with the first free number (deterministic, unlike random names)."""
        _arity("io/temp-file", args, 0, 2)
        if len(args) == 1:
            raise SpellError("io/temp-file: wrong number of arguments (1); expected 0 or 2")
        prefix = _path_arg("io/temp-file", args[0], "prefix") if args else "spell"
        suffix = _path_arg("io/temp-file", args[1], "suffix") if args else ".tmp"
        if "/" in prefix + suffix or "\x00" in prefix + suffix:
            raise SpellError("io/temp-file: prefix and suffix must not contain '/'")
        fd = ws.open_dir("io/temp-file", "tmp", ("tmp",), create=True)
        try:
            for i in range(1, 1_000_000):
                name = f"{prefix}{i}{suffix}"
                try:
                    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o600, dir_fd=fd))
                except FileExistsError:
                    continue
                return _ok(f"tmp/{name}")
        finally:
            os.close(fd)
        raise _Fail("No free temporary file name in tmp/")

    # -- searching -------------------------------------------------------------------------
    @_op("io/grep", _second)
    def grep(*args: Any) -> Map:
        """(io/grep pattern [path [opts]]) -> {:ok [{:file :line :text} ...] :truncated bool}.
        ``pattern`` is a regex (string or #"..."); ``path`` a file or a directory searched
        recursively (default: the whole workspace; binary files and .git are skipped); opts
        ``{:ignore-case true :fixed true :max n}``. Paths are relative to the workspace."""
        fn = "io/grep"
        _arity(fn, args, 1, 3)
        pat = args[0]
        path = _path_arg(fn, args[1]) if len(args) > 1 and args[1] is not None else "."
        opts = _opts_arg(fn, args[2] if len(args) > 2 else None)
        if isinstance(pat, Regex):
            source = pat.pattern
        elif isinstance(pat, str):
            source = pat
        else:
            raise SpellError(f"{fn}: pattern must be a string or a regex, got {_type_name(pat)}")
        if _flag(opts, "fixed"):
            source = re.escape(source)
        try:
            # the regex package's: a catastrophic pattern ends at the evaluation's time limit
            rx = compile_regex(source, re.IGNORECASE if _flag(opts, "ignore-case") else 0)
        except re.error as e:
            raise SpellError(f"{fn}: invalid regex {_quoted(source)}: {e}") from None
        limit = opts.get(K("max"), MAX_GREP_MATCHES)
        limit = _int_arg(fn, ":max", limit)
        matches: list[Map] = []
        truncated = False

        def search(fd: int, shown: str) -> bool:
            nonlocal truncated
            try:
                data = _read_fd(fd, shown)
            except _Fail:
                return True
            if b"\x00" in data[:8192]:
                return True
            for i, line in enumerate(_split_lines(data.decode("utf-8", "replace")), 1):
                if limited(rx.search, line):
                    if len(matches) >= limit:
                        truncated = True
                        return False
                    text = line if len(line) <= GREP_LINE_CHARS else line[:GREP_LINE_CHARS] + "…"
                    matches.append(smap(K("file"), shown, K("line"), i, K("text"), text))
            return True

        with ws.parent(fn, path) as (dfd, name, parts):
            info = ws.lstat(fn, path, dfd, name, parts)
            base = "/".join(parts)
            if st.S_ISDIR(info.st_mode):
                top = ws.open_dir(fn, path, parts)
                entries = ws.walk(top)
                try:
                    for rel, einfo, efd in entries:
                        if not st.S_ISREG(einfo.st_mode):
                            continue
                        try:
                            f = os.open(rel[-1], _O_READ, dir_fd=efd)
                        except OSError:
                            continue
                        try:
                            if not st.S_ISREG(os.fstat(f).st_mode):
                                continue
                            shown = "/".join((base, *rel)) if base else "/".join(rel)
                            if not search(f, shown):
                                break
                        finally:
                            os.close(f)
                finally:
                    entries.close()  # closes the descriptors of the directories still open
                    os.close(top)
            else:
                f = ws._open_final(fn, path, dfd, name, parts, _O_READ)
                try:
                    search(f, base)
                finally:
                    os.close(f)
        return smap(_OK, Vector(matches), K("truncated"), truncated)

    @_op("io/glob", _second)
    def glob(*args: Any) -> Map:
        """(io/glob pattern [dir]) -> {:ok ["a/b.txt" ...] :truncated bool}: sorted paths
        (relative to the workspace) of files and directories matching ``pattern`` under ``dir``
        (default the workspace). ``*``, ``?`` and ``[...]`` match within one path segment, ``**``
        any number of segments; names starting with "." match only a pattern segment that does.
        Symlinks are never listed."""
        fn = "io/glob"
        _arity(fn, args, 1, 2)
        pattern = _path_arg(fn, args[0], "pattern")
        path = _path_arg(fn, args[1]) if len(args) > 1 and args[1] is not None else "."
        if pattern.startswith("/") or ".." in pattern.split("/"):
            raise _refuse(fn, f"glob pattern escapes the workspace: {pattern}")
        segs = [s for s in pattern.split("/") if s not in ("", ".")]
        parts = ws.parts(fn, path)
        base = "/".join(parts)
        found: list[str] = []
        truncated = False
        top = ws.open_dir(fn, path, parts)
        entries = ws.walk(top)
        try:
            for rel, _info, _fd in entries:
                if _glob_match(segs, rel):
                    if len(found) >= MAX_GLOB_RESULTS:
                        truncated = True
                        break
                    found.append("/".join((base, *rel)) if base else "/".join(rel))
        finally:
            entries.close()
            os.close(top)
        return smap(_OK, Vector(sorted(found)), K("truncated"), truncated)

    # -- processes ---------------------------------------------------------------------------
    def _timeout_of(fn: str, opts: Map) -> float:
        t = opts.get(K("timeout"))
        if t is None:
            return shell_timeout
        if not is_number(t) or t < 0:
            raise SpellError(f"{fn}: :timeout must be a number of seconds >= 0")
        return shell_timeout if t == 0 else min(float(t), shell_timeout)

    def _shell_gate(fn: str) -> None:
        if not allow_shell:
            raise _refuse(fn, "shell execution is disabled in this run (a run profile can enable it)")

    def sh(*args: Any) -> Map:
        """(io/sh command & parts [opts]) -> {:ok exit==0 :exit n :out s :err s :truncated bool}.
        Parts are joined with ``str``; opts ``{:timeout secs}`` can shorten the profile's limit."""
        _arity("io/sh", args, 1, None)
        _shell_gate("io/sh")
        opts = Map()
        if len(args) > 1 and isinstance(args[-1], Map):
            opts, args = args[-1], args[:-1]
        command = "".join(_text_of(a) for a in args)
        return _run_process(["/bin/sh", "-c", command], ws.root, _timeout_of("io/sh", opts), output_limit)

    def exec_(*args: Any) -> Map:
        """(io/exec [cmd arg ...] [opts]) -> like io/sh, without a shell."""
        _arity("io/exec", args, 1, 2)
        _shell_gate("io/exec")
        argv = args[0]
        if not isinstance(argv, (Vector, List)) or not argv or not all(isinstance(a, str) for a in argv):
            raise SpellError("io/exec: expects a non-empty vector of strings")
        opts = _opts_arg("io/exec", args[1] if len(args) > 1 else None)
        return _run_process(list(argv), ws.root, _timeout_of("io/exec", opts), output_limit)

    def env(*args: Any) -> Any:
        """(io/env) -> the environment shell commands of this run see (never the host's);
        (io/env name) -> its value or nil."""
        _arity("io/env", args, 0, 1)
        e = _sandbox_env(ws.root)
        if not args:
            return Map(e)
        key = args[0]
        name = key.full if isinstance(key, (Keyword, Symbol)) else str(key)
        return e.get(name)

    return {
        "slurp": slurp, "spit": spit, "read-file": read_file, "read-lines": read_lines,
        "write-file": write_file, "str-replace": str_replace, "replace-lines": replace_lines,
        "exists?": exists, "directory?": directory, "ls": ls, "mkdir": mkdir, "mkdirs": mkdirs,
        "cwd": cwd, "delete": delete, "copy": copy, "move": move, "stat": stat,
        "temp-file": temp_file, "grep": grep, "glob": glob, "sh": sh, "exec": exec_, "env": env,
    }


def _glob_match(segs: list[str], names: tuple[str, ...]) -> bool:
    """Match path segments against glob segments (``**`` = zero or more segments)."""
    if not segs:
        return not names
    head = segs[0]
    if head == "**":
        if _glob_match(segs[1:], names):
            return True
        return bool(names) and not names[0].startswith(".") and _glob_match(segs, names[1:])
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatchcase(name, head) and _glob_match(segs[1:], names[1:])


# --- the declaration (namespaces.py) ----------------------------------------------------------

def _io_for_run(setup: Any) -> dict[str, Callable[..., Any]]:
    cfg = setup.config
    return make_io_namespace(cfg.workspace, allow_shell=cfg.allow_shell, shell_timeout=cfg.shell_timeout)


def _io_sample() -> dict[str, Callable[..., Any]]:
    """The functions over a throwaway directory: their docstrings are the namespace's docs."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        return make_io_namespace(d)


def _declare() -> None:
    from ..namespaces import Fn, Namespace, declare
    declare(Namespace(
        "io", "Files and directories of the run's workspace (paths are relative to it and cannot "
              "leave it), and shell commands when the run allows them.",
        [Fn("slurp", (1, 1)), Fn("spit", (2, 3)), Fn("read-file", (1, 3)), Fn("read-lines", (1, 3)),
         Fn("write-file", (2, 2)), Fn("str-replace", (3, 4)), Fn("replace-lines", (2, 4)),
         Fn("exists?", (1, 1)), Fn("directory?", (1, 1)), Fn("ls", (0, 1)), Fn("mkdir", (1, 1)),
         Fn("mkdirs", (1, 1)), Fn("cwd", (0, 0)), Fn("delete", (1, 2)), Fn("copy", (2, 2)),
         Fn("move", (2, 2)), Fn("stat", (1, 1)), Fn("temp-file", (0, 2)), Fn("grep", (1, 3)),
         Fn("glob", (1, 2)),
         # a shell command can reach outside the workspace: running it again in a fork or
         # replay (a cache miss) waits for a person
         Fn("sh", (1, None), approve_replay_miss=True, setting="allow_shell"),
         Fn("exec", (1, 2), approve_replay_miss=True, setting="allow_shell"),
         Fn("env", (0, 1))],
        setting="workspace", unavailable="io/ is not available in this run (no workspace was given)",
        make=_io_for_run, sample=_io_sample))


_declare()
