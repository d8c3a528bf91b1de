"""Files the tool writes and the user's files it reads, bounded and never onto the workspace.

Writing
-------
* :func:`check_target` ``(path, workspace=None) -> Path`` -- refuse, with a one-line
  :class:`UserError` (CLI exit 2), a target that is the workspace in use, its ``-wal`` /
  ``-shm`` / ``-journal``, an existing file named like a database (``*.sqlite``,
  ``*.sqlite3``, ``*.db``), an SQLite side file of an existing file, or any other existing
  SQLite file (its 16-byte header); a directory or a device.  An ordinary file may be
  overwritten.  The workspace is never opened by this module (STYLE.md: closing *any*
  descriptor of a file drops this process's fcntl locks on it): it is compared by
  ``os.path.samefile``, and a file this process already holds open is read through the
  descriptor it already has (``os.pread``), never through a new one.
* :func:`atomic_write` ``(path, data)`` / :func:`atomic_file` ``(path)`` -- the checked
  target written as a temporary file in its folder, ``fsync``-ed and ``os.replace``-d into
  place; on any failure the temporary file is removed and the old file is left as it was.
* :func:`check_target_dir` -- the same refusal for a folder written into by another
  library (TensorBoard's event files).
* :func:`spreadsheet_row` -- CSV cells a spreadsheet will not run as a formula: a text
  cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
  apostrophe; numbers (and text that is a plain number, ``-0.12``) stay numbers.

Reading
-------
* :func:`read_input` ``(path, limit=...) -> bytes`` -- a regular file only (``os.stat``
  before ``open``, so a FIFO or ``/dev/zero`` is refused without opening it; the file is
  opened non-blocking and checked again through its descriptor), read up to ``limit``
  bytes (one line naming the limit past it).
* :func:`open_input` -- the same checks, for a reader that streams (a hash).
* :func:`load_json` ``(text, where)`` -- ``json.loads`` with a bound on nesting and on the
  digits of an integer: a hostile file costs one line, never a traceback.

Only the standard library and :mod:`re2llm_tui.errors`: no UI code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from pathlib import Path

from re2llm_tui.errors import DataError, UserError

SQLITE_HEADER = b"SQLite format 3\x00"
#: names SQLite files usually have: an existing file named so is never overwritten
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
#: SQLite's side files of a database ``X``: ``X-wal``, ``X-shm``, ``X-journal``
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

MIB = 1 << 20
#: the default bound of an input file the user gives (a hints file, recorded outputs)
DEFAULT_INPUT_LIMIT = 256 * MIB
#: the bound of a ``data import`` sessions/items file (interaction logs can be large)
IMPORT_INPUT_LIMIT = 1024 * MIB
#: JSON nesting deeper than this is refused (no input of the tool nests more than ~5)
MAX_JSON_DEPTH = 200
#: a JSON integer with more digits than this is refused (ids, counts: never that long)
MAX_JSON_DIGITS = 100


# --------------------------------------------------------------------------- targets

def _show(path) -> str:
    return str(path)


def _side_paths(db: Path) -> list[str]:
    return [str(db) + s for s in SIDE_SUFFIXES]


def _same(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _held_fd(st: os.stat_result) -> int | None:
    """A descriptor this process already holds on the file of ``st`` (None if none).

    Reading through it (``os.pread``) never opens and closes a new descriptor, so the
    fcntl locks of an SQLite connection of this process on that file stay held."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                fd = int(name)
                fst = os.fstat(fd)
            except (ValueError, OSError):
                continue
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                return fd
        return None
    return None


def _is_sqlite_file(path: str, st: os.stat_result) -> bool:
    """True when the regular file at ``path`` starts with SQLite's header."""
    if st.st_size < len(SQLITE_HEADER):
        return False
    fd = _held_fd(st)
    if fd is not None:                       # read through it: never a new descriptor
        try:
            return os.pread(fd, len(SQLITE_HEADER), 0) == SQLITE_HEADER
        except OSError:
            return False                     # write-only: not an SQLite connection's
    try:
        new = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                      | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return False
    try:
        fst = os.fstat(new)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            return True                      # swapped meanwhile: do not touch it
        return os.pread(new, len(SQLITE_HEADER), 0) == SQLITE_HEADER
    except OSError:
        return False
    finally:
        os.close(new)


def check_target(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
                 *, what: str = "") -> Path:
    """The path to write for ``path`` (symlinks followed), or a one-line
    :class:`UserError`: never the workspace, its side files or another SQLite file."""
    shown = f"{what} {_show(path)}".strip()
    real = os.path.realpath(os.fspath(path))
    keep = "refusing to overwrite it; choose another file name"
    if workspace is not None:
        ws = Path(os.path.realpath(os.fspath(workspace)))
        if real == str(ws) or _same(real, ws):
            raise UserError(f"{shown}: is the workspace in use; {keep}")
        for side in _side_paths(ws):
            if real == side or _same(real, side):
                raise UserError(f"{shown}: is a side file ({side[len(str(ws)):]}) of the "
                                f"workspace in use; {keep}")
    for suffix in SIDE_SUFFIXES:
        if real.endswith(suffix):
            base = real[:-len(suffix)]
            if os.path.lexists(base) or os.path.lexists(real):
                raise UserError(f"{shown}: is named like an SQLite side file ({suffix}) "
                                f"of {Path(base).name}; {keep}")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return Path(real)
    except OSError as exc:
        raise UserError(f"{shown}: cannot write ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{shown}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{shown}: is not a regular file (a device or a pipe); give a "
                        "file name (without it the output goes to stdout)")
    if real.lower().endswith(SQLITE_SUFFIXES):
        raise UserError(f"{shown}: an existing file named like an SQLite database; {keep}")
    if _is_sqlite_file(real, st):
        raise UserError(f"{shown}: is an SQLite database; {keep}")
    return Path(real)


