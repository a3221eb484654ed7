"""nape.recorder: write policy, failure path, per-boot sequence spaces, session NOTE.

A scripted transport replays real wire-format packets (``wire.encode_samples`` +
``wire.fragment``, as the firmware sends them); the BLE path itself is in
tests/test_ble_*.py and tests/test_record_*.py.
"""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from nape import wire
from nape.errors import DeviceError
from nape.recorder import record
from nape.recording import open_recording
from nape.transport import DeviceInfo, Notification, Transport


def _packet(seq: int, count: int = 5, backfill: bool = False) -> bytes:
    q = np.zeros((count, 2, 4))
    q[..., 0] = 1.0
    flags = np.full(count, 0x40 if backfill else 0, np.uint8)
    return wire.encode_samples(3, seq, seq * 10, 10000, flags, q, np.zeros((count, 2, 3)), np.zeros((count, 2, 3)))


class Scripted(Transport):
    """Yields a script of ("stream", packet) / ("boot", id) / ("fail", exc) items; before each
    item it records how many packets the file already holds (``seen_on_disk``)."""

    def __init__(self, script, path=None, pause_s=0.0):
        self.script = script
        self.pause_s = pause_s
        self.path = path
        self.seen_on_disk: list[int] = []
        self.closed = False

    async def connect(self) -> DeviceInfo:
        return DeviceInfo("Nape", "test", ("trunk", "head"), 100.0, extra={"source": "ble"})

    async def notifications(self):
        for kind, value in self.script:
            await asyncio.sleep(self.pause_s)
            if self.path is not None:
                self.seen_on_disk.append(sum(1 for _ in open_recording(self.path).iter_packets()))
            if kind == "fail":
                raise value
            if kind == "boot":
                yield Notification("boot", struct.pack("<I", value))
                continue
            for frag in wire.fragment(value, 100):  # several notifications per packet
                yield Notification("stream", frag)

    async def close(self) -> None:
        self.closed = True

    def link_summary(self) -> dict:
        return {"reconnects": 2}


def _seqs(path):
    out = []
    for _t, p in open_recording(path).iter_packets():
        pk = wire.decode_packet(p)
        out.extend(range(pk.seq, pk.seq + pk.count))
    return out


def _session(path) -> dict:
    (s,) = [n for _t, n in open_recording(path).iter_notes() if n.get("event") == "session_end"]
    return s


def test_held_packets_are_written_within_the_chunk_interval_even_when_the_stream_pauses(tmp_path):
    path = tmp_path / "pause.nape"
    script = [("stream", _packet(5 * i)) for i in range(4)]
    tr = Scripted(script, path, pause_s=0.8)  # longer than the 0.5 s default chunk interval
    stats = asyncio.run(record(tr, path))
    assert stats.samples == 20
    # each packet was on disk before the next one came, with no later packet to push it out
    assert tr.seen_on_disk == [0, 1, 2, 3]
    assert len([c for c in open_recording(path).chunks() if c.packets]) == 4


def test_every_packet_is_on_disk_before_the_next_one_arrives(tmp_path):
    path = tmp_path / "r.nape"
    script = [("stream", _packet(5 * i)) for i in range(30)]
    tr = Scripted(script, path)
    stats = asyncio.run(record(tr, path, chunk_interval_s=0))
    assert stats.samples == 150 and stats.lost_samples == 0
    # before item k arrives, the k packets before it are already written (no holding back)
    assert tr.seen_on_disk == list(range(30))
    assert _seqs(path) == list(range(150))
    s = _session(path)
    assert s["stats"]["samples"] == 150 and s["link"] == {"reconnects": 2} and "error" not in s


def test_a_failing_transport_leaves_everything_received_in_a_closed_file(tmp_path):
    path = tmp_path / "fail.nape"
    script = [("stream", _packet(5 * i)) for i in range(12)] + [("fail", DeviceError("link lost for good"))]
    tr = Scripted(script)
    with pytest.raises(DeviceError, match="link lost"):
        asyncio.run(record(tr, path))
    rec = open_recording(path)
    assert rec.closed_cleanly and not rec.issues
    assert _seqs(path) == list(range(60))
    s = _session(path)
    assert s["error"] == "DeviceError: link lost for good" and s["stats"]["samples"] == 60
    assert tr.closed


def test_a_device_reboot_starts_a_new_sequence_space(tmp_path):
    path = tmp_path / "reboot.nape"
    script = ([("boot", 0xA1)] + [("stream", _packet(5 * i)) for i in range(10)]
              + [("stream", _packet(20))]  # a duplicate within the boot: dropped
              + [("boot", 0xB2)] + [("stream", _packet(5 * i, backfill=i < 3)) for i in range(4)])
    stats = asyncio.run(record(Scripted(script), path))
    assert stats.boots == 2 and stats.samples == 70 and stats.duplicate_samples == 5
    assert stats.lost_samples == 0 and stats.backfilled_samples == 15
    assert _seqs(path) == list(range(50)) + list(range(20))
    boots = [n for _t, n in open_recording(path).iter_notes() if n.get("event") == "boot"]
    assert [b["boot_id"] for b in boots] == ["000000a1", "000000b2"]


def test_gaps_are_counted_as_lost(tmp_path):
    path = tmp_path / "gap.nape"
    script = [("stream", _packet(0)), ("stream", _packet(5)), ("stream", _packet(25))]
    stats = asyncio.run(record(Scripted(script), path))
    assert stats.lost_samples == 15 and stats.samples == 15
