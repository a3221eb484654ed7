"""The seam between a device and the recorder.

A :class:`Transport` connects to one Nape device and yields its notification values.
Today's implementations: :class:`nape.device_sim.SimulatedTransport` (the firmware's own
code under MicroPython, fed by the simulated wearer, linked in memory). The BLE
transport (bleak, on a real adapter or a bumble virtual radio) implements the same
interface, so the recorder never knows which one it reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself on connect."""

    name: str
    firmware_version: str
    imu_roles: tuple[str, ...]
    rate_hz: float  # fused stream rate, Hz
    wire_version: int = 1
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """One notification value from a characteristic ("stream" or "event"), or a
    transport marker: "boot" (value: u32 LE boot id, optionally f64 LE unix s at the boot's
    device time 0 (NaN: unknown) and UTF-8 words saying how that was known) before the
    first data of a device boot, whose sequence numbers start again (also an earlier boot
    whose day log the board kept over a reboot, sent before the current boot's)."""

    channel: str
    value: bytes


class Transport(ABC):
    """A link to one device. Use as ``async with transport: async for n in transport.notifications()``."""

    @abstractmethod
    async def connect(self) -> DeviceInfo:
        """Connect and return the device's description.

        Raises:
            nape.errors.DeviceError: the device cannot be reached.
        """

    @abstractmethod
    def notifications(self) -> AsyncIterator[Notification]:
        """Notification values in arrival order; ends when the device stops streaming."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; safe to call twice."""

    def drain_notes(self) -> list[dict]:
        """Link events since the last call (JSON-ready dicts with an ``"event"``, protocol/RECORDING.md), for the
        recorder to keep in the file as NOTE chunks; the default has none."""
        return []

    def link_summary(self) -> dict:
        """JSON-ready link figures (reconnects, backfill, ...) for the session NOTE."""
        return {}

    async def __aenter__(self) -> "Transport":
        self.info = await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
