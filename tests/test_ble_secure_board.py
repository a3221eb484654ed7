"""The board's own security on the virtual radio: the firmware under MicroPython, built by
``ble_app.make_app`` exactly as ``main.py`` builds it on the board (secure by default,
pairing window after power-on and after a long press of the pair button, bond limit,
bonds on the board's flash, owner key), against bleak + bumble centrals.

protocol/SECURITY.md states what these tests check.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from nape.ble import BleTransport, VirtualDevice, nsim_blob
from nape.ble import protocol as P
from nape.ble.bumble_backend import BumbleClient
from nape.cli import main
from nape.errors import NotBondedError
from nape.recorder import record
from tests.mpy import run_mpy

WINDOW_S = 8  # the virtual boards' pairing window here (the board's: config.BLE_PAIR_WINDOW_S)


@pytest.fixture(autouse=True)
def _no_user_state(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPE_VIRTUAL_RADIO", str(tmp_path / "no-radio.sock"))
    monkeypatch.setenv("NAPE_BLE_KEYSTORE", str(tmp_path / "default-keys.json"))
    monkeypatch.setenv("NAPE_OWNER_KEY", str(tmp_path / "no-owner.key"))


async def _link(vd: VirtualDevice, keys, *, pair: bool, owner_key: bytes | None = None) -> P.Status:
    """Connect as a central with the key store ``keys``; the status of an accepted link.

    Raises:
        NotBondedError: the board refused (the message says why).
    """
    tr = BleTransport(bumble={"transport": vd.transport, "keystore": str(keys)}, pair=pair,
                      owner_key=owner_key, connect_attempts=1, scan_timeout=5)
    try:
        await tr.connect()
        return await tr.read_status()
    finally:
        await tr.close()


async def _raw_attempt(vd: VirtualDevice, keys, *, pair: bool) -> dict:
    """A central that ignores the rules: subscribes to everything, asks for the whole
    history and live data, and tries to command; returns what it got (``dropped``: the
    board ended the link)."""
    got: dict = {"stream": 0, "event": 0, "responses": [], "write_errors": [], "encrypted": None,
                 "dropped": False}
    c = BleakClient(vd.info["address"], backend=BumbleClient, pair=pair,
                    bumble={"transport": vd.transport, "keystore": str(keys)})
    try:
        await c.connect()
        got["encrypted"] = c._backend.is_encrypted
        for uuid, name in ((P.STREAM_UUID, "stream"), (P.EVENT_UUID, "event")):
            await c.start_notify(uuid, lambda _ch, v, n=name: got.__setitem__(n, got[n] + 1))
        await c.start_notify(P.CONTROL_UUID, lambda _ch, v: got["responses"].append(bytes(v)))
        for cmd in (P.cmd_backfill_all(), P.cmd_start(), P.cmd_set_posture(30, 30, 10), P.cmd_calibrate()):
            try:
                await c.write_gatt_char(P.CONTROL_UUID, cmd, response=True)
            except BleakGATTProtocolError as e:
                got["write_errors"].append(e.args[0])
        await asyncio.sleep(1.0)
    except BleakGATTProtocolError:
        raise
    except Exception:  # BleakError: the link went down under us
        got["dropped"] = True
    finally:
        try:
            await c.disconnect()
        except Exception:
            pass
    return got


async def _wait_window_closed(status: P.Status, since: float) -> None:
    left = status.pair_window_left_s or 0
    await asyncio.sleep(max(0.0, left - (time.monotonic() - since)) + 0.5)


def test_window_refuses_outside_admits_inside_up_to_the_bond_limit(tmp_path):
    k = {n: tmp_path / f"{n}.json" for n in ("owner", "b", "c", "d", "e", "x")}

    async def go():
        async with VirtualDevice(nsim_blob(n=200000), speed=1.0, pair_window_s=WINDOW_S) as vd:
            t_owner = time.monotonic()
            st = await _link(vd, k["owner"], pair=True)  # in the power-on window
            assert st.secure and st.authorized and st.bonds == 1 and st.max_bonds == 4
            assert st.security & P.SEC_WINDOW_OPEN and 0 < st.pair_window_left_s <= WINDOW_S
            # an unbonded central that does not pair: no notification, no history, no write
            got = await _raw_attempt(vd, k["x"], pair=False)
            assert got["stream"] == got["event"] == 0 and not got["encrypted"]
            assert got["write_errors"] and all(e == 0x0F for e in got["write_errors"] if isinstance(e, int))
            await _wait_window_closed(st, t_owner)
            # outside the window: a second central's pairing is refused, and gets nothing
            with pytest.raises(NotBondedError, match="refused pairing.*nape pair"):
                await _link(vd, k["b"], pair=True)
            got = await _raw_attempt(vd, k["e"], pair=True)
            assert got["stream"] == got["event"] == 0 and got["dropped"]
            assert not any(r[0] & 0x80 and r[1] == 0 for r in got["responses"])  # nothing accepted
            with pytest.raises(NotBondedError, match="not bonded with this Nape"):  # its keys are useless
                await _link(vd, k["b"], pair=False)
            # the owner holds the button: the window opens again, up to the bond limit
            await vd.press_button(3500)
            for n in ("b", "c", "d"):
                st = await _link(vd, k[n], pair=True)
                assert st.authorized
            assert st.bonds == 4
            with pytest.raises(NotBondedError, match="refused pairing"):
                await _link(vd, k["e"], pair=True)  # a fifth: over the limit, even in the window
            st = await _link(vd, k["owner"], pair=False)
            assert st.authorized and st.bonds == 4
            return [e for e in vd.events if e["event"] == "fw"]

    fw = asyncio.run(go())
    assert any("pairing open" in e["line"] for e in fw)
