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


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def test_owner_bond_survives_reboot_and_host_restart_and_both_sides_can_remove_it(tmp_path, capsys):
    keys = tmp_path / "owner.json"
    bonds = tmp_path / "board-flash-bonds.txt"
    n = 3000

    async def go():
        async with VirtualDevice(nsim_blob(n=n), speed=0, secrets=bonds, pair_window_s=3) as vd:
            radio = str(vd.radio_path)
            assert await _cli("pair", "--virtual", "--radio", radio, "--keystore", str(keys)) == 0
            await vd.reboot()  # power cycle: the bonds come back from the board's flash
            await asyncio.sleep(3.5)  # ... and the power-on window has closed again
            # a host restart: a new transport, only the stored keys, no pairing
            tr = BleTransport(bumble={"transport": vd.transport, "keystore": str(keys)}, pair=False)
            stats = await record(tr, tmp_path / "after-reboot.nape")
            # the board buffered the whole file before we came: all of it is backfill
            assert stats.samples == n and stats.lost_samples == 0 and stats.backfilled_samples > 0
            assert tr.stats.last_status.authorized and tr.stats.last_status.bonds == 1
            # the board's side: a bonded central asks it to forget this bond
            tr = BleTransport(bumble={"transport": vd.transport, "keystore": str(keys)}, pair=False,
                              connect_attempts=1)
            await tr.connect()
            await tr.command(P.cmd_forget())
            await tr.close()
            with pytest.raises(NotBondedError, match="not bonded with this Nape"):
                await _link(vd, keys, pair=False)
            # re-pair in a window opened by a long press, then a very long press forgets all
            await vd.press_button(3500)
            assert (await _link(vd, keys, pair=True)).authorized
            await vd.press_button(10500)
            with pytest.raises(NotBondedError, match="not bonded with this Nape"):
                await _link(vd, keys, pair=False)
            # the host's side: `nape pair --forget` leaves this computer without keys
            await vd.press_button(3500)
            assert (await _link(vd, keys, pair=True)).authorized
            assert await _cli("pair", "--forget", "--virtual", "--radio", radio, "--keystore", str(keys)) == 0
            got = await _raw_attempt(vd, keys, pair=False)
            assert got["stream"] == got["event"] == 0 and not got["encrypted"]
            return [e["line"] for e in vd.events if e["event"] == "fw"]

    lines = asyncio.run(go())
    assert any("every bond forgotten" in ln for ln in lines)
    out = capsys.readouterr().out
    assert "forgot 1 bond" in out and "forgot this computer" in out


def test_owner_key_a_bonded_central_without_it_gets_nothing(tmp_path):
    key = os.urandom(32)

    async def go():
        async with VirtualDevice(nsim_blob(n=200000), speed=1.0, owner_key=key) as vd:
            # bonded in the window, but without the owner key: no data, no command
            got = await _raw_attempt(vd, tmp_path / "stranger.json", pair=True)
            assert got["encrypted"] and got["stream"] == got["event"] == 0
            answers = [P.parse_control(r) for r in got["responses"]]
            assert answers and all(a.result == P.RES_NOT_AUTHORIZED for a in answers)
            with pytest.raises(NotBondedError, match="asks for its owner key"):
                await _link(vd, tmp_path / "stranger.json", pair=False)
            with pytest.raises(NotBondedError, match="rejected the owner key"):
                await _link(vd, tmp_path / "stranger.json", pair=False, owner_key=os.urandom(32))
            st = await _link(vd, tmp_path / "owner.json", pair=True, owner_key=key)
            assert st.authorized and st.security & P.SEC_PROVED
            tr = BleTransport(bumble={"transport": vd.transport, "keystore": str(tmp_path / "owner.json")},
                              owner_key=key, backfill=False)
            await tr.connect()
            kinds = []
            async for note in tr.notifications():
                kinds.append(note.channel)
                if kinds.count("stream") >= 20:
                    break
            await tr.close()
            assert kinds.count("stream") >= 20

    asyncio.run(go())


