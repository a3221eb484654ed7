"""The firmware under MicroPython → bumble peripheral → virtual radio → bleak (bumble backend) → recorder.

Every test here runs the real firmware (firmware/ble_app.py + ble_service.py +
ble_buffer.py + pipeline.py) in the unix MicroPython, with only the ``bluetooth``
module shimmed onto a bumble GATT server, and talks to it through bleak's public API.
The boards here run in development mode (``secure=False``, ``config.BLE_SECURE = 0``): these
tests are about the data path; tests/test_ble_secure_board.py runs the board's secure default.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError

from nape import wire
from nape.ble import BleTransport, VirtualDevice, nsim_blob, scan
from nape.ble import protocol as P
from nape.ble.bumble_backend import BumbleClient, BumbleScanner
from nape.errors import DeviceError
from nape.recorder import record
from nape.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wearer():
    """A short simulated day (both IMUs), or a still wearer if the simulator is missing."""
    try:
        from nape.sim import SimSettings, simulate_day
    except ImportError:
        return None
    return simulate_day(seed=3, settings=SimSettings(time_scale=0.1))


def _file_seqs(path) -> tuple[list[int], list[int]]:
    """(sequence numbers, flags) of every sample in a .nape file, in file order."""
    seqs, flags = [], []
    for _t, p in open_recording(path).iter_packets():
        pkt = wire.decode_packet(p)
        if isinstance(pkt, wire.SamplesPacket):
            seqs.extend(range(pkt.seq, pkt.seq + pkt.count))
            flags.extend(int(f) for f in pkt.flags)
    return seqs, flags


async def _drop_every(vd: VirtualDevice, period_s: float, times: int, jitter: np.random.Generator,
                      links: list | None = None) -> int:
    """Drop the link ``times`` times, ``period_s`` (jittered) apart; with ``links`` (the
    transport's on_link events) only once the link is up again, so each drop hits a
    working stream."""
    n = 0
    for _ in range(times):
        if links is not None:
            while not links or links[-1] not in ("connected", "reconnected"):
                await asyncio.sleep(0.01)
        await asyncio.sleep(period_s * (0.5 + jitter.random()))
        n += await vd.drop_link()
    return n


def test_scan_virtual_starts_a_virtual_device_and_finds_it(tmp_path):
    found = asyncio.run(scan(virtual=True, radio=str(tmp_path / "no-radio-here.sock"), timeout=10))
    assert [f.name for f in found if f.is_nape] == ["Nape"]
    assert found[0].transport is not None and found[0].address == "C0:4E:41:50:45:01"


def test_bleak_api_on_the_bumble_backend():
    async def main():
        async with VirtualDevice(nsim_blob(n=6000), speed=1.0, secure=False) as vd:
            found = await scan(virtual=True, radio=str(vd.radio_path), timeout=5)
            assert found and found[0].is_nape
            dev = await BleakScanner.find_device_by_name("Nape", timeout=5, backend=BumbleScanner,
                                                         bumble=vd.bumble_args)
            assert dev is not None and dev.address == vd.info["address"]
            seen = []
            async with BleakClient(dev, backend=BumbleClient, bumble=vd.bumble_args,
                                   disconnected_callback=seen.append) as c:
                assert c.is_connected and c.mtu_size == 247
                svc = c.services.get_service(P.SERVICE_UUID)
                props = {ch.uuid: sorted(ch.properties) for ch in svc.characteristics}
                assert props == {P.STREAM_UUID: ["notify"], P.EVENT_UUID: ["notify"],
                                 P.CONTROL_UUID: ["notify", "write", "write-without-response"],
                                 P.STATUS_UUID: ["notify", "read"]}
                assert svc.get_characteristic(P.STREAM_UUID).max_write_without_response_size == 244
                assert (await c.read_gatt_char("00002a00-0000-1000-8000-00805f9b34fb")) == b"Nape"
                st = P.parse_status(await c.read_gatt_char(P.STATUS_UUID))
                assert st.imu_mask == 3 and st.firmware_version and st.mtu == 247
                with pytest.raises(BleakGATTProtocolError):
                    await c.write_gatt_char(P.STATUS_UUID, b"\x00", response=True)  # not writable
                responses, values = asyncio.Queue(), []
                await c.start_notify(P.CONTROL_UUID, lambda _ch, v: responses.put_nowait(bytes(v)))
                await c.start_notify(P.STREAM_UUID, lambda _ch, v: values.append(bytes(v)))
                await c.write_gatt_char(P.CONTROL_UUID, P.cmd_start(), response=True)
                r = P.parse_control(await asyncio.wait_for(responses.get(), 2))
                assert r.opcode == P.CMD_START and r.ok
                await asyncio.sleep(0.5)
                await c.stop_notify(P.STREAM_UUID)
                n = len(values)
                assert n >= 5 and all(v[0] & 0xC0 == 0xC0 for v in values)  # one packet per value
                await c.write_gatt_char(P.CONTROL_UUID, b"\x42", response=True)
                assert P.parse_control(await asyncio.wait_for(responses.get(), 2)).result == 1
            assert seen == []  # our own disconnect is not reported as a link loss
            await asyncio.sleep(0.1)
            assert vd.events[-1]["event"] == "disconnection"
            with pytest.raises(BleakError):
                await BleakClient("C0:00:00:00:00:99", backend=BumbleClient, timeout=0.5,
                                  bumble=vd.bumble_args).connect()

    asyncio.run(main())


def test_record_over_ble_with_forced_disconnects_keeps_every_sample_once(wearer, tmp_path):
    n = 6000
    blob = nsim_blob(wearer, n=n) if wearer is not None else nsim_blob(n=n)
    path = tmp_path / "ble.nape"

    async def main():
        async with VirtualDevice(blob, speed=0, secure=False) as vd:
            links = []
            tr = BleTransport(bumble=vd.bumble_args, on_link=lambda ev, **kw: links.append(ev))
            dropper = asyncio.create_task(_drop_every(vd, 0.3, 4, np.random.default_rng(1), links))
            stats = await record(tr, path)
            dropper.cancel()
            return stats, tr.stats, links

    stats, link, links = asyncio.run(main())
    assert stats.samples == n and stats.lost_samples == 0 and stats.duplicate_samples == 0
    assert stats.malformed == 0
    seqs, flags = _file_seqs(path)
    assert seqs == list(range(n))
    assert link.disconnects >= 2 and links.count("reconnected") == link.disconnects
    # reconnect time is a figure for the benches (README), not a timed assertion here
    assert len(link.reconnect_s) == link.disconnects and min(link.reconnect_s) > 0
    assert link.mtu == 247
    meta = open_recording(path).metadata
    assert meta["source"] == "ble" and meta["imu_roles"] == ["trunk", "head"]


def test_default_mtu_23_fragments_and_still_delivers_everything(tmp_path):
    n = 1500
    path = tmp_path / "mtu23.nape"

    async def main():
        async with VirtualDevice(nsim_blob(n=n), speed=0, secure=False) as vd:
            tr = BleTransport(bumble=dict(vd.bumble_args, mtu=0))
            dropper = asyncio.create_task(_drop_every(vd, 0.3, 1, np.random.default_rng(2)))
            stats = await record(tr, path)
            dropper.cancel()
            return stats, tr.stats

    stats, link = asyncio.run(main())
    assert link.mtu == 23
    assert stats.samples == n and stats.lost_samples == 0 and stats.duplicate_samples == 0
    assert stats.notifications >= 2 * n  # a 55-byte one-sample packet takes 3 notifications
    assert _file_seqs(path)[0] == list(range(n))


def test_offline_buffer_spills_to_flash_and_backfills_before_live(tmp_path):
    n = 4000  # 800 packets: 64 in RAM, the rest spilled to the file
    path = tmp_path / "late.nape"

    async def main():
        async with VirtualDevice(nsim_blob(n=n), speed=0, ram_slots=64, flash_slots=2048, secure=False) as vd:
            await vd.wait_event("fw", timeout=30)
            while not any(e.get("line", "").startswith("NAPE-APP source_done") for e in vd.events):
                await asyncio.sleep(0.05)
            tr = BleTransport(bumble=vd.bumble_args)
            stats = await record(tr, path)
            spill = (vd.workdir / "spill.bin").stat().st_size
            return stats, tr.stats, spill

    stats, link, spill = asyncio.run(main())
    assert spill >= (800 - 64) * 244 - 16 * 244
    assert stats.samples == n and stats.lost_samples == 0
    seqs, flags = _file_seqs(path)
    assert seqs == list(range(n))
    assert all(f & 0x40 for f in flags)  # all re-sent from the offline buffer
    assert link.backfill_requests == [0] and link.last_status.overflow_samples == 0


_CRASHING_CENTRAL = r"""
import asyncio, os, sys
from bleak import BleakClient
from nape.ble.bumble_backend import BumbleClient
from nape.ble import protocol as P

async def main():
    c = BleakClient(sys.argv[2], backend=BumbleClient, bumble={"transport": sys.argv[1]})
    await c.connect()
    await c.start_notify(P.STREAM_UUID, lambda *_: None)
    await c.write_gatt_char(P.CONTROL_UUID, P.cmd_start(), response=True)
    await asyncio.sleep(0.3)
    print("connected", flush=True)
    os._exit(3)  # no disconnect, no cleanup: a crashed host
asyncio.run(main())
"""


def test_a_crashed_central_does_not_leave_the_peripheral_connected(tmp_path):
    path = tmp_path / "after-crash.nape"

    async def main():
        async with VirtualDevice(nsim_blob(n=3000), speed=10.0, secure=False) as vd:
            env = dict(os.environ, PYTHONPATH=str(ROOT / "host"))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _CRASHING_CENTRAL, vd.transport, vd.info["address"],
                stdout=asyncio.subprocess.PIPE, env=env)
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
            assert b"connected" in out and proc.returncode == 3
            ev = await vd.wait_event("disconnection", timeout=5)
            assert ev["reason"] == 0x08  # the radio timed the link out
            assert (await vd.stats())["hci_clients"] == 0
            tr = BleTransport(bumble=vd.bumble_args)
            return await record(tr, path)

    stats = asyncio.run(main())
    assert stats.samples == 3000 and stats.lost_samples == 0
    assert _file_seqs(path)[0] == list(range(3000))


def test_recording_fails_cleanly_when_the_device_disappears(tmp_path):
    path = tmp_path / "gone.nape"

    async def main():
        vd = VirtualDevice(nsim_blob(n=60000), speed=1.0, secure=False)
        await vd.start()
        tr = BleTransport(bumble=vd.bumble_args, give_up_after_s=1.0, backoff_max_s=0.2)

        async def kill_soon():
            await asyncio.sleep(2.5)  # after the recorder's first 1-s chunk
            await vd.stop()  # radio, peripheral and firmware gone at once

        killer = asyncio.create_task(kill_soon())
        try:
            with pytest.raises(DeviceError, match="link lost"):
                await record(tr, path)
        finally:
            await killer
            await vd.stop()

    asyncio.run(main())
    seqs, _ = _file_seqs(path)  # what arrived before the loss is on disk, in order
    assert len(seqs) > 20 and seqs == list(range(len(seqs)))


@pytest.mark.slow
def test_realtime_latency_and_throughput(wearer, tmp_path, capsys):
    """Real-time stream (100 Hz, two IMUs): notification rate and sample-to-file latency."""
    import nape.recording as recording

    n = 3000  # 30 s
    blob = nsim_blob(wearer, n=n) if wearer is not None else nsim_blob(n=n)
    path = tmp_path / "rt.nape"
    writes: list[tuple[float, list[bytes]]] = []
    arrivals: list[tuple[float, bytes]] = []
    orig = recording.RecordingWriter.write_packets

    def spy(self, packets, host_time_s):
        out = orig(self, packets, host_time_s)
        writes.append((time.time(), list(packets)))
        return out

    async def main():
        async with VirtualDevice(blob, speed=1.0, secure=False) as vd:
            tr = BleTransport(bumble=vd.bumble_args)
            inner = tr._on_stream

            def on_stream(ch, v):
                arrivals.append((time.time(), bytes(v)))
                inner(ch, v)

            tr._on_stream = on_stream
            t0 = time.monotonic()
            stats = await record(tr, path)
            return stats, time.monotonic() - t0, vd.info["start_unix_ms"] / 1000.0

    recording.RecordingWriter.write_packets = spy
    try:
        stats, dt, start = asyncio.run(main())
    finally:
        recording.RecordingWriter.write_packets = orig
    assert stats.samples == n
    live = [(t, v) for t, v in arrivals if v[0] & 0xC0 == 0xC0 and not v[15] & 0x40]
    notif_lat = [t - (start + (int.from_bytes(v[5:9], "little") + v[4] - 1) / 100.0) for t, v in live]
    file_lat = [t - (start + (wire.decode_packet(p).seq + wire.decode_packet(p).count - 1) / 100.0)
                for t, ps in writes for p in ps if not wire.decode_packet(p).flags[0] & 0x40]
    rate = stats.notifications / dt
    with capsys.disabled():
        print(f"\nreal time: {stats.notifications} notifications in {dt:.1f} s = {rate:.1f}/s; "
              f"bytes/sample on the stream = {sum(len(v) for _, v in arrivals) / n:.1f}; "
              f"newest-sample-to-notification median {1000 * np.median(notif_lat):.0f} ms "
              f"p95 {1000 * np.percentile(notif_lat, 95):.0f} ms; sample-to-file median "
              f"{1000 * np.median(file_lat):.0f} ms, max {1000 * max(file_lat):.0f} ms")
    assert 18 <= rate <= 22
    assert np.median(file_lat) < 1.5


@pytest.mark.slow
def test_whole_simulated_day_with_many_disconnects(tmp_path, capsys):
    from nape.sim import simulate_day

    day = simulate_day(seed=0)
    n = len(day.t)
    path = tmp_path / "day.nape"

    async def main():
        async with VirtualDevice(nsim_blob(day), speed=0, ram_slots=512, flash_slots=8192, secure=False) as vd:
            tr = BleTransport(bumble=vd.bumble_args)
            dropper = asyncio.create_task(_drop_every(vd, 1.0, 30, np.random.default_rng(5)))
            stats = await record(tr, path)
            dropper.cancel()
            return stats, tr.stats

    t0 = time.monotonic()
    stats, link = asyncio.run(main())
    dt = time.monotonic() - t0
    with capsys.disabled():
        r = np.array(link.reconnect_s) * 1000
        print(f"\nwhole day: {n} samples in {dt:.0f} s ({n / dt:.0f} samples/s), {link.disconnects} "
              f"disconnects, reconnect median {np.median(r):.0f} ms, p90 {np.percentile(r, 90):.0f} ms, "
              f"max {r.max():.0f} ms")
    assert stats.samples == n and stats.lost_samples == 0 and stats.duplicate_samples == 0
    assert _file_seqs(path)[0] == list(range(n))
    assert link.disconnects >= 10


def test_ten_minutes_of_wear_with_ten_forced_disconnects_every_sample_once(tmp_path, capsys):
    """Done-when check of issue 5: >= 10 min of simulated wear from the MicroPython
    firmware over the bumble radio through bleak into a .nape file, 10 forced
    disconnects, every sample exactly once by sequence number."""
    from nape.sim import SimSettings, simulate_day

    day = simulate_day(seed=4, settings=SimSettings(time_scale=0.7))  # the scripted day, 10.8 min
    n = len(day.t)
    assert n >= 60000  # >= 10 min at 100 Hz
    path = tmp_path / "ten.nape"

    async def main():
        async with VirtualDevice(nsim_blob(day), speed=0, ram_slots=512, flash_slots=8192, secure=False) as vd:
            links = []
            tr = BleTransport(bumble=vd.bumble_args, on_link=lambda ev, **kw: links.append(ev))
            dropper = asyncio.create_task(_drop_every(vd, 0.6, 10, np.random.default_rng(7), links))
            stats = await record(tr, path)
            drops = await dropper  # all ten happened before the stream ended
            return stats, tr.stats, drops

    t0 = time.monotonic()
    stats, link, drops = asyncio.run(main())
    dt = time.monotonic() - t0
    with capsys.disabled():
        r = np.array(link.reconnect_s) * 1000
        print(f"\n10 min / 10 drops: {n} samples ({n / 6000:.1f} min) in {dt:.1f} s, {link.disconnects} disconnects, reconnect "
              f"median {np.median(r):.0f} ms, max {r.max():.0f} ms, backfilled {stats.backfilled_samples}")
    assert drops == 10 and link.disconnects == 10 and len(link.reconnect_s) == 10
    assert stats.samples == n and stats.lost_samples == 0 and stats.duplicate_samples == 0
    seqs, _ = _file_seqs(path)
    assert seqs == list(range(n))  # every sample exactly once, in order
    assert stats.backfilled_samples > 0
