"""The virtual Nape: the firmware under MicroPython, a bumble peripheral and a shared virtual radio.

Processes and sockets::

    ┌─ virtual-device process (python -m nape.ble.virtual) ──────────────────────┐
    │  VirtualRadio (bumble LocalLink)                                             │
    │    ├─ controller "nape-peripheral" ── FirmwareBridge (bumble Device, GATT) ◀─┼── AF_UNIX bridge.sock
    │    └─ one controller per HCI client ◀── AF_UNIX radio.sock (HCI H4) ◀────────┼── hosts: bleak + BumbleClient
    └──────────────────────────────────────────────────────────────────────────────┘        / BumbleScanner
                 ▲ bridge.sock (shim frames)
    ┌─ micropython boardsim/mpy/board_app.py (the whole firmware: main.boot) ───────────┐
    │  fake I2C + fake IMUs (FIFO at 500 Hz) → drivers → Sampler → jolt screen (EVENTs)  │
    │  → Pipeline (fusion → posture alert → buzzer shim) → PacketStore → NapeService     │
    │  → bluetooth.BLE()                 the wearer: FIFO frames (NFRM, wearer_blob)     │
    └────────────────────────────────────────────────────────────────────────────────────┘

The virtual-device process prints JSON lines on stdout (``{"event": ..., "t": unix_s}``:
``ready``, ``fw`` (firmware stdout line), ``connection``, ``disconnection``, ``mtu``,
``dropped``, ``booted``, ``fw_exit``) and takes JSON commands on stdin (``{"cmd": "drop"}``
to drop every link as if the wearer walked out of range, ``{"cmd": "range", "away": bool}``
to take the board out of range until further notice (links dropped, advertising reaching
nobody) or bring it back, ``{"cmd": "button", "ms": N}`` to
hold the board's pair button for N ms, ``{"cmd": "reboot"}`` to restart
the firmware as a power cycle would, ``{"cmd": "stats"}`` (optionally ``"before": unix_s``:
``sent_next_seq`` is then the sequence number after the newest whole SAMPLES packet
notified by that time in the current boot), ``{"cmd": "quit"}``). EOF on stdin shuts it down. :class:`VirtualDevice` runs it for
tests and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

from .. import childlog, micropython
from ..boardsim import mpy_dir
from ..errors import DeviceError, FirmwareError

log = logging.getLogger(__name__)

# How the parent starts the virtual-device process (not ``-m``: importing nape.ble first
# would make runpy warn that the module is already loaded).
_CHILD_MAIN = "import sys; from nape.cli.virtual_device import main; sys.exit(main(sys.argv[1:]))"


def default_radio_path() -> Path:
    """Where :func:`serve_virtual_device` serves its radio unless told otherwise (and where
    ``nape record --virtual`` / ``nape scan --virtual`` look for a running one)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"nape-{os.getuid()}" / "radio.sock"


