"""Soak, short: two simulated minutes through the full BLE path with one fault of each kind.

The same schedule as ``bench/soak.py`` (which runs the simulated hour): the firmware
under MicroPython on the bumble virtual radio, bleak over the bumble backend,
``BleTransport``, the recorder, one ``.nape`` file; one link disconnect, one radio drop
(host out of range for a fifth of the on-board buffer), one host stall (the event loop
blocked), one peripheral reboot and one outage 1.5x longer than the on-board buffer.
The on-board buffer is scaled down (256 packets = 1280 samples = 12.8 s) so the
overflow fits in two minutes.
"""

from __future__ import annotations

import json

import pytest

from bench import soak
from nape.cli import main as nape_main

FAST = dict(minutes=2.0, seed=0, ram_slots=32, flash_slots=224, speed=5.0, stall_s=1.0)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("soak") / "soak.nape"
    res = soak.run(keep=str(path), analysis=False, **FAST)
    res["path"] = path
    return res


def test_every_fault_kind_is_injected_into_a_streaming_link(result):
    assert result["faults_injected"] == {k: 1 for k in soak.KINDS}
    by_kind = {f["kind"]: f for f in result["faults"]}
    for kind in ("disconnect", "radio_drop", "overflow", "reboot"):
        assert by_kind[kind]["reconnect_s"] > 0  # the link went down and came back
    assert by_kind["stall"]["blocked_s"] >= 0.75  # the host's event loop really stopped
    ov, drop = by_kind["overflow"], by_kind["radio_drop"]
    assert ov["away_s"] * ov["rate_samples_per_s"] >= result["buffer_samples"]  # away longer than it holds
    assert drop["away_s"] * drop["rate_samples_per_s"] < 0.5 * result["buffer_samples"]  # away, but it fits
    assert result["boots_in_file"] == 2


def test_no_sample_lost_or_doubled_where_the_design_promises_it(result):
    assert result["lost_where_promised"] == 0, result["unexplained"]
    assert result["duplicates_in_file"] == 0
    assert result["samples_received"] > 0.6 * 12000


def test_the_overflow_is_one_gap_noted_with_its_reason_and_count(result):
    (gap,) = result["gaps_by_design"]
    (note,) = result["gap_notes_in_file"]
    assert note["reason"] == "on-board buffer overflow"
    assert (note["from_seq"], note["missing_samples"]) == (gap["from_seq"], gap["samples"])
    assert gap["samples"] > 0.25 * result["buffer_samples"]  # the outage really outlasted the buffer
    assert gap["device_overflow_rose_by"] >= gap["samples"]  # the device counted at least what the file misses
    assert result["recorder_lost_samples"] == gap["samples"]


def test_the_reboot_is_noted_with_what_the_old_boot_could_have_lost(result):
    (note,) = result["reboot_notes_in_file"]
    (loss,) = result["reboot_losses"]
    assert note["previous_received_next_seq"] == loss["in_file_next_seq"] > 0
    # the old boot's last status said how far it had got: everything past what was received is lost
    had, got = note["previous_device_next_seq"], note["previous_received_next_seq"]
    assert isinstance(had, int) and note["lost_samples_at_least"] == max(0, had - got)


def test_nape_info_lists_the_gap_with_its_reason(result, capsys):
    capsys.readouterr()
    assert nape_main(["info", str(result["path"])]) == 0
    info = json.loads(capsys.readouterr().out)
    (gap,) = info["gaps"]
    assert gap["reason"] == "on-board buffer overflow"
    assert info["session"]["stats"]["lost_samples"] == gap["missing_samples"]


def test_the_schedule_places_each_kind_and_fits_the_overflow_before_the_end():
    for minutes, buf in ((2.0, 1280), (60.0, 12800)):
        s = soak.make_schedule(minutes, 3, buffer_samples=buf, samples_per_wall_s=500)
        kinds = [f["kind"] for f in s]
        assert set(kinds) == set(soak.KINDS) and kinds.count("reboot") == 1
        n = minutes * 6000
        ov = next(f["at"] for f in s if f["kind"] == "overflow")
        assert ov + soak.OVERFLOW_AWAY * buf + 5.5 * 500 <= 0.95 * n
        assert [f["at"] for f in s] == sorted(f["at"] for f in s)
    hour = soak.make_schedule(60.0, 0, buffer_samples=12800)
    assert {k: sum(f["kind"] == k for f in hour) for k in soak.KINDS} == {
        "disconnect": 6, "radio_drop": 3, "stall": 3, "reboot": 1, "overflow": 1}


# --- the recorder's gap notes, without the radio ---------------------------------------
def _packet(seq: int, count: int = 5) -> bytes:
    import numpy as np

    from nape import wire

    q = np.zeros((count, 2, 4))
    q[..., 0] = 1.0
    return wire.encode_samples(3, seq, seq * 10, 10000, np.zeros(count, np.uint8), q,
                               np.zeros((count, 2, 3)), np.zeros((count, 2, 3)))


def _record_script(tmp_path, script):
    import asyncio
    import struct

    from nape import wire
    from nape.recorder import record
    from nape.recording import open_recording
    from nape.transport import DeviceInfo, Notification, Transport

    class Scripted(Transport):
        notes: list = []

        async def connect(self):
            return DeviceInfo("Nape", "test", ("trunk", "head"), 100.0, extra={"source": "ble"})

        async def notifications(self):
            for kind, value in script:
                if kind == "note":
                    self.notes.append(value)
                elif kind == "boot":
                    yield Notification("boot", struct.pack("<I", value))
                else:
                    for frag in wire.fragment(value, 100):  # as the firmware sends it
                        yield Notification("stream", frag)

        def drain_notes(self):
            out, self.notes = self.notes, []
            return out

        async def close(self):
            pass

    path = tmp_path / "gaps.nape"
    stats = asyncio.run(record(Scripted(), path))
    return stats, [n for _t, n in open_recording(path).iter_notes() if n.get("event") == "gap"]


def test_gap_notes_name_the_overflow_only_when_the_device_reported_it(tmp_path):
    overflow = {"event": "buffer_overflow", "boot_id": "000000a1", "from_seq": 10, "oldest_seq": 40}
    script = [("boot", 0xA1), ("stream", _packet(0)), ("stream", _packet(5)),
              ("note", overflow), ("stream", _packet(40)),  # host back: the device kept from 40 on
              ("stream", _packet(60))]  # a hole nobody explained
    stats, gaps = _record_script(tmp_path, script)
    assert stats.lost_samples == 30 + 15
    assert [(g["from_seq"], g["to_seq"], g["missing_samples"], g["reason"]) for g in gaps] == [
        (10, 40, 30, "on-board buffer overflow"), (45, 60, 15, "lost in transmission")]
    assert {g["boot_id"] for g in gaps} == {"000000a1"}


def test_a_boot_that_starts_during_the_recording_is_expected_from_seq_0(tmp_path):
    script = [("boot", 0xA1), ("stream", _packet(100)), ("stream", _packet(105)),  # joined late: no gap
              ("boot", 0xB2), ("stream", _packet(20)), ("stream", _packet(25))]  # rebooted: 0..19 missing
    stats, gaps = _record_script(tmp_path, script)
    assert stats.boots == 2 and stats.lost_samples == 20
    assert [(g["boot_id"], g["from_seq"], g["missing_samples"]) for g in gaps] == [("000000b2", 0, 20)]
