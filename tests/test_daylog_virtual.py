"""The offline day log end to end: the whole firmware on the virtual board with no host in
range (``main.boot`` under MicroPython, 500 Hz fake IMUs, the day log after 5 s of board
time), then ``nape.ble.BleTransport`` connects over the virtual radio and backfills.

Counted with the host decoders (``bench.offline_day._run``): every ``seq`` of the boot
once (SAMPLES before, LOG while alone), every jolt window whole, the posture alert's
marks; a second session gets nothing of the day log again (ACK / LOG_ACK freed it); a day
log too small for the time away loses only what its marks say it dropped."""

from __future__ import annotations

import asyncio

from bench.offline_day import _run


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