# ---------------------------------------------------------------------------------------
# the virtual-device process
# ---------------------------------------------------------------------------------------
async def _serve(args) -> int:
    from .peripheral import FirmwareBridge
    from .radio import VirtualRadio

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = sys.stdout

    def emit(kind: str, **fields) -> None:
        out.write(json.dumps({"event": kind, "t": time.time(), **fields}) + "\n")
        out.flush()

    radio = VirtualRadio()
    bridge = FirmwareBridge(radio, keystore=args.keystore, on_event=emit)
    bridge_path = workdir / "bridge.sock"
    await bridge.start(bridge_path)
    await radio.serve_unix(args.radio)
    tcp_port = await radio.serve_tcp(port=args.tcp) if args.tcp is not None else None

    env = micropython.env(base=dict(os.environ, NAPE_BLE_BRIDGE=str(bridge_path)))
    cmd = [*micropython.command(str(mpy_dir() / "board_app.py"), heap=args.heap),
           "--wearer", args.nsim, "--speed", str(args.speed),
           "--ram-slots", str(args.ram_slots), "--flash-slots", str(args.flash_slots), "--name", args.name]
    if args.flash:
        cmd += ["--flash", str(workdir / "spill.bin")]
    if args.daylog_kib:
        cmd += ["--daylog", str(workdir / "day.log"), "--daylog-kib", str(args.daylog_kib)]
        if args.offline_after is not None:
            cmd += ["--offline-after", str(args.offline_after)]
    if args.away:
        cmd += ["--away", args.away]
    if args.insecure:
        cmd.append("--insecure")
    if args.pair_window is not None:
        cmd += ["--pair-window", str(args.pair_window)]
    if args.owner_key:
        cmd += ["--owner-key", args.owner_key]
    if args.no_quiet_hours:
        cmd.append("--no-quiet-hours")
    if args.hold:
        cmd.append("--hold")
    cmd += ["--secrets", args.secrets or str(workdir / "bonds.txt")]
    ready = False
    boots = 0
    stderr_tail: list[str] = []
    # what went on air: (unix time, seq after the newest whole SAMPLES packet notified so
    # far in this boot), appended when it grows; answers {"cmd": "stats", "before": t}
    sent: list[tuple[float, int]] = []

    def on_notify(_handle: int, data: bytes) -> None:
        if len(data) >= 15 and data[0] & 0xC0 == 0xC0 and data[1] == 1 and data[2] == 1:
            end = int.from_bytes(data[5:9], "little") + data[4]
            if not sent or end > sent[-1][1]:
                sent.append((time.time(), end))

    bridge.on_notify = on_notify

    async def start_fw() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env)

    async def fw_stdout(fw) -> None:
        nonlocal ready, boots
        assert fw.stdout is not None
        async for raw in fw.stdout:
            line = raw.decode(errors="replace").rstrip()
            emit("fw", line=line)
            if line.startswith(("NAPE-APP away ", "NAPE-APP back ")):  # the host's range (--away)
                away = line.startswith("NAPE-APP away ")
                n = radio.set_out_of_range(bridge.controller, away)
                f = dict(kv.split("=") for kv in line.split()[2:])
                emit("away" if away else "back", t_ms=int(f["t_ms"]), lightsleeps=int(f["lightsleeps"]),
                     mode=f["mode"], dropped=n)
            elif line.startswith("NAPE-APP reconnected "):
                f = dict(kv.split("=") for kv in line.split()[2:])
                emit("reconnected", t_ms=int(f["t_ms"]), after_ms=int(f["after_ms"]))
            elif line.startswith("NAPE-APP start_unix_ms="):
                start_ms = int(line.split()[1].split("=")[1])
                boots += 1
                if not ready:
                    ready = True
                    emit("ready", radio=str(args.radio), tcp=tcp_port,
                         address=bridge.device.random_address.to_string(False), start_unix_ms=start_ms)
                else:
                    emit("booted", boot=boots, start_unix_ms=start_ms)

    async def fw_stderr(fw) -> None:
        assert fw.stderr is not None
        async for raw in fw.stderr:
            stderr_tail.append(raw.decode(errors="replace").rstrip())
            del stderr_tail[:-40]

    fw = await start_fw()
    tasks = [asyncio.create_task(fw_stdout(fw)), asyncio.create_task(fw_stderr(fw))]
    fw_wait = asyncio.create_task(fw.wait())
    rebooting = False

    async def reboot() -> None:
        """Power-cycle the board: the firmware restarts from scratch (RAM buffer, spill
        file and sequence numbers too); radio, address and the bonds file stay."""
        nonlocal fw, fw_wait, rebooting
        rebooting = True
        emit("rebooting")
        fw.kill()
        await fw.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(200):  # the bridge drops the links when the firmware's socket closes
            if bridge._writer is None:
                break
            await asyncio.sleep(0.01)
        sent.clear()
        fw = await start_fw()
        tasks[:] = [asyncio.create_task(fw_stdout(fw)), asyncio.create_task(fw_stderr(fw))]
        fw_wait = asyncio.create_task(fw.wait())
        rebooting = False

    async def press(ms: float) -> None:
        """Hold the pair button (active low) for ``ms``, then release it."""
        ok = bridge.set_input(args.button_gpio, 0)
        await asyncio.sleep(ms / 1000.0)
        bridge.set_input(args.button_gpio, 1)
        emit("button", ms=ms, ok=ok)

    async def commands() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async for raw in reader:
            try:
                cmd = json.loads(raw)
            except ValueError:
                continue
            c = cmd.get("cmd")
            if c == "drop":
                emit("dropped", n=radio.drop_links())
            elif c == "range":  # {"cmd": "range", "away": true}: out of range / back
                away = bool(cmd.get("away"))
                emit("range", away=away, dropped=radio.set_out_of_range(bridge.controller, away))
            elif c == "stats":
                before = cmd.get("before")
                upto = [e for t, e in sent if before is None or t <= before]
                emit("stats", notifications=bridge.notifications, truncated=bridge.truncated,
                     hci_clients=len(radio.clients), boots=boots,
                     sent_next_seq=upto[-1] if upto else None)
            elif c == "reboot":
                await reboot()
            elif c == "button":
                asyncio.create_task(press(float(cmd.get("ms", 3500))))
            elif c == "quit":
                return
        # stdin closed: the parent is gone

    cmd_task = asyncio.create_task(commands())
    rc = 0
    while True:
        done, _ = await asyncio.wait({cmd_task, fw_wait}, return_when=asyncio.FIRST_COMPLETED)
        if cmd_task in done:
            fw.kill()
            await fw.wait()
            break
        if fw_wait in done and not rebooting and fw_wait.done():
            await asyncio.gather(*tasks, return_exceptions=True)
            rc = fw.returncode or 0
            emit("fw_exit", rc=rc, stderr=stderr_tail[-10:])
            break
        await asyncio.sleep(0.01)  # a reboot replaced the firmware: wait on the new one
    for t in tasks + [cmd_task]:
        t.cancel()
    await bridge.close()
    await radio.close()
    return 1 if rc else 0


