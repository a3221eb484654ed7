"""A simulated device: the firmware's own pipeline under MicroPython, fed by the simulated wearer.

The raw IMU signals of a :class:`nape.sim.SimResult` are piped into
``nape/boardsim/mpy/simhost.py`` running in the real unix MicroPython interpreter, which fuses,
batches and fragments them exactly as the board does; its notification values come back
on stdout. :class:`SimulatedTransport` exposes that as a :class:`nape.transport.Transport`.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections.abc import AsyncIterator

import numpy as np

from . import __version__
from . import childlog, micropython
from .boardsim import mpy_dir
from .errors import FirmwareError
from .transport import DeviceInfo, Notification, Transport

DEFAULT_VALUE_LEN = 244  # ATT MTU 247 - 3


def sim_stdin_blob(sim, max_value_len: int = DEFAULT_VALUE_LEN) -> bytes:
    """The bytes ``boardsim/mpy/simhost.py`` reads: header + float32 raw samples."""
    roles = [r for r in ("trunk", "head") if r in sim.imus]
    mask = sum(bit for r, bit in (("trunk", 1), ("head", 2)) if r in sim.imus)
    cols = []
    for r in roles:
        cols += [sim.imus[r].acc, sim.imus[r].gyr]
    data = np.ascontiguousarray(np.concatenate(cols, axis=1), dtype="<f4")
    header = b"NSIM" + struct.pack("<BHfI", mask, max_value_len, float(sim.rate_hz), len(data))
    return header + data.tobytes()


class SimulatedTransport(Transport):
    """In-memory link to the firmware pipeline running under MicroPython.

    Args:
        sim: a simulated wearer (``nape.sim.SimResult``).
        max_value_len: notification value size, bytes (ATT MTU - 3); 20 for the default MTU.
    """

    def __init__(self, sim, max_value_len: int = DEFAULT_VALUE_LEN):
        self.sim = sim
        self.max_value_len = max_value_len
        self._proc: asyncio.subprocess.Process | None = None
        self._stdin_file = None

    async def connect(self) -> DeviceInfo:
        blob = sim_stdin_blob(self.sim, self.max_value_len)
        self._stdin_file = tempfile.TemporaryFile()
        self._stdin_file.write(blob)
        self._stdin_file.seek(0)
        self._proc = await asyncio.create_subprocess_exec(
            *micropython.command(str(mpy_dir() / "simhost.py")),
            stdin=self._stdin_file, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=micropython.env(), limit=1 << 20,
        )
        roles = tuple(r for r in ("trunk", "head") if r in self.sim.imus)
        return DeviceInfo(
            name="Nape-sim", firmware_version=__version__, imu_roles=roles,
            rate_hz=float(self.sim.rate_hz), extra={"source": "simulated"},
        )

    async def notifications(self) -> AsyncIterator[Notification]:
        assert self._proc is not None and self._proc.stdout is not None, "connect() first"
        out = self._proc.stdout
        while True:
            try:
                hdr = await out.readexactly(3)
            except asyncio.IncompleteReadError:
                break
            channel, length = struct.unpack("<BH", hdr)
            if channel == 0:
                break
            value = await out.readexactly(length)
            yield Notification("stream" if channel == 1 else "event", value)
        rc = await self._proc.wait()
        if rc != 0:
            err = (await self._proc.stderr.read()).decode(errors="replace")
            raise FirmwareError(childlog.summary(f"simulated firmware exited with {rc}", err, "simulated-firmware"))

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._stdin_file is not None:
            self._stdin_file.close()
            self._stdin_file = None
