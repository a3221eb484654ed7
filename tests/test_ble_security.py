"""Secure mode: LE Secure Connections pairing, bonding kept by the firmware, encrypted characteristics.

The firmware (MicroPython) asks for an encrypted link (``ble_service.NapeService(secure=True)``:
write-encrypted control, read-encrypted status, bonding, LE Secure Connections) and keeps
the bonding keys itself through the ``_IRQ_GET_SECRET`` / ``_IRQ_SET_SECRET`` IRQs; the
bumble peripheral's key store is the firmware. The central is bleak on the bumble backend
with a JSON key store at an explicit path.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from nape.ble import BleTransport, VirtualDevice, nsim_blob
from nape.ble import protocol as P
from nape.ble.bumble_backend import BumbleClient
from nape.errors import DeviceError
from nape.recorder import record
from tests.mpy import run_mpy


def test_pairing_bonding_and_encrypted_characteristics(tmp_path):
    keys = tmp_path / "central-keys.json"
    bonds = tmp_path / "firmware-bonds.txt"

    async def first_run():
        async with VirtualDevice(nsim_blob(n=1500), speed=0, secure=True, secrets=bonds) as vd:
            addr, args = vd.info["address"], vd.bumble_args
            async with BleakClient(addr, backend=BumbleClient, bumble=args) as c:
                assert not c._backend.is_encrypted
                with pytest.raises(BleakGATTProtocolError) as e:
                    await c.read_gatt_char(P.STATUS_UUID)
                assert e.value.args[0] == 0x0F  # insufficient encryption
                with pytest.raises(BleakGATTProtocolError):
                    await c.write_gatt_char(P.CONTROL_UUID, P.cmd_start(), response=True)
            with pytest.raises(DeviceError):  # a transport that may not pair gets nothing
                await BleTransport(bumble=args, connect_attempts=1).connect()
            async with BleakClient(addr, backend=BumbleClient, pair=True,
                                   bumble=dict(args, keystore=keys)) as c:
                assert c._backend.is_encrypted
                st = P.parse_status(await c.read_gatt_char(P.STATUS_UUID))
                assert st.flags & P.ST_ENCRYPTED
            return [e for e in vd.events if e["event"] == "encryption"]

    enc = asyncio.run(first_run())
    assert enc and all(e["encrypted"] for e in enc)
    # the firmware holds the bond (opaque records from the secret IRQs), the central its keys
    assert bonds.read_text().strip() and json.loads(keys.read_text())

    async def second_run():  # a rebooted device: bond from the firmware's file, no pairing
        async with VirtualDevice(nsim_blob(n=1500), speed=0, secure=True, secrets=bonds) as vd:
            tr = BleTransport(bumble=dict(vd.bumble_args, keystore=keys))
            stats = await record(tr, tmp_path / "secure.nape")
            return stats, tr.stats, vd.events

    stats, link, events = asyncio.run(second_run())
    assert stats.samples == 1500 and stats.lost_samples == 0
    assert link.last_status.flags & P.ST_ENCRYPTED
    assert any(e["event"] == "encryption" and e["encrypted"] for e in events)


def test_firmware_bond_store_keeps_records_across_reboots(tmp_path):
    path = tmp_path / "bonds.txt"
    code = r"""
import sys, json, ble_service
print(sys.implementation.name)
s = ble_service.BondStore("PATH", max_entries=3)
s.set(1, b"peer-a", b"\x01\x02")
s.set(1, b"peer-b", b"\x03")
s.set(2, b"own", b"\x04")
s.set(1, b"peer-a", b"\x05")          # replaces
t = ble_service.BondStore("PATH", max_entries=3)   # "reboot"
out = [t.get(1, 0, b"peer-a"), t.get(1, 0, None), t.get(1, 1, None), t.get(1, 2, None), t.get(2, 0, b"own")]
t.set(1, b"peer-b", None)             # delete
t.set(3, b"x", b"\x06"); t.set(3, b"y", b"\x07")   # over max_entries: the oldest subscription goes, bonds stay
own = t.get(2, 0, b"own")
print(json.dumps([None if v is None else v.hex() for v in out] + [len(t.entries), own and own.hex(), t.get(3, 0, b"x")]))
""".replace("PATH", str(path))
    out = run_mpy(code).decode().splitlines()
    assert out[0] == "micropython"
    assert json.loads(out[1]) == ["05", "03", "05", None, "04", 3, "04", None]