def serve(args) -> int:
    """Run the virtual-device process until its stdin closes (``args``: the options of
    :mod:`nape.cli.virtual_device`, which parses them)."""
    logging.basicConfig(level=os.environ.get("NAPE_LOG", "WARNING"), stream=sys.stderr)
    return asyncio.run(_serve(args))


# ---------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------
#: the virtual board's IMU output rate, Hz: the firmware asks for ``config.RAW_ODR_HZ``
#: (400) and both chips' nearest rate is 500 Hz (MPU-6050 1 kHz / 2, ICM-42688-P 500 Hz)
BOARD_ODR_HZ = 500.0
#: the virtual board's offline day log, KiB: a XIAO ESP32S3's (``config.DAYLOG_KIB``;
#: tests/test_virtual_board.py checks they agree)
BOARD_DAYLOG_KIB = 3968
#: the ranges the drivers set (imu_base defaults: +-8 g, +-2000 deg/s); the virtual board
#: refuses a wearer file quantised for other ranges
BOARD_ACC_LSB_PER_G = 4096.0
BOARD_GYR_LSB_PER_DPS = 16.4
_G = 9.80665


def resample(sim, rate_hz: float = BOARD_ODR_HZ):
    """``sim`` (``rate_hz``, ``imus[role].acc/gyr``) at ``rate_hz``: linear interpolation
    between the samples, the last one held; ``n`` samples become ``n * rate_hz / sim.rate_hz``
    (so the board's 100 Hz fused stream has as many samples as a 100 Hz simulation).
    Returned unchanged when already at that rate."""
    import numpy as np

    if abs(float(sim.rate_hz) - rate_hz) < 1e-9:
        return sim
    roles = list(sim.imus)
    n = len(sim.imus[roles[0]].acc)
    m = int(round(n * rate_hz / float(sim.rate_hz)))
    t_in = np.arange(n) / float(sim.rate_hz)
    t_out = np.arange(m) / rate_hz

    class _R:
        pass

    out = _R()
    out.rate_hz = rate_hz
    out.imus = {}
    for role in roles:
        imu = _R()
        for name in ("acc", "gyr"):
            x = np.asarray(getattr(sim.imus[role], name), dtype=float)
            setattr(imu, name, np.stack([np.interp(t_out, t_in, x[:, k]) for k in range(3)], axis=1))
        out.imus[role] = imu
    return out


