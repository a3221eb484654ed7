"""The offline day log end to end: the whole firmware on the virtual board with no host in
range (``main.boot`` under MicroPython, 500 Hz fake IMUs, the day log after 5 s of board
time), then ``nape.ble.BleTransport`` connects over the virtual radio and backfills.

Counted with the host decoders (``bench.offline_day._run``): every ``seq`` of the boot
once (SAMPLES before, LOG while alone), every jolt window whole, the posture alert's
marks; a second session gets nothing of the day log again (ACK / LOG_ACK freed it); a day
log too small for the time away loses only what its marks say it dropped."""

from __future__ import annotations

import asyncio

from bench.offline_day import _run, _run_reboot


def test_a_board_alone_logs_and_backfills_everything_once():
    v = asyncio.run(_run(70.0, 5.0, 20.0, 300.0))
    assert v["lost_samples"] == 0 and v["duplicate_samples"] == 0 and v["duplicate_marks"] == 0
    assert v["log_samples"] > 0 and v["samples_packets_samples"] > 0  # both rates in one seq line
    assert v["jolt_windows_expected"] == 3 and v["jolt_windows_kept"] == 3
    assert v["marks"]["offline_start"] == 1 and v["marks"]["offline_end"] == 1
    assert v["second_session_packets"]["log"] == 0 and v["second_session_packets"]["marks"] == 0
    assert v["second_session_packets"]["event"] == 0


def test_a_full_day_log_tells_what_it_dropped():
    v = asyncio.run(_run(150.0, 5.0, 30.0, 300.0, daylog_kib=16))
    assert v["lost_samples"] > 0 and v["lost_samples_unmarked"] == 0 and v["marked_but_received"] == 0
    assert v["duplicate_samples"] == 0
    assert v["jolt_windows_missing"] == 0 and v["windows_marked_and_received"] == 0
    assert v["windows_dropped_marked"]  # 16 KiB (66 slots) cannot keep four 42-packet windows


def test_a_reboot_while_alone_keeps_the_earlier_boots_log_as_its_own_boot(tmp_path):
    """The board logs alone (boot A), is power-cycled, logs alone again (boot B); then
    ``nape record`` connects: A's day log as it was on flash before the reboot, then B's whole
    seq line, each boot its own in the file and in the analysis."""
    v = asyncio.run(_run_reboot(60.0, 5.0, 20.0, 300.0, path=tmp_path / "r.nape"))
    assert v["boots_in_file"] == 2 and v["board_kept_line"] and "kept" in v["board_kept_line"]
    assert v["a_flash_log_samples"] > 0 and v["a_received_log_samples"] == v["a_flash_log_samples"]
    assert v["a_lost_samples"] == 0 and v["a_duplicate_samples"] == 0
    assert v["a_windows_on_flash"] == v["a_windows_whole"] == 2  # bumps at 20 and 40 s
    assert v["b_lost_samples"] == 0 and v["b_duplicate_samples"] == 0 and v["b_log_samples"] > 0
    assert v["recorder_duplicate_samples"] == 0 and v["analysis_duplicates"] == 0
    ab = v["analysis_boots"]
    assert len(ab) == 2 and ab[0]["samples"] == v["a_received_log_samples"] and ab[1]["samples"] == v["b_next_seq"]
    assert ("device reboot", 2) in [tuple(g) for g in v["analysis_gaps"]]


async def _record_reboot_away(tmp_path):
    from bench.offline_day import Wearer, flash_log
    from nape.ble import BleTransport, VirtualDevice
    from nape.ble.virtual import nsim_blob
    from nape.recorder import record

    wearer = Wearer(60.0, jolt_every_s=1000.0, hunch_every_s=1000.0)
    path = tmp_path / "away.nape"
    async with VirtualDevice(nsim_blob(wearer), speed=5, secure=False, quiet_hours=False,
                             offline_after_s=2.0, start_timeout=120.0) as vd:
        tr = BleTransport(bumble=vd.bumble_args, backoff_max_s=0.5)
        task = asyncio.create_task(record(tr, path))
        while tr.stats.notifications < 50:  # streaming live
            await asyncio.sleep(0.05)
        await vd.set_out_of_range(True)  # the wearer walks away
        await asyncio.sleep(3.0)  # 15 board s alone: the day log runs from 2 s on
        day = next(f for f in vd.workdir.iterdir() if f.is_file() and f.read_bytes()[:8] == b"NAPEDLG2")
        await vd.reboot(timeout=120.0)  # mid-away
        on_flash = next(iter(flash_log(day).values()))["log"]  # boot A's, as the reboot found it
        await asyncio.sleep(3.0)  # boot B alone
        await vd.set_out_of_range(False)
        stats = await asyncio.wait_for(task, 300.0)
    return path, stats, on_flash


def test_recording_through_a_reboot_while_away_gets_both_boots(tmp_path):
    from nape import wire
    from nape.analysis import analyse
    from nape.analysis.stream import BlockReader
    from nape.recording import open_recording

    path, stats, on_flash = asyncio.run(_record_reboot_away(tmp_path))
    rec = open_recording(path)
    boots: list[list[int]] = []
    gaps = []
    for ch in rec.chunks():
        if ch.note is not None:
            if ch.note.get("event") == "boot":
                boots.append([])
            elif ch.note.get("event") == "gap":
                gaps.append(ch.note)
        for pkt in ch.packets or ():
            if pkt[1] in (1, 3):
                p = wire.decode_packet(pkt)
                boots[-1].extend(range(p.seq, p.seq + p.count))
    assert len(boots) == 2 and on_flash
    a, b = boots
    assert len(a) == len(set(a)) and set(on_flash) <= set(a)  # every LOG sample A had on flash, once
    assert len(b) == len(set(b)) and sorted(b) == list(range(len(b)))  # B: its whole seq line
    # A's only gap: the SAMPLES in its RAM when it rebooted (before its day log began)
    assert [g["reason"] for g in gaps] == ["device reboot"] and stats.duplicate_samples == 0
    assert stats.lost_samples == gaps[0]["missing_samples"]
    reader = BlockReader(open_recording(path), 3)
    for _ in reader:
        pass
    assert [x.samples for x in reader.boots if x.samples] == [len(a), len(b)]
    assert reader.duplicates == 0 and reader.late == 0
    f = analyse(path)
    assert f.samples == len(a) + len(b)