def check_target_dir(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
                     *, what: str = "") -> Path:
    """A folder to write new files into (TensorBoard's event files): an existing folder,
    or a name :func:`check_target` would write (never the workspace, a side file or an
    SQLite file) that is not a file yet."""
    real = os.path.realpath(os.fspath(path))
    if os.path.isdir(real):
        return Path(real)
    check_target(path, workspace, what=what)
    if os.path.lexists(real):
        raise UserError(f"{what} {_show(path)}: is a file, not a folder".strip())
    return Path(real)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
                *, what: str = ""):
    """A binary file object whose content replaces ``path`` when the block ends without an
    error (temp file in the same folder, ``fsync``, ``os.replace``); on any error the temp
    file is removed and ``path`` is left as it was.  The target is checked first
    (:func:`check_target`); an ``OSError`` becomes a one-line :class:`UserError`."""
    target = check_target(path, workspace, what=what)
    shown = f"{what} {_show(path)}".strip()
    folder = str(target.parent)
    tmp = os.path.join(folder, f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o666)
    except OSError as exc:
        raise UserError(f"{shown}: cannot write ({exc.strerror or exc})") from None
    done = False
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):   # an overwritten file keeps its mode
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
        done = True
        _fsync_dir(folder)
    except OSError as exc:
        raise UserError(f"{shown}: cannot write ({exc.strerror or exc})") from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: str | bytes,
                 workspace: str | os.PathLike | None = None, *, what: str = "",
                 encoding: str = "utf-8") -> Path:
    """Write ``data`` (text as ``encoding``) to ``path`` through :func:`atomic_file`;
    returns the path written (symlinks followed)."""
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_file(path, workspace, what=what) as f:
        f.write(raw)
    return Path(os.path.realpath(os.fspath(path)))


def db_file(db) -> str | None:
    """The main file of an open sqlite3 / sqlite-utils connection (None: in memory)."""
    conn = getattr(db, "conn", db)
    try:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return file or None
    except Exception:  # noqa: BLE001 - a closed connection: nothing to compare with
        return None
    return None


# --------------------------------------------------------------------------- CSV cells

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_cell(value):
    """``value`` as a CSV cell a spreadsheet shows as text, never runs as a formula: a
    string starting with ``= + - @``, a tab or a carriage return gets a leading
    apostrophe, unless it is a plain number (``-0.12``).  Non-strings are returned as is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def spreadsheet_row(row) -> list:
    return [spreadsheet_cell(c) for c in row]


# --------------------------------------------------------------------------- inputs

def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / MIB:.0f} MiB" if n >= MIB else f"{n} bytes"


def _limit_error(path, limit: int, what: str) -> DataError:
    return DataError(f"{path}: larger than the {_size(limit)} limit for {what}")


def open_input(path: str | os.PathLike, *, limit: int | None = DEFAULT_INPUT_LIMIT,
               what: str = "an input file"):
    """A binary file object of the regular file ``path``, or a one-line :class:`DataError`.

    ``os.stat`` comes first, so a FIFO, a device or a socket is refused without being
    opened (``open`` of a FIFO waits for a writer, deaf to SIGTERM); the file is then
    opened non-blocking and checked again through its descriptor."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except NotADirectoryError:
        raise DataError(f"{path}: file not found (a part of the path is not a folder)") \
            from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError:                  # a NUL in the name
        raise DataError(f"{path}: not a valid file name") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: is {_kind(st.st_mode)}, not a regular file; give a file")
    if limit is not None and st.st_size > limit:
        raise _limit_error(path, limit, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise DataError(f"{path}: is {_kind(fst.st_mode)}, not a regular file; give a "
                            "file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | os.PathLike, *, allow_empty: bool = False,
               limit: int | None = DEFAULT_INPUT_LIMIT, what: str = "an input file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), or a one-line
    :class:`DataError` naming it (and the limit, past it)."""
    with open_input(path, limit=limit, what=what) as f:
        try:
            raw = f.read() if limit is None else f.read(limit + 1)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if limit is not None and len(raw) > limit:     # it grew since stat (or /proc-like)
        raise _limit_error(path, limit, what)
    if not allow_empty and not raw.strip():
        raise DataError(f"{path}: file is empty")
    return raw


def _bounded_int(digits: str) -> int:
    n = len(digits.lstrip("-"))
    if n > MAX_JSON_DIGITS:
        raise _JSONBound(f"a number of {n} digits (at most {MAX_JSON_DIGITS})")
    return int(digits)


class _JSONBound(ValueError):
    pass


def _depth_ok(text: str, limit: int) -> bool:
    """Cheap pre-check: brackets outside strings never nest deeper than ``limit``.

    Only when the text holds more than ``limit`` opening brackets at all (the common
    case costs two ``count`` calls)."""
    if text.count("[") + text.count("{") <= limit:
        return True
    no_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = 0
    for m in re.finditer(r"[\[\]{}]", no_strings):
        depth += 1 if m.group() in "[{" else -1
        if depth > limit:
            return False
    return True


def load_json(text: str | bytes, where, *, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads(text)`` bounded: nesting deeper than ``max_depth`` and integers with
    more than :data:`MAX_JSON_DIGITS` digits are a one-line :class:`DataError` naming
    ``where``; invalid JSON is one too (line and column)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: not UTF-8 text (binary file?)") from None
    if not _depth_ok(text, max_depth):
        raise DataError(f"{where}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _JSONBound as exc:
        raise DataError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno} "
                        f"({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None