def axis_maps() -> dict[str, tuple[int, int, int]]:
    """The board's axis maps chip -> device (``TRUNK_AXIS_MAP``, ``HEAD_AXIS_MAP`` of the
    firmware's config.py): device axis i = sign(m_i) * chip axis |m_i|.

    Raises:
        FirmwareError: config.py lacks them.
    """
    import re

    from ..paths import firmware_dir

    text = (firmware_dir() / "config.py").read_text(encoding="utf-8")
    out = {}
    for role, name in (("trunk", "TRUNK_AXIS_MAP"), ("head", "HEAD_AXIS_MAP")):
        m = re.search(r"^%s = \(([^)]*)\)" % name, text, re.M)
        if not m:
            raise FirmwareError(f"firmware config.py has no {name}")
        out[role] = tuple(int(x) for x in m.group(1).split(","))
    return out


def _counts(x, lsb):
    """Round half away from zero and clamp to int16, as the chips' ADC model does."""
    import numpy as np

    c = np.asarray(x, dtype=np.float64) * lsb
    c = np.sign(c) * np.floor(np.abs(c) + 0.5)
    return np.clip(c, -32768, 32767).astype("<i2")


def wearer_blob(sim) -> bytes:
    """The virtual board's wearer file (NFRM, ``boardsim/mpy/board_app.py``): ``sim``
    (``rate_hz``, ``imus[role].acc`` m/s^2 / ``.gyr`` rad/s in the device frame) resampled
    to :data:`BOARD_ODR_HZ`, turned into chip axes with the inverse axis maps, quantised at
    the drivers' ranges and packed as the chips' FIFO frames: the trunk's MPU-6050 (accel,
    gyro, big-endian: 12 bytes) and the head's ICM-42688-P packet 3 (0x68, accel, gyro,
    temperature 0 = 25 degC, 16-bit timestamp counting samples: 16 bytes)."""
    import numpy as np

    sim = resample(sim)
    maps = axis_maps()
    counts = {}
    for r in ("trunk", "head"):
        if r not in sim.imus:
            continue
        parts = []
        for name, lsb in (("acc", BOARD_ACC_LSB_PER_G / _G), ("gyr", BOARD_GYR_LSB_PER_DPS * 180.0 / np.pi)):
            v = np.asarray(getattr(sim.imus[r], name), dtype=np.float64)
            chip = np.zeros_like(v)
            for i, m in enumerate(maps[r]):  # device i = sign * chip |m|  =>  chip |m| = sign * device i
                chip[:, abs(m) - 1] = np.sign(m) * v[:, i]
            parts.append(_counts(chip, lsb))
        counts[r] = np.concatenate(parts, axis=1)  # (n, 6) int16: acc x y z, gyr x y z
    mask = (1 if "trunk" in counts else 0) | (2 if "head" in counts else 0)
    if not mask & 1:
        raise ValueError("the virtual board needs a trunk IMU")
    n = len(counts["trunk"])
    frames = [counts["trunk"].astype(">i2").view(np.uint8).reshape(n, 12)]
    head_size = 0
    if "head" in counts:
        head_size = 16
        pkt = np.zeros((n, 16), dtype=np.uint8)
        pkt[:, 0] = 0x68
        pkt[:, 1:13] = counts["head"].astype(">i2").view(np.uint8).reshape(n, 12)
        tmst = ((np.arange(n) + 1) & 0xFFFF).astype(">u2").view(np.uint8).reshape(n, 2)
        pkt[:, 14:16] = tmst
        frames.append(pkt)
    data = np.ascontiguousarray(np.concatenate(frames, axis=1))
    hdr = b"NFRM" + struct.pack("<BfffIBB", mask, BOARD_ACC_LSB_PER_G, BOARD_GYR_LSB_PER_DPS,
                                float(sim.rate_hz), n, 12, head_size)
    return hdr + data.tobytes()


