"""Bonding with a Nape: LE Secure Connections, Just Works (protocol/SECURITY.md).

The board has no display and no keypad, so it cannot show or take a passkey; the link is
encrypted (ECDH) without protection against an active man in the middle during pairing.
The board accepts a bond only inside its pairing window and within its bond limit.
"""

from __future__ import annotations

from ..errors import DeviceError, NotBondedError
from . import protocol as P


async def pair(transport, timeout_s: float) -> str:
    """Find the device ``transport`` (a :class:`nape.ble.BleTransport`) points at, bond with it
    and check it reports an encrypted link. Returns its address.

    Raises:
        NotBondedError: the board refused the bond (outside its pairing window, or over its
            bond limit); ``.address`` names the board (its keys stored here are useless).
        DeviceError: no device found, pairing failed, or the link is not encrypted.
    """
    from bleak import BleakClient

    from .transport import BleTransport

    dev = await transport._find()
    client = BleakClient(dev, pair=True, timeout=timeout_s, **transport._client_kw)
    try:
        async with client as c:
            st = P.parse_status(await c.read_gatt_char(P.STATUS_UUID))
            st = await BleTransport._settled_status(c, st)
            if not st.flags & P.ST_ENCRYPTED:
                raise DeviceError(f"{dev.address}: paired, but the device reports an unencrypted link")
            if st.secure and not st.bonded:
                raise _refused(dev.address)
    except DeviceError:
        raise
    except Exception as e:
        if getattr(getattr(client, "_backend", None), "paired_once", False):
            raise _refused(dev.address) from e  # the board dropped the link after pairing
        raise DeviceError(f"pairing with {dev.address} failed: {e}") from e
    return dev.address


def _refused(address: str) -> NotBondedError:
    from .transport import PAIRING_REFUSED

    e = NotBondedError(PAIRING_REFUSED)
    e.address = address  # type: ignore[attr-defined]
    return e


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
