"""Find Nape devices: on a real adapter (bleak) or on the virtual radio (bleak + bumble).

``nape scan`` / ``nape scan --virtual`` call :func:`scan`; a CLI wraps it in
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeviceError
from . import protocol as P
from .transport import backend_kwargs

ENV_RADIO = "NAPE_VIRTUAL_RADIO"


@dataclass(frozen=True)
class FoundDevice:
    """One advertiser seen while scanning."""

    name: str | None
    address: str
    rssi: int
    is_nape: bool  # advertises the Nape service
    service_uuids: tuple[str, ...]
    transport: str | None  # bumble transport name for the virtual radio, None for the OS adapter
    mode: int | None = None  # security mode byte of the scan response (protocol.ADV_*); None: not seen

    def security(self) -> str:
        """The security mode in a few words (protocol/SECURITY.md)."""
        m = self.mode
        if m is None:
            return "unknown" if self.is_nape else ""
        if not m & P.ADV_SECURE:
            return "OPEN (development mode: no pairing needed)"
        words = ["secure"]
        if m & P.ADV_OWNER_KEY:
            words.append("owner key")
        words.append("pairing open" if m & P.ADV_WINDOW_OPEN else "pairing closed")
        return ", ".join(words)


def radio_reachable(path: str | os.PathLike[str]) -> bool:
    """True when a virtual radio is served at this AF_UNIX path."""
    p = Path(path)
    if not p.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(str(p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def virtual_radio(radio: str | None = None) -> str | None:
    """bumble transport name of a running virtual radio, or None.

    ``radio``: an AF_UNIX path or a bumble transport name (``tcp-client:host:port``);
    default ``$NAPE_VIRTUAL_RADIO``, else :func:`nape.ble.virtual.default_radio_path`.
    """
    from .virtual import default_radio_path

    spec = radio or os.environ.get(ENV_RADIO) or str(default_radio_path())
    if ":" in spec and not spec.startswith("/"):
        return spec
    return f"unix:{spec}" if radio_reachable(spec) else None


async def scan(virtual: bool = False, timeout: float = 5.0, *, radio: str | None = None,
               all_devices: bool = False, stop_when_found: bool | None = None) -> list[FoundDevice]:
    """Scan for Nape devices.

    Args:
        virtual: scan the virtual radio instead of the OS adapter. The radio is the one at
            ``radio`` (an AF_UNIX path or any bumble transport name), else at
            ``$NAPE_VIRTUAL_RADIO``, else at :func:`nape.ble.virtual.default_radio_path`;
            when none is running, a virtual device is started for the scan and stopped after.
        timeout: seconds to scan.
        all_devices: also list advertisers that are not Nape devices.
        stop_when_found: return as soon as a Nape is seen (default: True when virtual).

    Returns:
        Devices seen, Nape devices first, strongest signal first.

    Raises:
        DeviceError: the adapter / radio cannot scan.
    """
    from bleak import BleakScanner

    if stop_when_found is None:
        stop_when_found = virtual
    temp = None
    transport = None
    if virtual:
        from .virtual import VirtualDevice

        transport = virtual_radio(radio)
        if transport is None:
            temp = VirtualDevice()
            await temp.start()
            transport = temp.transport
    scan_kw, _ = backend_kwargs({"transport": transport} if transport else None)
    found: dict[str, FoundDevice] = {}
    nape_seen = asyncio.Event()

    def on_adv(d, ad) -> None:
        uuids = tuple(u.lower() for u in ad.service_uuids)
        is_nape = P.SERVICE_UUID in uuids
        mode = P.parse_scan_mode(ad.manufacturer_data or {}) if is_nape else None
        if mode is None and d.address in found:
            mode = found[d.address].mode  # an advertisement without the scan response
        if is_nape or all_devices:
            found[d.address] = FoundDevice(ad.local_name or d.name, d.address, ad.rssi, is_nape, uuids,
                                           transport, mode)
        if is_nape and (mode is not None or not stop_when_found):
            nape_seen.set()

    try:
        try:
            async with BleakScanner(on_adv, **scan_kw):
                if stop_when_found:
                    try:
                        await asyncio.wait_for(nape_seen.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(timeout)
        except DeviceError:
            raise
        except Exception as e:
            raise DeviceError(f"BLE scan failed ({e}): no Bluetooth adapter reachable through BlueZ? For the simulated device use --virtual") from e
    finally:
        if temp is not None:
            await temp.stop()
    return sorted(found.values(), key=lambda f: (not f.is_nape, -f.rssi, f.address))