def nsim_blob(sim=None, n: int | None = None, rate_hz: float = 100.0, head: bool = True) -> bytes:
    """The wearer for the virtual board (:func:`wearer_blob`: FIFO frames at its IMUs' rate
    :data:`BOARD_ODR_HZ`; slower simulations are resampled): a :class:`nape.sim.SimResult`
    (first ``n`` samples at its own rate) or, with ``sim=None``, ``n`` samples at
    ``rate_hz`` of a still, upright wearer. The board's fused stream (100 Hz) then has
    ``n * 100 / rate`` samples."""
    import numpy as np

    if sim is None:
        n = n or int(60 * rate_hz)
        rng = np.random.default_rng(0)

        class _Imu:
            def __init__(self) -> None:
                self.acc = np.tile([0.0, 0.0, 9.80665], (n, 1)) + rng.normal(0, 0.02, (n, 3))
                self.gyr = rng.normal(0, 0.002, (n, 3))

        class _Sim:
            pass

        sim = _Sim()
        sim.rate_hz = rate_hz
        sim.imus = {"trunk": _Imu(), **({"head": _Imu()} if head else {})}
    elif n is not None:
        class _Cut:
            pass

        cut = _Cut()
        cut.rate_hz = sim.rate_hz
        cut.imus = {}
        for role, imu in sim.imus.items():
            c = _Cut()
            c.acc, c.gyr = imu.acc[:n], imu.gyr[:n]
            cut.imus[role] = c
        sim = cut
    return wearer_blob(sim)


