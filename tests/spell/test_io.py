"""The io/ effect namespace: every function's ordinary behaviour, and confinement to the
workspace (``..``, absolute paths, symlinks in every position, swaps between check and use),
shell off by default, and the shell's time and output limits."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from spellide.spell.data import Regex, Vector, kw, smap, vec
from spellide.spell.effects import io as io_mod
from spellide.spell.effects.io import make_io_namespace
from spellide.spell.errors import SpellError

OK, ERROR = kw("ok"), kw("error")
SECRET = "top secret\n"


@pytest.fixture
def env(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    return ws, outside, make_io_namespace(ws)


def refused(call, *args) -> str:
    with pytest.raises(SpellError) as info:
        call(*args)
    assert info.value.kind == "io-refused", info.value.message
    return info.value.message


def outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET


# --- happy paths ----------------------------------------------------------------------------

def test_spit_and_slurp(env):
    ws, _, io = env
    assert io["spit"]("a/b/c.txt", "hello") == smap(OK, "a/b/c.txt")
    assert (ws / "a/b/c.txt").read_text() == "hello"
    assert io["spit"]("a/b/c.txt", " world", smap(kw("append"), True)) == smap(OK, "a/b/c.txt")
    assert io["slurp"]("a/b/c.txt") == smap(OK, "hello world")
    assert io["spit"]("n.txt", 42) == smap(OK, "n.txt")
    assert io["slurp"]("n.txt") == smap(OK, "42")
    assert io["spit"]("k.txt", kw("a")) == smap(OK, "k.txt")
    assert (ws / "k.txt").read_text() == ":a"


def test_slurp_missing_and_directory_are_error_maps(env):
    _, _, io = env
    assert io["slurp"]("nope.txt") == smap(ERROR, "File not found: nope.txt")
    io["mkdir"]("d")
    assert io["slurp"]("d") == smap(ERROR, "Is a directory: d")
    assert io["slurp"]("nope/deeper.txt") == smap(ERROR, "File not found: nope/deeper.txt")


def test_slurp_invalid_utf8_is_replaced(env):
    ws, _, io = env
    (ws / "bin").write_bytes(b"ok\xffend")
    assert io["slurp"]("bin") == smap(OK, "ok\ufffdend")


def test_write_file(env):
    ws, _, io = env
    assert io["write-file"]("x/y.txt", "one\ntwo\n") == smap(OK, "x/y.txt")
    assert (ws / "x/y.txt").read_text() == "one\ntwo\n"
    assert io["write-file"]("x/y.txt", "short") == smap(OK, "x/y.txt")
    assert (ws / "x/y.txt").read_text() == "short"


def test_read_file_numbers_lines(env):
    ws, _, io = env
    (ws / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 12)))
    text = io["read-file"]("f.txt")
    assert text.splitlines()[0] == " 1: line 1"
    assert text.splitlines()[-1] == "11: line 11"
    assert io["read-file"]("f.txt", 2, 4) == "2: line 2\n3: line 3"
    assert io["read-file"]("f.txt", 9, 100) == " 9: line 9\n10: line 10\n11: line 11"
    assert io["read-file"]("f.txt", 10) == "10: line 10\n11: line 11"
    (ws / "empty.txt").write_text("")
    assert io["read-file"]("empty.txt") == ""
    assert io["read-file"]("missing") == smap(ERROR, "File not found: missing")


def test_read_lines_has_first_line(env):
    ws, _, io = env
    (ws / "f.txt").write_text("a\nb\r\nc\n\n")
    lines = io["read-lines"]("f.txt")
    assert isinstance(lines, Vector)
    assert list(lines) == ["a", "b", "c", ""]
    assert lines.first_line == 1
    part = io["read-lines"]("f.txt", 2, 4)
    assert list(part) == ["b", "c"] and part.first_line == 2
    (ws / "e.txt").write_text("")
    assert list(io["read-lines"]("e.txt")) == [] and io["read-lines"]("e.txt").first_line == 1


def test_str_replace(env):
    ws, _, io = env
    (ws / "c.txt").write_text("host=localhost\nport=1\nhost2=localhost\n")
    assert io["str-replace"]("c.txt", "port=1", "port=2") == smap(OK, "c.txt")
    assert "port=2" in (ws / "c.txt").read_text()
    r = io["str-replace"]("c.txt", "localhost", "example.org")
    assert r == smap(ERROR, 'String appears 2 times (must be unique): "localhost"')
    assert io["str-replace"]("c.txt", "localhost", "example.org", smap(kw("all"), True)) == smap(OK, "c.txt")
    assert (ws / "c.txt").read_text() == "host=example.org\nport=2\nhost2=example.org\n"
    assert io["str-replace"]("c.txt", "absent", "x") == smap(ERROR, 'String not found in file: "absent"')
    assert io["str-replace"]("c.txt", "", "x") == smap(ERROR, "old-str cannot be empty")
    assert io["str-replace"]("none.txt", "a", "b") == smap(ERROR, "File not found: none.txt")
    (ws / "b.bin").write_bytes(b"a\xff")
    assert io["str-replace"]("b.bin", "a", "b")[ERROR].startswith("Not UTF-8 text")
    assert (ws / "b.bin").read_bytes() == b"a\xff"


def test_replace_lines(env):
    ws, _, io = env
    (ws / "m.py").write_text("1\n2\n3\n4\n5\n")
    assert io["replace-lines"]("m.py", 2, 4, "two\nthree") == smap(OK, "m.py")
    assert (ws / "m.py").read_text() == "1\ntwo\nthree\n4\n5\n"
    assert io["replace-lines"]("m.py", 1, 1, "zero") == smap(OK, "m.py")  # insert
    assert (ws / "m.py").read_text() == "zero\n1\ntwo\nthree\n4\n5\n"
    assert io["replace-lines"]("m.py", 2, 3, "") == smap(OK, "m.py")  # delete
    assert (ws / "m.py").read_text() == "zero\ntwo\nthree\n4\n5\n"
    edits = vec(vec(1, 2, "ZERO"), vec(4, 6, "FOUR-FIVE"))
    assert io["replace-lines"]("m.py", edits) == smap(OK, "m.py")  # original numbering, no drift
    assert (ws / "m.py").read_text() == "ZERO\ntwo\nthree\nFOUR-FIVE\n"
    assert io["replace-lines"]("m.py", vec(vec(1, 3, "a"), vec(2, 4, "b"))) == \
        smap(ERROR, "Edits have overlapping line ranges")
    assert io["replace-lines"]("m.py", 9, 9, "x") == smap(ERROR, "Start line 9 out of range (file has 4 lines)")
    assert io["replace-lines"]("m.py", 2, 1, "x") == \
        smap(ERROR, "End line 1 out of range (start=2, file has 4 lines)")
    assert io["replace-lines"]("m.py", 5, 5, "tail") == smap(OK, "m.py")  # append at n+1
    assert (ws / "m.py").read_text() == "ZERO\ntwo\nthree\nFOUR-FIVE\ntail\n"
    with pytest.raises(SpellError):
        io["replace-lines"]("m.py", 1, 2)


def test_replace_lines_keeps_crlf(env):
    ws, _, io = env
    (ws / "w.txt").write_bytes(b"a\r\nb\r\n")
    io["replace-lines"]("w.txt", 2, 3, "B")
    assert (ws / "w.txt").read_bytes() == b"a\r\nB\r\n"


def test_exists_directory_ls_mkdir(env):
    ws, _, io = env
    assert io["exists?"]("d") is False
    assert io["mkdir"]("d") == smap(OK, "d")
    assert io["mkdir"]("d") == smap(ERROR, "Already exists: d")
    assert io["mkdir"]("x/y") == smap(ERROR, "File not found: x/y")
    assert io["mkdirs"]("x/y/z") == smap(OK, "x/y/z")
    assert io["mkdirs"]("x/y/z") == smap(OK, "x/y/z")
    assert io["exists?"]("d") is True and io["directory?"]("d") is True
    io["spit"]("d/b.txt", "")
    io["spit"]("d/a.txt", "")
    assert io["directory?"]("d/a.txt") is False and io["exists?"]("d/a.txt") is True
    assert io["exists?"]("d/a.txt/below") is False
    assert io["ls"]("d") == vec("a.txt", "b.txt")
    assert io["ls"]() == vec("d", "x")
    assert io["ls"](".") == vec("d", "x")
    assert io["ls"]("d/a.txt") == smap(ERROR, "Not a directory: d/a.txt")
    assert io["ls"]("nope") == smap(ERROR, "File not found: nope")
    assert io["mkdirs"]("d/a.txt/sub") == smap(ERROR, "Not a directory: d/a.txt/sub")


def test_cwd_is_workspace(env):
    ws, _, io = env
    assert io["cwd"]() == os.path.realpath(ws)
    # the absolute path it returns is usable
    io["spit"]("f", "x")
    assert io["slurp"](io["cwd"]() + "/f") == smap(OK, "x")


def test_delete(env):
    ws, _, io = env
    io["spit"]("d/f.txt", "x")
    assert io["delete"]("d") == smap(ERROR, "Directory not empty: d")
    assert io["delete"]("d/f.txt") == smap(OK, "d/f.txt")
    assert io["delete"]("d") == smap(OK, "d")
    assert not (ws / "d").exists()
    assert io["delete"]("d") == smap(ERROR, "File not found: d")
    io["spit"]("t/u/v.txt", "x")
    assert io["delete"]("t", smap(kw("recursive"), True)) == smap(OK, "t")
    assert not (ws / "t").exists()
    assert io["delete"](".")[ERROR].startswith("Cannot delete the workspace root")
    assert ws.is_dir()


def test_copy_and_move(env):
    ws, _, io = env
    io["spit"]("a.txt", "A")
    assert io["copy"]("a.txt", "b.txt") == smap(OK, "b.txt")
    assert (ws / "b.txt").read_text() == "A" and (ws / "a.txt").exists()
    io["spit"]("c.txt", "C")
    assert io["copy"]("c.txt", "b.txt") == smap(OK, "b.txt")  # replaces
    assert (ws / "b.txt").read_text() == "C"
    assert io["copy"]("none", "z") == smap(ERROR, "Source not found: none")
    assert io["copy"]("a.txt", "nodir/z") == smap(ERROR, "File not found: nodir/z")
    assert io["move"]("a.txt", "moved.txt") == smap(OK, "moved.txt")
    assert not (ws / "a.txt").exists() and (ws / "moved.txt").read_text() == "A"
    assert io["move"]("none", "z") == smap(ERROR, "Source not found: none")
    io["mkdirs"]("dir1/sub")
    assert io["move"]("dir1", "dir2") == smap(OK, "dir2")
    assert (ws / "dir2/sub").is_dir()


def test_stat(env):
    ws, _, io = env
    io["spit"]("f.txt", "12345")
    s = io["stat"]("f.txt")
    assert s[kw("size")] == 5
    assert s[kw("directory")] is False and s[kw("file")] is True
    assert s[kw("readable")] is True and s[kw("writable")] is True
    assert abs(s[kw("modified")] - time.time() * 1000) < 60_000
    assert io["stat"](".")[kw("directory")] is True
    assert io["stat"]("none") == smap(ERROR, "File not found: none")


def test_temp_file_is_deterministic(env):
    ws, _, io = env
    assert io["temp-file"]() == smap(OK, "tmp/spell1.tmp")
    assert io["temp-file"]() == smap(OK, "tmp/spell2.tmp")
    assert io["temp-file"]("x-", ".txt") == smap(OK, "tmp/x-1.txt")
    assert (ws / "tmp/spell1.tmp").read_text() == ""


def test_grep(env):
    ws, _, io = env
    io["spit"]("src/a.py", "def f():\n    return 1\n")
    io["spit"]("src/b.py", "x = 1\nDEF = 2\n")
    io["spit"]("notes.md", "define things\n")
    (ws / "blob.bin").write_bytes(b"def\x00\x01")
    io["mkdirs"](".git")
    io["spit"](".git/config", "def in git\n")
    r = io["grep"]("def")
    files = [(m[kw("file")], m[kw("line")], m[kw("text")]) for m in r[OK]]
    assert files == [("notes.md", 1, "define things"), ("src/a.py", 1, "def f():")]
    assert r[kw("truncated")] is False
    r = io["grep"]("def", "src", smap(kw("ignore-case"), True))
    assert [m[kw("file")] for m in r[OK]] == ["src/a.py", "src/b.py"]
    r = io["grep"](Regex(r"return \d"), "src/a.py")
    assert [(m[kw("file")], m[kw("line")]) for m in r[OK]] == [("src/a.py", 2)]
    assert io["grep"]("(", ".", smap(kw("fixed"), True))[OK][0][kw("file")] == "src/a.py"
    r = io["grep"]("e", ".", smap(kw("max"), 2))
    assert len(r[OK]) == 2 and r[kw("truncated")] is True
    assert io["grep"]("x", "none") == smap(ERROR, "File not found: none")
    with pytest.raises(SpellError, match="invalid regex"):
        io["grep"]("(")


def test_glob(env):
    ws, _, io = env
    for p in ("a.txt", "b.py", "src/c.py", "src/deep/d.py", ".hidden/e.py", "src/.f.py"):
        io["spit"](p, "")
    assert io["glob"]("*.py") == smap(OK, vec("b.py"), kw("truncated"), False)
    assert io["glob"]("**/*.py")[OK] == vec("b.py", "src/c.py", "src/deep/d.py")
    assert io["glob"]("src/*")[OK] == vec("src/c.py", "src/deep")
    assert io["glob"]("*.py", "src")[OK] == vec("src/c.py")
    assert io["glob"]("**/.*.py")[OK] == vec("src/.f.py")
    assert io["glob"]("?.txt")[OK] == vec("a.txt")


# --- confinement ------------------------------------------------------------------------------

# one call per path-taking function; ``p`` is the path under test
PATH_CALLS = {
    "slurp": lambda io, p: io["slurp"](p),
    "spit": lambda io, p: io["spit"](p, "pwned"),
    "spit-append": lambda io, p: io["spit"](p, "pwned", smap(kw("append"), True)),
    "read-file": lambda io, p: io["read-file"](p),
    "read-lines": lambda io, p: io["read-lines"](p),
    "write-file": lambda io, p: io["write-file"](p, "pwned"),
    "str-replace": lambda io, p: io["str-replace"](p, "top", "pwned"),
    "replace-lines": lambda io, p: io["replace-lines"](p, 1, 2, "pwned"),
    "exists?": lambda io, p: io["exists?"](p),
    "directory?": lambda io, p: io["directory?"](p),
    "ls": lambda io, p: io["ls"](p),
    "mkdir": lambda io, p: io["mkdir"](p),
    "mkdir-below": lambda io, p: io["mkdir"](p + "/new"),
    "mkdirs": lambda io, p: io["mkdirs"](p),
    "mkdirs-below": lambda io, p: io["mkdirs"](p + "/new/x"),
    "delete": lambda io, p: io["delete"](p),
    "delete-recursive": lambda io, p: io["delete"](p, smap(kw("recursive"), True)),
    "copy-src": lambda io, p: io["copy"](p, "copied.txt"),
    "copy-dest": lambda io, p: io["copy"]("mine.txt", p),
    "move-src": lambda io, p: io["move"](p, "moved.txt"),
    "move-dest": lambda io, p: io["move"]("mine.txt", p),
    "stat": lambda io, p: io["stat"](p),
    "grep": lambda io, p: io["grep"]("secret", p),
    "glob": lambda io, p: io["glob"]("*", p),
}


def _setup_mine(ws: Path) -> None:
    (ws / "mine.txt").write_text("mine")


@pytest.mark.parametrize("name", sorted(PATH_CALLS))
@pytest.mark.parametrize("path", ["../outside/secret.txt", "a/../../outside/secret.txt", "./..",
                                  "..", "../outside"])
def test_dotdot_escapes_are_refused(env, name, path):
    ws, outside, io = env
    _setup_mine(ws)
    msg = refused(PATH_CALLS[name], io, path)
    assert "path escapes the workspace" in msg and path in msg
    outside_untouched(outside)
    assert (ws / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("name", sorted(PATH_CALLS))
def test_absolute_paths_outside_are_refused(env, name):
    ws, outside, io = env
    _setup_mine(ws)
    for path in (str(outside / "secret.txt"), str(outside), "/etc/passwd", "/", str(ws) + "/../outside/secret.txt"):
        msg = refused(PATH_CALLS[name], io, path)
        assert "path escapes the workspace" in msg and path in msg
    outside_untouched(outside)


def test_absolute_paths_inside_are_accepted(env, tmp_path):
    ws, _, io = env
    assert io["spit"](str(ws / "in.txt"), "x") == smap(OK, str(ws / "in.txt"))
    assert io["slurp"](str(ws) + "/./sub/../in.txt") == smap(OK, "x")
    assert io["ls"](str(ws)) == vec("in.txt")


def test_workspace_given_through_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    io = make_io_namespace(alias)
    assert io["spit"](str(alias / "f"), "x") == smap(OK, str(alias / "f"))
    assert io["slurp"](str(real / "f")) == smap(OK, "x")
    assert io["cwd"]() == str(real)


@pytest.fixture
def links(env):
    """Symlinks in every position: to an outside file, an outside directory, an inside file and
    an inside directory, a dangling one to a not-yet-existing outside file, and a nested one."""
    ws, outside, io = env
    _setup_mine(ws)
    (ws / "to_secret").symlink_to(outside / "secret.txt")
    (ws / "to_outside").symlink_to(outside)
    (ws / "real_dir").mkdir()
    (ws / "real_dir/inner.txt").write_text("inner")
    (ws / "to_inner_file").symlink_to(ws / "real_dir/inner.txt")
    (ws / "to_inner_dir").symlink_to("real_dir")
    (ws / "dangling").symlink_to(outside / "created.txt")
    (ws / "a/b").mkdir(parents=True)
    (ws / "a/b/deep_link").symlink_to(outside)
    (ws / "up").symlink_to("..")
    return ws, outside, io


LINK_PATHS = {
    "final-outside-file": "to_secret",
    "final-outside-dir": "to_outside",
    "parent-outside": "to_outside/secret.txt",
    "parent-outside-new": "to_outside/new.txt",
    "final-inside-file": "to_inner_file",
    "final-inside-dir": "to_inner_dir",
    "parent-inside": "to_inner_dir/inner.txt",
    "dangling": "dangling",
    "deep-parent": "a/b/deep_link/secret.txt",
    "deep-final": "a/b/deep_link",
    "dotdot-link": "up/outside/secret.txt",
}


@pytest.mark.parametrize("name", sorted(PATH_CALLS))
@pytest.mark.parametrize("where", sorted(LINK_PATHS))
def test_symlinks_are_refused_everywhere(links, name, where):
    ws, outside, io = links
    path = LINK_PATHS[where]
    msg = refused(PATH_CALLS[name], io, path)
    assert path in msg
    assert "symbolic link" in msg
    outside_untouched(outside)
    assert (ws / "real_dir/inner.txt").read_text() == "inner"
    assert (ws / "mine.txt").read_text() == "mine"
    assert os.path.islink(ws / "to_inner_dir") and os.path.islink(ws / "dangling")


def test_symlink_refusal_message_names_the_link(links):
    _, _, io = links
    msg = refused(io["slurp"], "to_inner_dir/inner.txt")
    assert msg == "io/slurp: path goes through a symbolic link: to_inner_dir/inner.txt (at to_inner_dir)"
    msg = refused(io["slurp"], "to_outside/secret.txt")
    assert msg == "io/slurp: path escapes the workspace through a symbolic link: to_outside/secret.txt"


def test_listing_and_searching_do_not_follow_symlinks(links):
    ws, outside, io = links
    # names of links are listed by ls (a name reveals nothing) ...
    assert "to_secret" in io["ls"]()
    # ... but grep and glob never read or list through them
    assert io["grep"]("secret")[OK] == vec()
    assert io["grep"]("inner")[OK] == vec(smap(kw("file"), "real_dir/inner.txt", kw("line"), 1,
                                               kw("text"), "inner"))
    found = io["glob"]("**")[OK]
    assert "to_secret" not in found and "to_inner_dir" not in found
    assert not any("deep_link" in p for p in found)
    assert "real_dir/inner.txt" in found


def test_delete_recursive_does_not_follow_links_inside(links):
    ws, outside, io = links
    (ws / "tree").mkdir()
    (ws / "tree/link").symlink_to(outside)
    assert io["delete"]("tree", smap(kw("recursive"), True)) == smap(OK, "tree")
    outside_untouched(outside)


def test_directory_swapped_for_symlink_after_check_is_refused(env, monkeypatch):
    """A check-then-use race: the path is checked while ``d`` is a directory, then ``d`` is
    replaced by a symlink to the outside before the operation runs. The descriptor walk
    must catch it at use."""
    ws, outside, io = env
    (ws / "d").mkdir()
    (ws / "d/secret.txt").write_text("mine")
    original = io_mod.Workspace.parts

    def parts_then_swap(self, fn, path):
        result = original(self, fn, path)
        if (ws / "d").is_dir() and not (ws / "d").is_symlink():
            (ws / "d/secret.txt").unlink()
            (ws / "d").rmdir()
            (ws / "d").symlink_to(outside)
        return result

    monkeypatch.setattr(io_mod.Workspace, "parts", parts_then_swap)
    msg = refused(io["spit"], "d/secret.txt", "pwned")
    assert "symbolic link" in msg
    outside_untouched(outside)


def test_file_swapped_for_symlink_after_check_is_refused(env, monkeypatch):
    ws, outside, io = env
    (ws / "f.txt").write_text("mine")
    real_stat = io_mod.Workspace.lstat

    def stat_then_swap(self, fn, path, dfd, name, parts):
        info = real_stat(self, fn, path, dfd, name, parts)
        if name == "f.txt" and not (ws / "f.txt").is_symlink():
            (ws / "f.txt").unlink()
            (ws / "f.txt").symlink_to(outside / "secret.txt")
        return info

    monkeypatch.setattr(io_mod.Workspace, "lstat", stat_then_swap)
    assert "symbolic link" in refused(io["write-file"], "f.txt", "pwned")
    outside_untouched(outside)


def test_spit_does_not_create_parents_through_a_symlink(links):
    ws, outside, io = links
    refused(io["spit"], "to_outside/newdir/x.txt", "pwned")
    refused(io["mkdirs"], "to_inner_dir/newdir")
    assert not (ws / "real_dir/newdir").exists()
    outside_untouched(outside)


def test_fifo_does_not_hang(env):
    ws, _, io = env
    os.mkfifo(ws / "pipe")
    assert io["slurp"]("pipe") == smap(ERROR, "Not a regular file: pipe")
    r = io["spit"]("pipe", "x")
    assert ERROR in r


def test_nul_in_path_is_an_error(env):
    _, _, io = env
    assert io["slurp"]("a\x00b")[ERROR].startswith("Invalid path")


def test_glob_pattern_cannot_escape(env):
    _, _, io = env
    assert "escapes" in refused(io["glob"], "../*")
    assert "escapes" in refused(io["glob"], "/etc/*")


def test_argument_errors_raise_eval_errors(env):
    _, _, io = env
    for call in (lambda: io["slurp"](), lambda: io["slurp"](1), lambda: io["spit"]("f"),
                 lambda: io["read-file"]("f", "1"), lambda: io["spit"]("f", "x", "append"),
                 lambda: io["cwd"]("x"), lambda: io["grep"](3)):
        with pytest.raises(SpellError) as info:
            call()
        assert info.value.kind == "eval"


# --- shell ------------------------------------------------------------------------------------

def test_shell_is_off_by_default(env):
    ws, _, io = env
    assert "disabled" in refused(io["sh"], "touch made-by-shell")
    assert "disabled" in refused(io["exec"], vec("touch", "made-by-exec"))
    assert not (ws / "made-by-shell").exists() and not (ws / "made-by-exec").exists()


@pytest.fixture
def shell(tmp_path):
    ws = tmp_path / "ws"
    return ws, make_io_namespace(ws, allow_shell=True, shell_timeout=5.0, output_limit=1000)


def test_sh_runs_in_the_workspace(shell):
    ws, io = shell
    r = io["sh"]("echo hi; pwd; echo oops >&2")
    assert r[OK] is True and r[kw("exit")] == 0
    assert r[kw("out")] == f"hi\n{os.path.realpath(ws)}"
    assert r[kw("err")] == "oops" and r[kw("truncated")] is False
    r = io["sh"]("exit ", 3)
    assert r[OK] is False and r[kw("exit")] == 3


def test_exec_runs_without_a_shell(shell):
    _, io = shell
    r = io["exec"](vec("echo", "$HOME", "a b"))
    assert r[kw("out")] == "$HOME a b" and r[OK] is True
    r = io["exec"](vec("/nonexistent/cmd"))
    assert r[OK] is False and "Cannot start" in r[kw("err")]
    with pytest.raises(SpellError):
        io["exec"]("echo hi")


def test_sh_does_not_see_the_host_environment(shell, monkeypatch):
    ws, io = shell
    monkeypatch.setenv("SPELLIDE_TEST_SECRET", "hunter2")
    r = io["sh"]("env")
    assert "hunter2" not in r[kw("out")]
    assert io["env"]("SPELLIDE_TEST_SECRET") is None
    assert io["env"]("HOME") == os.path.realpath(ws)
    assert "SPELLIDE_TEST_SECRET" not in io["env"]()
    assert set(io["env"]()) == {"PATH", "HOME", "PWD", "LANG", "LC_ALL"}


def test_sh_timeout(tmp_path):
    io = make_io_namespace(tmp_path / "ws", allow_shell=True, shell_timeout=0.5)
    t0 = time.monotonic()
    r = io["sh"]("sleep 20")
    assert time.monotonic() - t0 < 10
    assert r[OK] is False and r[kw("exit")] == -1 and r[kw("timed-out")] is True
    assert "timed out after 0.5 seconds" in r[kw("err")]
    # a per-call timeout can shorten the limit but not lift it
    t0 = time.monotonic()
    r = io["sh"]("sleep 20", smap(kw("timeout"), 0))
    assert time.monotonic() - t0 < 10 and r[kw("timed-out")] is True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


def test_sh_background_child_holding_the_pipe_is_killed(tmp_path):
    io = make_io_namespace(tmp_path / "ws", allow_shell=True, shell_timeout=20.0)
    t0 = time.monotonic()
    r = io["sh"]("sleep 30 & echo started")
    assert time.monotonic() - t0 < 10  # a short grace, not the whole 20 s timeout
    assert r[kw("out")] == "started" and r[kw("exit")] == 0
    assert "Background processes" in r[kw("err")]


def test_sh_leaves_no_process_behind(tmp_path):
    io = make_io_namespace(tmp_path / "ws", allow_shell=True, shell_timeout=20.0)
    r = io["sh"]("sleep 30 >/dev/null 2>&1 & echo $!")
    pid = int(r[kw("out")])
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert r[OK] is True and r[kw("err")] == ""


def test_sh_output_is_truncated(shell):
    _, io = shell
    r = io["sh"]("head -c 100000 /dev/zero | tr '\\0' x; echo done >&2")
    assert r[kw("truncated")] is True
    assert r[kw("out")] == "x" * 1000
    assert r[kw("err")] == "done"
    r = io["sh"]("printf 'é%.0s' $(seq 1 600)")  # 1200 bytes: the cut falls inside a character
    assert r[kw("truncated")] is True and r[kw("out")] == "é" * 500


def test_sh_per_call_timeout_shorter(tmp_path):
    io = make_io_namespace(tmp_path / "ws", allow_shell=True, shell_timeout=30.0)
    t0 = time.monotonic()
    r = io["sh"]("sleep 25", smap(kw("timeout"), 0.3))
    assert time.monotonic() - t0 < 10 and r[kw("timed-out")] is True
    with pytest.raises(SpellError):
        io["sh"]("true", smap(kw("timeout"), -1))


def test_through_a_real_run(tmp_path):
    """A refusal reaches the run as an io-refused error and is recorded as a blocked effect."""
    from spellide.spell.api import RunConfig
    from spellide.spell.machine import Run
    ws = tmp_path / "ws"
    ok = Run(RunConfig(init="(eval '(do (io/spit \"a.txt\" \"hi\") (io/slurp \"a.txt\")))",
                       workspace=str(ws))).execute()
    assert ok.error is None and ok.value_text == '{:ok "hi"}'
    bad = Run(RunConfig(init="(eval '(io/slurp \"../secret\"))", workspace=str(ws))).execute()
    assert bad.error_kind == "io-refused" and "../secret" in bad.error
    assert bad.effects[-1]["status"] == "blocked"
