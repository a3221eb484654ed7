"""Writing output files so that a failure never leaves a damaged file in place of a good one.

Every report, export and page is written to a temporary file in the same folder (same file
system: the rename is atomic), flushed and fsync'ed, then ``os.replace``'d onto its name. A full
disk, a missing permission or an interrupted process leaves the previous file untouched and no
temporary file behind. OS errors keep their plain message (``No space left on device``) and the
file name, for the CLI's one-line error.

File names that are not valid UTF-8 (bytes from a Linux file system decoded with
``surrogateescape``) are handled as they come: paths stay :class:`~pathlib.Path` objects and
are only turned into text for messages with :func:`display_name`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
              newline: str | None = None, errors: str = "backslashreplace") -> Iterator[IO]:
    """A file object writing to a temporary file beside ``path``; renamed onto ``path`` when the
    block ends without an exception, removed otherwise.

    Args:
        path: the file to write (its folder must exist).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding, newline, errors: as for :func:`open` in text mode (by default a character that
            cannot be encoded, e.g. from a non-UTF-8 file name, is written as ``\\udcxx``).

    Raises:
        OSError: the folder cannot be written, the disk is full, ... (the old file is kept).
    """
    path = Path(path)
    check_target(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{_safe_stem(path)}.", suffix=".tmp", dir=path.parent)
    _give_mode(tmp, path)
    try:
        with os.fdopen(fd, mode, **({} if binary else {"encoding": encoding, "newline": newline, "errors": errors})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = os.fspath(path)  # a write error names no file: say which one
        raise


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``path.write_text(text)`` through :func:`replacing`. Returns ``Path(path)``.

    Raises:
        OSError: as :func:`replacing`.
    """
    with replacing(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_texts(texts: dict[str | os.PathLike, str], encoding: str = "utf-8") -> list[Path]:
    """Write several files that belong together (a report's JSON and HTML) so that they are
    replaced together: every file goes to its temporary first (flushed, fsync'ed); only when all
    are written are they renamed onto their names, one after the other with Ctrl-C and SIGTERM
    held back for those few renames. An error or interrupt while writing leaves every old file
    as it was (a mixed pair of a new JSON beside an old HTML is not possible that way).

    Raises:
        OSError: as :func:`replacing` (every old file is kept).
    """
    paths = [Path(p) for p in texts]
    for p in paths:
        check_target(p)
    tmps: list[str] = []
    try:
        for p, text in zip(paths, texts.values()):
            fd, tmp = tempfile.mkstemp(prefix=f".{_safe_stem(p)}.", suffix=".tmp", dir=p.parent)
            tmps.append(tmp)
            _give_mode(tmp, p)
            try:
                with os.fdopen(fd, "w", encoding=encoding, errors="backslashreplace") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                if e.filename is None:
                    e.filename = os.fspath(p)
                raise
        with _signals_held():
            for tmp, p in zip(tmps, paths):
                check_target(p)
                os.replace(tmp, p)
            tmps = []
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return paths


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT / SIGTERM held back (delivered when the block ends) where the platform allows."""
    import signal

    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Let ``write(tmp_path)`` produce the file (e.g. a Parquet writer that wants a path), then
    rename it onto ``path``; removed on failure. Returns ``Path(path)``.

    Raises:
        OSError: as :func:`replacing`; anything ``write`` raises (the old file is kept).
    """
    path = Path(path)
    check_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{_safe_stem(path)}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _give_mode(tmp, path)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def display_name(path: str | os.PathLike) -> str:
    """A path as printable text: undecodable bytes of a non-UTF-8 file name shown as ``\\xNN``."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_target(path: Path) -> None:
    """Refuse to rename a file onto anything but a regular file or nothing: ``os.replace`` onto a
    device (``/dev/null``, ``/dev/full``), a FIFO or a link in ``/dev`` would swap the node itself
    for the file (as root, for every program on the machine); onto a folder it fails obscurely.

    Raises:
        OSError: ``path`` (or what its symbolic link points to) is a folder, device, FIFO or socket.
    """
    try:
        st = os.stat(path)
    except OSError:
        return  # nothing there (or unreadable: the write itself names the reason)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a folder, not a file name to write", os.fspath(path))
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EEXIST, "Not a regular file (a device, pipe or socket), nape will not replace it; "
                      "give another name", os.fspath(path))


def make_folder(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; a file (or device) of that name is one plain error, not "File exists".

    Raises:
        OSError: ``path`` exists and is not a folder, or it cannot be made.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a folder (a file of that name exists; the output needs a "
                                 "folder)", os.fspath(path))
    path.mkdir(parents=True, exist_ok=True)
    return path


def os_error_message(e: OSError) -> str:
    """An OSError as one plain line: ``No space left on device: /path/report.html``."""
    what = e.strerror or str(e)
    name = e.filename if e.filename is not None else None
    return f"{what}: {display_name(name)}" if name else what


def _give_mode(tmp: str, path: Path) -> None:
    """The mode the file would have had: the old file's, else 0666 less the umask (mkstemp makes 0600)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


def _safe_stem(path: Path) -> str:
    """The file name for the temporary file's prefix, kept short."""
    return path.name[:40]


class PipeSafeStream:
    """A text stream (stdout) that survives its reader going away: ``nape analyse … | head``.

    Once a write or flush meets a closed pipe (BrokenPipeError), the rest of the output goes to
    the null device, so the command carries on and finishes its files; nothing is lost but text
    no one reads. Undecodable characters (non-UTF-8 file names) are printed as ``\\udcxx``.
    """

    def __init__(self, stream):
        self._stream = stream
        self.broken = False
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_null()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_null()

    def _to_null(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = os.open(os.devnull, os.O_WRONLY)  # the interpreter flushes fd 1 at exit too
            os.dup2(fd, self._stream.fileno())
            os.close(fd)
        self._stream = open(os.devnull, "w", encoding="utf-8")

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