class VirtualDevice:
    """Runs the virtual-device process (see the module doc) for as long as the context lasts.

    Args:
        nsim: the wearer's raw samples (:func:`nsim_blob`); default one minute of a still
            wearer. The virtual board runs the whole firmware on them (``board_app.py``).
        speed: times real time (0: as fast as the firmware runs).
        radio_path: AF_UNIX path of the radio (default: in the work directory).
        flash: let the offline buffer spill to a file; ``ram_slots`` / ``flash_slots``
            size it (``firmware/ble_buffer.py``).
        workdir: directory for sockets and the spill file (default: a fresh temp dir,
            removed afterwards).
        secure: None (default): the board's own setting (``config.BLE_SECURE``: an
            encrypted link with a central bonded in a pairing window); False: the
            development switch (``config.BLE_SECURE = 0``), for tests of the data path.
        secrets: file where the firmware keeps its bonds (default: in ``workdir``); give
            one to keep bonds across virtual-device runs.
        owner_key: bytes the firmware finds as its owner key (as ``nape flash`` writes
            it); None: no owner key on the virtual board.
        pair_window_s: pairing window length, s (None: the firmware's config).
        quiet_hours: False: the board's posture alert buzzes at any hour (its clock is
            this computer's, so tests would otherwise depend on the time of day).
        hold: the wearer starts moving when a central first streams (the whole day goes
            out live, jolt windows included; ``nape demo``). Default: at once, so a late
            central backfills.
        daylog_kib: the board's offline day log (``firmware/daylog.py``) of this many KiB
            in ``workdir`` (default: a XIAO ESP32S3's, :data:`BOARD_DAYLOG_KIB`; 0: none,
            the board buffers SAMPLES only); ``offline_after_s``: board seconds without a
            central before it logs (None: the firmware's ``config.SAVER_AFTER_S``).
        away_s: (from, to) board seconds when the host is out of range: the board goes off
            the air (links dropped, advertising reaching nobody) and runs alone, then comes
            back at real time until a central streams again (its advertising windows last
            as on a board); events ``away``, ``back``, ``reconnected`` (``after_ms``: board
            ms from back in range to streaming).

    Raises:
        FirmwareError: the process or the firmware failed to start.
    """

    def __init__(self, nsim: bytes | None = None, *, speed: float = 1.0,
                 radio_path: str | os.PathLike[str] | None = None, flash: bool = True,
                 ram_slots: int = 4096, flash_slots: int = 16384, name: str = "Nape",
                 workdir: str | os.PathLike[str] | None = None, keystore: str | None = None,
                 secure: bool | None = None, secrets: str | os.PathLike[str] | None = None,
                 owner_key: bytes | None = None, pair_window_s: int | None = None,
                 start_timeout: float = 30.0, quiet_hours: bool = True, hold: bool = False,
                 daylog_kib: int = BOARD_DAYLOG_KIB, offline_after_s: float | None = None,
                 away_s: tuple[float, float] | None = None) -> None:
        self._nsim = nsim if nsim is not None else nsim_blob()
        self.speed = speed
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="nape-virtual-"))
        self.radio_path = Path(radio_path) if radio_path else self.workdir / "radio.sock"
        self.flash = flash
        self.ram_slots = ram_slots
        self.flash_slots = flash_slots
        self.name = name
        self.keystore = keystore
        self.secure = secure
        self.secrets = secrets
        self.owner_key = owner_key
        self.pair_window_s = pair_window_s
        self.start_timeout = start_timeout
        self.quiet_hours = quiet_hours
        self.hold = hold
        self.daylog_kib = daylog_kib
        self.offline_after_s = offline_after_s
        self.away_s = away_s
        self.events: list[dict] = []
        self.info: dict = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: list[tuple[str, asyncio.Future]] = []
        self._stderr = None

    @property
    def transport(self) -> str:
        """bumble transport name of the radio, for ``bumble={"transport": ...}``."""
        return f"unix:{self.radio_path}"

    @property
    def bumble_args(self) -> dict:
        return {"transport": self.transport}

    async def __aenter__(self) -> VirtualDevice:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        nsim_path = self.workdir / "samples.nsim"
        nsim_path.write_bytes(self._nsim)
        args = ["--radio", str(self.radio_path), "--nsim", str(nsim_path), "--speed", str(self.speed),
                "--workdir", str(self.workdir), "--ram-slots", str(self.ram_slots),
                "--flash-slots", str(self.flash_slots), "--name", self.name]
        if self.flash:
            args.append("--flash")
        if self.keystore:
            args += ["--keystore", str(self.keystore)]
        if self.secure is False:
            args.append("--insecure")
        if self.pair_window_s is not None:
            args += ["--pair-window", str(int(self.pair_window_s))]
        if self.owner_key is not None:
            key_path = self.workdir / "owner.key"
            key_path.write_text(self.owner_key.hex())
            args += ["--owner-key", str(key_path)]
        if self.secrets:
            args += ["--secrets", str(self.secrets)]
        if not self.quiet_hours:
            args.append("--no-quiet-hours")
        if self.hold:
            args.append("--hold")
        if self.daylog_kib:
            args += ["--daylog-kib", str(int(self.daylog_kib))]
            if self.offline_after_s is not None:
                args += ["--offline-after", str(self.offline_after_s)]
        if self.away_s is not None:
            args += ["--away", "%g:%g" % self.away_s]
        env = dict(os.environ)
        # the child imports this very nape, wherever it is installed or checked out
        import nape

        host_dir = str(Path(nape.__file__).resolve().parent.parent)  # site-packages, or host/
        env["PYTHONPATH"] = host_dir + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONWARNINGS", "ignore")
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD_MAIN, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=self._stderr, env=env, limit=1 << 20)
        self._reader = asyncio.create_task(self._read_events())
        try:
            ev = await self.wait_event("ready", timeout=self.start_timeout)
        except (asyncio.TimeoutError, DeviceError) as e:
            msg = await self._failure(e)
            await self.stop()
            raise FirmwareError(msg) from None
        self.info = ev

    async def _failure(self, exc: BaseException) -> str:
        """One line with the real cause of a failed start; the whole log goes to a file."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._proc.wait(), 2.0)
        text = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace")
        fw_exit = next((ev for ev in self.events if ev.get("event") == "fw_exit"), None)
        if fw_exit is not None:  # the firmware (MicroPython) failed, not the Python side
            fw_err = "\n".join(fw_exit.get("stderr") or [])
            return childlog.summary("virtual device did not start: the firmware failed",
                                    fw_err + "\n--- virtual device ---\n" + text, "virtual-device")
        if isinstance(exc, asyncio.TimeoutError) and not text.strip():
            text = f"no ready signal within {self.start_timeout:.0f} s"
        return childlog.summary("virtual device did not start", text, "virtual-device")

    async def _read_events(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            self.events.append(ev)
            for kind, fut in list(self._waiters):
                if not fut.done() and ev.get("event") == kind:
                    fut.set_result(ev)
            if ev.get("event") == "fw_exit":
                for _kind, fut in self._waiters:
                    if not fut.done() and _kind != "fw_exit":
                        fut.set_exception(DeviceError(f"firmware exited: {ev}"))
        for _kind, fut in self._waiters:
            if not fut.done():
                fut.set_exception(DeviceError("virtual device process ended"))

    async def wait_event(self, kind: str, timeout: float = 10.0, after: int = 0) -> dict:
        """The first event of ``kind`` at index ``after`` or later, waiting up to ``timeout`` s."""
        for ev in self.events[after:]:
            if ev.get("event") == kind:
                return ev
        fut = asyncio.get_running_loop().create_future()
        entry = (kind, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.remove(entry)

    async def _command(self, cmd: dict) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise DeviceError("virtual device not running")
        self._proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self._proc.stdin.drain()

    async def set_out_of_range(self, away: bool) -> int:
        """Take the board out of range of every central (its links drop, its advertising
        reaches nobody) or bring it back; returns the links dropped."""
        n = len(self.events)
        await self._command({"cmd": "range", "away": away})
        return (await self.wait_event("range", after=n))["dropped"]

    async def drop_link(self) -> int:
        """Drop every connection on the radio (both ends see a connection timeout)."""
        n = len(self.events)
        await self._command({"cmd": "drop"})
        return (await self.wait_event("dropped", after=n))["n"]

    async def stats(self, before: float | None = None) -> dict:
        """Counters of the virtual device; with ``before`` (unix s) also ``sent_next_seq``:
        the sequence number after the newest whole SAMPLES packet notified by then."""
        n = len(self.events)
        await self._command({"cmd": "stats", **({} if before is None else {"before": before})})
        return await self.wait_event("stats", after=n)

    async def press_button(self, ms: float = 3500.0) -> dict:
        """Hold the board's pair button for ``ms`` (3 s opens the pairing window, 10 s
        forgets every bond: ``config.PAIR_PRESS_MS`` / ``FORGET_PRESS_MS``); returns
        after the release."""
        n = len(self.events)
        await self._command({"cmd": "button", "ms": ms})
        return await self.wait_event("button", timeout=ms / 1000.0 + 10.0, after=n)

    async def reboot(self, timeout: float = 30.0) -> dict:
        """Restart the firmware as a power cycle would (links drop, the buffer and the
        sequence numbers start afresh, the bonds file stays); returns the ``booted`` event."""
        n = len(self.events)
        await self._command({"cmd": "reboot"})
        return await self.wait_event("booted", timeout=timeout, after=n)

    async def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is not None and p.returncode is None:
            with contextlib.suppress(Exception):
                p.stdin.write(b'{"cmd": "quit"}\n')
                await p.stdin.drain()
                p.stdin.close()
            try:
                await asyncio.wait_for(p.wait(), 5.0)
            except asyncio.TimeoutError:
                p.kill()
                await p.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def serve_virtual_device(sim=None, *, radio_path: str | os.PathLike[str] | None = None,
                               speed: float = 1.0, secure: bool | None = None,
                               secrets: str | os.PathLike[str] | None = None,
                               on_event=None) -> None:
    """Run a virtual Nape on a radio that other processes reach (no ``nape`` command runs
    it: a script or test calls this).

    Serves at ``radio_path`` (default :func:`default_radio_path`, where
    ``scan(virtual=True)`` and ``BleTransport(bumble={"transport": "unix:" + path})``
    look) until cancelled (Ctrl-C) or the firmware exits. ``sim``: a
    :class:`nape.sim.SimResult` to stream (default one minute of a still wearer).
    ``on_event(dict)`` sees the device's events (connections, firmware lines).

    Raises:
        FirmwareError: the device did not start or the firmware failed.
    """
    path = Path(radio_path) if radio_path else default_radio_path()
    vd = VirtualDevice(nsim_blob(sim) if sim is not None else None, speed=speed, radio_path=path,
                       secure=secure, secrets=secrets)
    await vd.start()
    try:
        seen = 0
        while vd._proc is not None and vd._proc.returncode is None:
            await asyncio.sleep(0.2)
            if on_event is not None:
                for ev in vd.events[seen:]:
                    on_event(ev)
            seen = len(vd.events)
            if any(e.get("event") == "fw_exit" for e in vd.events[-3:]):
                ev = next(e for e in vd.events if e.get("event") == "fw_exit")
                if ev.get("rc"):
                    raise FirmwareError(f"virtual device firmware exited with {ev['rc']}: "
                                        f"{(ev.get('stderr') or ['?'])[-1]}")
                return
    finally:
        await vd.stop()


if __name__ == "__main__":  # the options are parsed under nape.cli (argparse lives there)
    from nape.cli.virtual_device import main

    sys.exit(main())
