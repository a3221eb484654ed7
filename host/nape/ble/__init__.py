"""BLE: the Nape GATT service from the host side (bleak), and the virtual device (bumble).

- :class:`~nape.ble.transport.BleTransport`: a :class:`nape.transport.Transport` over
  bleak; reconnects with back-off and asks for a backfill from the last sequence number
  it saw.
- :func:`~nape.ble.scan.scan`: find Nape devices (``virtual=True``: on the virtual radio).
- :mod:`~nape.ble.bumble_backend`: bleak backend classes over bumble (no adapter needed).
- :class:`~nape.ble.virtual.VirtualDevice`: the firmware under MicroPython behind a
  bumble peripheral on a virtual radio shared over a socket.

bleak and bumble are imported lazily (``pip install nape[ble]``).
"""

from .protocol import CONTROL_UUID, EVENT_UUID, SERVICE_UUID, STATUS_UUID, STREAM_UUID
from .scan import FoundDevice, scan, virtual_radio
from .transport import BleTransport, LinkStats
from .virtual import VirtualDevice, default_radio_path, nsim_blob, serve_virtual_device

__all__ = [
    "SERVICE_UUID", "STREAM_UUID", "EVENT_UUID", "CONTROL_UUID", "STATUS_UUID",
    "BleTransport", "LinkStats", "FoundDevice", "scan", "virtual_radio", "VirtualDevice",
    "default_radio_path", "nsim_blob", "serve_virtual_device",
]
