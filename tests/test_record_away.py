"""``nape record`` against a board that goes out of range and comes back: the whole firmware
on the virtual board (``VirtualDevice(away_s=...)``: off the air from board second 10 to
90, light-sleeping in its saver and advertising only in its windows, as on a board), the
host's recorder keeps reconnecting with its back-off and, once the board is found through
an advertising window, backfills the SAMPLES it buffered, the day log's reduced-rate LOG
packets, its marks and the jolt windows it kept. Checked in the ``.nape`` file: every
sequence number of the boot once (0 lost, 0 duplicated), both rates present, every bump
of the away span as a whole EVENT window; the board was found within one advertising
period after coming back in range."""

from __future__ import annotations

import asyncio

from bench.offline_day import Wearer
from nape import wire
from nape.ble import BleTransport, VirtualDevice
from nape.ble.virtual import nsim_blob
from nape.cli.device import link_line
from nape.recorder import record
from nape.recording import open_recording
from nape.wire_log import decode_log_packet

AWAY = (10.0, 90.0)
TOTAL_S = 120.0


async def _record(tmp_path):
    wearer = Wearer(TOTAL_S, jolt_every_s=30.0, hunch_every_s=1000.0)  # bumps at 20, 50, 80, 110 s
    path = tmp_path / "away.nape"
    links: list[str] = []
    async with VirtualDevice(nsim_blob(wearer), speed=0, secure=False, quiet_hours=False, hold=True,
                             offline_after_s=5.0, away_s=AWAY, start_timeout=120.0) as vd:
        tr = BleTransport(bumble=vd.bumble_args, backoff_max_s=1.0,
                          on_link=lambda event, **kw: links.append(event))
        seen: list[str] = []

        async def watch() -> None:  # the status line of nape record while the board is away
            await vd.wait_event("away", timeout=300.0)
            while tr.link_state()["state"] != "lost":
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            seen.append(link_line(tr))

        watcher = asyncio.create_task(watch())
        stats = await asyncio.wait_for(record(tr, path), 300.0)
        await asyncio.wait_for(watcher, 5.0)
        events = list(vd.events)
    return path, stats, events, links + seen, wearer


def test_a_board_out_of_range_is_found_again_and_backfilled_once(tmp_path):
    path, stats, events, links, wearer = asyncio.run(_record(tmp_path))
    assert stats.lost_samples == 0 and stats.duplicate_samples == 0 and stats.malformed == 0
    assert "disconnected" in links and "reconnected" in links
    line = links[-1]
    assert line.startswith("out of range for ") and "looking for the board (attempt " in line, line
    ev = {e["event"]: e for e in events if e.get("event") in ("away", "back", "reconnected")}
    assert ev["away"]["t_ms"] == AWAY[0] * 1000
    assert AWAY[1] * 1000 <= ev["back"]["t_ms"] < AWAY[1] * 1000 + 1000  # (noticed after a light sleep)
    assert ev["back"]["mode"] == "saver" and ev["back"]["lightsleeps"] > 0  # asleep between FIFO batches
    assert ev["reconnected"]["after_ms"] <= 10_000 + 400  # one advertising period (+ a window, a poll)

    rec = open_recording(path)
    seqs: list[int] = []
    log_n = full_n = 0
    windows: dict[int, list] = {}  # event_id -> [total, received, trigger board s]
    for _t, pkt in rec.iter_packets():
        if pkt[1] == 3:
            lp = decode_log_packet(pkt)
            seqs.extend(range(lp.seq, lp.seq + lp.count))
            log_n += lp.count
        elif pkt[1] == 1:
            sp = wire.decode_packet(pkt)
            seqs.extend(range(sp.seq, sp.seq + sp.count))
            full_n += sp.count
        elif pkt[1] == 2:
            ep = wire.decode_packet(pkt)
            w = windows.setdefault(ep.event_id, [ep.total, 0, ep.trigger_t_ms / 1000.0])
            w[1] += ep.count
    assert len(seqs) == len(set(seqs)), "a sample stored twice"
    assert sorted(seqs) == list(range(len(seqs))), "a sample missing from the boot's sequence line"
    assert log_n > 0 and full_n > 0  # both rates in one file
    # every bump, the three while the board was alone (20, 50, 80 s) too, came as a whole window
    assert len([b for b in wearer.bumps if AWAY[0] + 5.0 < b < AWAY[1]]) == 3
    for b in wearer.bumps:
        near = [w for w in windows.values() if abs(w[2] - b) < 0.5]
        assert near and near[0][1] == near[0][0], f"bump at {b} s: no whole window ({sorted(windows.values())})"


async def _stop_while_away(tmp_path):
    wearer = Wearer(60.0, jolt_every_s=30.0, hunch_every_s=1000.0)
    path = tmp_path / "stopped.nape"
    # 5x real time, not as fast as it runs: the host must have the stream on air for a while
    # before the board leaves (at full speed a loaded machine had it leave before the first
    # notification, and "what went on air" was nothing)
    async with VirtualDevice(nsim_blob(wearer), speed=5, secure=False, quiet_hours=False, hold=True,
                             offline_after_s=5.0, away_s=(10.0, 50.0), start_timeout=120.0) as vd:
        tr = BleTransport(bumble=vd.bumble_args, backoff_max_s=1.0)
        task = asyncio.create_task(record(tr, path))
        ev = await vd.wait_event("away", timeout=300.0)
        while tr.link_state()["state"] != "lost":
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # a few reconnection attempts
        # what went on air a moment before the board left: the host must have kept all of it
        on_air = (await vd.stats(before=ev["t"] - 0.2))["sent_next_seq"]
        task.cancel()  # what Ctrl-C does to nape record
        try:
            await task
        except asyncio.CancelledError:
            pass
    return path, on_air


def test_stopping_while_the_board_is_away_keeps_everything_received(tmp_path):
    path, on_air = asyncio.run(_stop_while_away(tmp_path))
    rec = open_recording(path)
    assert rec.closed_cleanly
    seqs = []
    for _t, pkt in rec.iter_packets():
        if pkt[1] == 1:
            sp = wire.decode_packet(pkt)
            seqs.extend(range(sp.seq, sp.seq + sp.count))
    assert seqs and seqs == list(range(len(seqs)))  # everything before the link dropped, once, in order
    assert on_air and len(seqs) >= on_air  # every sample notified before the board left
