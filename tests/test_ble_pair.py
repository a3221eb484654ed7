"""``nape pair`` on the virtual radio: Just Works bonding, the bond survives a peripheral
reboot, ``--forget`` removes it, and an unbonded central gets no data and cannot command.

The virtual Nape runs in secure mode (``firmware/ble_service.py``, ``secure=True``): the
firmware keeps its bonds in a file through MicroPython's secret IRQs; the central (bleak
on the bumble backend) keeps its keys in the JSON key store ``nape pair`` writes.
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
from nape.cli import main
from nape.errors import DeviceError


@pytest.fixture(autouse=True)
def _no_user_state(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPE_VIRTUAL_RADIO", str(tmp_path / "no-radio.sock"))
    monkeypatch.setenv("NAPE_BLE_KEYSTORE", str(tmp_path / "default-keys.json"))


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _bonded_link(vd: VirtualDevice, keys) -> P.Status:
    """Connect without pairing (only a stored bond can encrypt) and return the status."""
    tr = BleTransport(bumble={"transport": vd.transport, "keystore": str(keys)}, pair=False,
                      connect_attempts=1, scan_timeout=5)
    try:
        await tr.connect()
        return await tr.read_status()
    finally:
        await tr.close()


async def _unbonded_gets_nothing(vd: VirtualDevice, keys) -> int:
    """An unbonded central: control writes refused, no stream data. Returns stream values seen."""
    values = []
    async with BleakClient(vd.info["address"], backend=BumbleClient,
                           bumble={"transport": vd.transport, "keystore": str(keys)}) as c:
        assert not c._backend.is_encrypted
        with pytest.raises(BleakGATTProtocolError) as e:
            await c.write_gatt_char(P.CONTROL_UUID, P.cmd_backfill_all(), response=True)
        assert e.value.args[0] == 0x0F  # insufficient encryption
        with pytest.raises(BleakGATTProtocolError):
            await c.read_gatt_char(P.STATUS_UUID)
        await c.start_notify(P.STREAM_UUID, lambda _ch, v: values.append(bytes(v)))
        await c.write_gatt_char(P.CONTROL_UUID, P.cmd_start(), response=False)  # without response
        await asyncio.sleep(1.0)
    return len(values)


def test_pair_bond_survives_reboot_and_forget_removes_it(tmp_path, capsys):
    keys = tmp_path / "keys.json"
    bonds = tmp_path / "firmware-bonds.txt"

    async def go():
        async with VirtualDevice(nsim_blob(n=100000), speed=1.0, secure=True, secrets=bonds) as vd:
            radio = str(vd.radio_path)
            assert await _unbonded_gets_nothing(vd, keys) == 0
            with pytest.raises(DeviceError):
                await _bonded_link(vd, keys)  # no bond yet: no status, no stream
            assert await _cli("pair", "--virtual", "--radio", radio, "--keystore", str(keys)) == 0
            st = await _bonded_link(vd, keys)
            assert st.flags & P.ST_ENCRYPTED
            boot0 = st.boot_id
            await vd.reboot()  # power cycle: the firmware reloads its bonds from flash
            st = await _bonded_link(vd, keys)
            assert st.flags & P.ST_ENCRYPTED and st.boot_id != boot0
            assert await _cli("pair", "--forget", "--virtual", "--keystore", str(keys)) == 0
            with pytest.raises(DeviceError):
                await _bonded_link(vd, keys)
            assert await _unbonded_gets_nothing(vd, keys) == 0

    asyncio.run(go())
    out = capsys.readouterr().out
    assert "paired with C0:4E:41:50:45:01" in out and "Just Works" in out and "forgot 1 bond" in out
    assert bonds.read_text().strip()  # the firmware still holds its side (re-pairing replaces it)


def test_just_works_keys_are_not_mitm_protected(tmp_path):
    """What the central stored after ``nape pair``: an LE Secure Connections key that is
    *not* authenticated (no MITM protection), as documented for a display-less board."""
    keys = tmp_path / "keys.json"

    async def go():
        async with VirtualDevice(nsim_blob(n=3000), speed=1.0, secure=True,
                                 secrets=tmp_path / "b.txt") as vd:
            assert await _cli("pair", "--virtual", "--radio", str(vd.radio_path), "--keystore", str(keys)) == 0

    asyncio.run(go())
    data = json.loads(keys.read_text())
    (peers,) = data.values()
    (entry,) = peers.values()
    assert entry["ltk"]["authenticated"] is False
    assert len(bytes.fromhex(entry["ltk"]["value"])) == 16


def test_forget_without_a_keystore_and_pair_without_a_radio(tmp_path, capsys):
    assert main(["pair", "--forget", "--virtual", "--keystore", str(tmp_path / "none.json")]) == 0
    assert "forgot 0 bonds" in capsys.readouterr().out
    assert main(["pair", "--virtual", "--radio", str(tmp_path / "nothing.sock")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nape: error: no virtual Nape running")
