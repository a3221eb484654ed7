"""Bonding with a Nape: LE Secure Connections, Just Works (protocol/SPEC.md, "Security").

The board has no display and no keypad, so it cannot show or take a passkey; the link is
encrypted (ECDH) without protection against an active man in the middle during pairing.
"""

from __future__ import annotations

from ..errors import DeviceError
from . import protocol as P


async def pair(transport, timeout_s: float) -> str:
    """Find the device ``transport`` (a :class:`nape.ble.BleTransport`) points at, bond with it
    and check it reports an encrypted link. Returns its address.

    Raises:
        DeviceError: no device found, pairing failed, or the link is not encrypted.
    """
    from bleak import BleakClient

    dev = await transport._find()
    try:
        async with BleakClient(dev, pair=True, timeout=timeout_s, **transport._client_kw) as c:
            st = P.parse_status(await c.read_gatt_char(P.STATUS_UUID))
            if not st.flags & P.ST_ENCRYPTED:
                raise DeviceError(f"{dev.address}: paired, but the device reports an unencrypted link")
    except DeviceError:
        raise
    except Exception as e:
        raise DeviceError(f"pairing with {dev.address} failed: {e}") from e
    return dev.address


async def unpair(address: str) -> None:
    """Remove the bond with ``address`` from BlueZ (a real adapter).

    Raises:
        DeviceError: BlueZ cannot be reached or refuses.
    """
    from bleak import BleakClient

    try:
        await BleakClient(address).unpair()
    except Exception as e:
        raise DeviceError(f"cannot remove the bond with {address} ({e}): no Bluetooth adapter reachable "
                          "through BlueZ? For the virtual Nape use --virtual") from e
