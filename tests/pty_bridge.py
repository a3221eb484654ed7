"""A MicroPython "board" on a pseudo-terminal, for driving with mpremote in tests.

``MicroPythonBoard`` opens a pty pair and exposes the slave end (``/dev/pts/N``) as the
board's serial port. A thread copies bytes between the pty master and a real unix
``micropython`` interpreter, which runs on a second pty of its own (so it sees a
terminal and starts its REPL, with Ctrl-A raw REPL and raw-paste mode), with its
working directory set to a temporary folder, the board's filesystem, and
``MICROPYPATH`` pointing there so copied ``.mpy``/``.py`` files import as on a board.

Differences from a real board, and how the bridge bridges them:

* **Soft reset.** On a board, Ctrl-D on an empty raw-REPL line prints ``OK``, soft-resets
  (fresh heap, empty ``sys.modules``), prints ``MPY: soft reboot`` and comes back in the
  raw REPL. The unix port prints ``OK`` and *exits*. mpremote soft-resets on every
  connect (unless told ``resume``), so the bridge treats an interpreter exit as a soft
  reset: it prints ``MPY: soft reboot\\r\\n``, starts a new interpreter, enters its raw
  REPL (Ctrl-A), runs the board's ``boot.py`` if there is one (a board does, at every
  reset), and sends the raw REPL banner and prompt; the unix banner and boot.py's output
  are not forwarded. mpremote sees what a board would send; ``reboots`` counts them.
  (The very first interpreter, the "power-on", does not run boot.py.)
* **Line endings.** The interpreter's pty is put in raw mode (no ``\\n`` → ``\\r\\n``
  output translation), so the banners read ``...CTRL-B to exit\\r\\n>`` exactly as
  mpremote expects. (With the default cooked pty they would read ``\\r\\r\\n`` and
  mpremote could not enter the raw REPL.)
* **Modem lines.** A pty has no DTR/RTS: setting them fails with ENOTTY, which pyserial
  and mpremote ignore for ptys. Nothing on this "board" resets when the port opens.
* **Filesystem.** The unix port's ``os``/``open`` act on the host folder, so mpremote's
  ``fs cp`` (``open(..,'wb')`` + chunked ``write`` through the raw REPL, after comparing
  ``hashlib.sha256`` of the existing file), ``fs ls``/``rm``, ``exec`` and ``soft-reset``
  work unchanged.

What does not work against the unix port, checked with mpremote 1.29:

* ``mpremote reset``: the unix ``machine`` module has no ``reset()``; mpremote sends
  ``machine.reset()`` with ``exec --no-follow``, so it even exits 0 while nothing happens.
  (``nape flash`` never hard-resets through mpremote; it relies on the soft reset.)
* ``fs cp FILE :`` (a bare ``:``, the current folder): mpremote stats ``''`` to see if the
  destination is a folder; the unix port's ``os.stat('')`` raises ENOENT, so it fails with
  ``cp: : No such file or directory``. ``:.`` or naming the destination file works;
  ``nape flash`` names every destination (``:config.mpy``), which works on boards too.
* A device that stops answering: mpremote reads a pty with no timeout (it polls real
  serial ports, with a 10 s limit to enter the raw REPL), so it waits forever. The bridge
  closes the port if its thread fails, and ``nape flash`` bounds every tool run.

The bridge keeps one slave descriptor open itself, so the master never sees EIO while
no client has the port open (mpremote opens and closes it on every run).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import threading
import time
import tty
from pathlib import Path

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_SOFT_REBOOT = b"MPY: soft reboot\r\n"


def _micropython() -> str:
    from nape import micropython

    return micropython.find()


class MicroPythonBoard:
    """The unix MicroPython behind a pty, posing as a serial-attached board.

    Args:
        root: folder acting as the board's filesystem (the interpreter's working dir).

    Use as a context manager; ``port`` is the ``/dev/pts/N`` path to hand to mpremote.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._env = dict(os.environ, MICROPYPATH=f"{self.root}:.frozen")
        self.reboots = 0
        self.error: BaseException | None = None  # what stopped the bridge thread, if anything
        self.log = bytearray()  # everything the interpreter sent, for failure messages
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._mp_master = -1

        self._master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._keep_slave = slave  # see module docstring
        self._start_interpreter()
        self._thread = threading.Thread(target=self._pump, name="pty-bridge", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ interpreter

    def _start_interpreter(self) -> None:
        mp_master, mp_slave = pty.openpty()
        tty.setraw(mp_slave)
        self._proc = subprocess.Popen([_micropython()], stdin=mp_slave, stdout=mp_slave, stderr=mp_slave,
                                      cwd=self.root, env=self._env, close_fds=True, start_new_session=True)
        os.close(mp_slave)
        self._mp_master = mp_master

    def _read_child(self, timeout: float) -> bytes | None:
        """Bytes from the interpreter; b"" on timeout; None once it has exited."""
        r, _, _ = select.select([self._mp_master], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self._mp_master, 4096)
        except OSError:  # EIO: the interpreter closed its terminal (exited)
            return None
        return data or None

    def _soft_reboot(self) -> None:
        """The interpreter exited: behave like a board's soft reset in the raw REPL."""
        assert self._proc is not None
        self._proc.wait(timeout=10)
        os.close(self._mp_master)
        self.reboots += 1
        self._write_host(_SOFT_REBOOT)
        self._start_interpreter()
        os.write(self._mp_master, b"\r\x01")  # back into the raw REPL, as a board stays there
        seen = self._read_child_until(RAW_BANNER + b">")
        if (self.root / "boot.py").is_file():  # a board runs boot.py at every soft reset
            os.write(self._mp_master, b"exec(open('boot.py').read())\x04")
            seen += self._read_child_until(b"\x04>")
        self.log += seen
        self._write_host(RAW_BANNER + b">")  # not the unix banner, which a board would not print

    def _read_child_until(self, ending: bytes, timeout: float = 10.0) -> bytes:
        seen = b""
        deadline = time.monotonic() + timeout
        while ending not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError("micropython did not answer %r: %r" % (ending, seen[-300:]))
            part = self._read_child(0.1)
            if part is None:
                raise RuntimeError("micropython exited during soft reboot: %r" % seen[-300:])
            seen += part
        return seen

    def _write_host(self, data: bytes) -> None:
        while data:
            n = os.write(self._master, data)
            data = data[n:]

    def _pump(self) -> None:
        try:
            self._pump_loop()
        except BaseException as e:  # noqa: BLE001 - reported through .error, never silently
            self.error = e
            # Close our end of the "serial line": a client blocked reading the port (mpremote
            # reads ptys without a timeout) then gets an error instead of waiting forever.
            for fd in (self._master, self._keep_slave):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._master, self._mp_master], [], [], 0.1)
            except (OSError, ValueError):
                return
            if self._mp_master in r:
                data = self._read_child(0)
                if data is None:
                    if self._stop.is_set():
                        return
                    self._soft_reboot()
                    continue
                self.log += data
                self._write_host(data)
            if self._master in r:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                if data:
                    try:
                        os.write(self._mp_master, data)
                    except OSError:  # interpreter just exited; the reboot re-syncs the raw REPL
                        pass

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._thread.join(timeout=5)
        for fd in (self._mp_master, self._master, self._keep_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "MicroPythonBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