def test_firmware_owner_proof_is_rfc2104_hmac_sha256():
    """The board's HMAC (MicroPython has no hmac module) equals Python's hmac, and the
    host's proof is what the board checks."""
    import hashlib
    import hmac

    out = run_mpy(r"""
import sys, binascii, ble_owner
print(sys.implementation.name)
for key, msg in ((b"k" * 32, b"nape-owner-v1" + b"n" * 16), (b"x" * 80, b"abc"), (b"", b"")):
    print(binascii.hexlify(ble_owner.hmac_sha256(key, msg)).decode())
print(ble_owner.same_bytes(b"abc", b"abc"), ble_owner.same_bytes(b"abc", b"abd"), ble_owner.same_bytes(b"a", b"ab"))
""").decode().split()
    assert out[0] == "micropython"
    want = [hmac.new(k, m, hashlib.sha256).hexdigest()
            for k, m in ((b"k" * 32, b"nape-owner-v1" + b"n" * 16), (b"x" * 80, b"abc"), (b"", b""))]
    assert out[1:4] == want
    assert out[4:] == ["True", "False", "False"]
    assert P.owner_proof(b"k" * 32, b"n" * 16).hex() == want[0]


def test_host_constants_equal_the_firmware_config():
    out = run_mpy("import config, ble_service\nprint(config.BLE_PAIR_WINDOW_S, config.PAIR_PRESS_MS, "
                  "ble_service.AUTH_LABEL.decode(), ble_service.STATUS_VERSION, ble_service.RES_NOT_AUTHORIZED, "
                  "config.BLE_SECURE)").decode().split()
    assert out == [str(P.PAIR_WINDOW_S), str(P.PAIR_PRESS_S * 1000), P.AUTH_LABEL.decode(),
                   str(P.STATUS_VERSION), str(P.RES_NOT_AUTHORIZED), "1"]


def test_record_and_rom_against_a_board_that_refuses_say_what_to_do(tmp_path, capsys):
    async def go():
        async with VirtualDevice(nsim_blob(n=200000), speed=1.0) as vd:
            radio = str(vd.radio_path)
            rc_rec = await _cli("record", str(tmp_path / "x.nape"), "--virtual", "--radio", radio,
                                "--quiet", "--scan-timeout", "5")
            err_rec = capsys.readouterr().err.strip().splitlines()
            rc_rom = await _cli("rom", "--virtual-radio", "--radio", radio, "--out", str(tmp_path / "rom"),
                                "--scan-timeout", "5")
            err_rom = capsys.readouterr().err.strip().splitlines()
            return rc_rec, err_rec, rc_rom, err_rom

    rc_rec, err_rec, rc_rom, err_rom = asyncio.run(go())
    for rc, err in ((rc_rec, err_rec), (rc_rom, err_rom)):
        assert rc == 1 and len(err) == 1, err
        assert err[0].startswith("nape: error: not bonded with this Nape:")
        assert "hold its button 3 s, then run `nape pair` within 120 s" in err[0]
    assert not (tmp_path / "x.nape").exists()


def test_scan_shows_the_security_mode_and_the_pairing_window(tmp_path, capsys):
    from nape.ble import scan

    async def go():
        async with VirtualDevice(nsim_blob(n=200000), speed=1.0, pair_window_s=3) as vd:
            first = await scan(virtual=True, radio=str(vd.radio_path), timeout=5)
            await asyncio.sleep(3.5)  # the window closes: the board advertises the new mode
            later = await scan(virtual=True, radio=str(vd.radio_path), timeout=5)
            rc = await _cli("scan", "--virtual", "--timeout", "3")  # (no radio at the default path)
        async with VirtualDevice(nsim_blob(n=200000), speed=1.0, secure=False) as vd:
            dev = await scan(virtual=True, radio=str(vd.radio_path), timeout=5)
        return first, later, dev, rc

    first, later, dev, rc = asyncio.run(go())
    assert [d.security() for d in first] == ["secure, pairing open"]
    assert [d.security() for d in later] == ["secure, pairing closed"]
    assert dev[0].security().startswith("OPEN (development mode")
    assert rc == 0 and "security" in capsys.readouterr().out
