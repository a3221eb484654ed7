"""Recordings with a device reboot, gaps with reasons and a mid-stream sample-rate change.

Each recording is built here from known profiles (tests/recording_factory.py helpers) the way
``nape record`` writes them: boot notes before each boot's packets, sequence numbers and
device time restarting at 0 after a reboot, ``gap`` notes with a reason, packets carrying
the ``period_us`` of their samples (the firmware's power saver switches 100 → 50 Hz), host
receive times a little after the samples were measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from nape import quat, wire
from nape.analysis import analyse
from nape.analysis.stream import BlockReader
from nape.recording import RecordingWriter, open_recording
from nape.report import quality_notes, to_json
from tests.recording_factory import pitch_quat, specific_force

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "report.schema.json").read_text("utf-8"))
T0 = 1.7e9  # host time of the first sample, unix s
LATENCY_S = 0.05  # host receive time after the newest sample of a chunk


def _step(t: np.ndarray, on_s: float, off_s: float, deg: float, ramp_s: float = 1.0) -> np.ndarray:
    """0 → ``deg`` ramped over ``ramp_s`` centred on ``on_s``, back to 0 centred on ``off_s``."""
    up = np.clip((t - on_s) / ramp_s + 0.5, 0, 1)
    down = np.clip((off_s - t) / ramp_s + 0.5, 0, 1)
    return deg * np.minimum(up, down)


class _Boot:
    """Samples of one boot: times (s of device time), trunk/head pitch (deg), period per sample (µs)."""

    def __init__(self, t_dev_s, period_us, trunk_deg, head_deg, wall_offset_s, boot_id, n_in_file):
        self.t, self.period, self.boot_id, self.n = t_dev_s, period_us, boot_id, n_in_file
        self.wall = wall_offset_s + t_dev_s  # when each sample was measured, s from T0
        qs = [pitch_quat(trunk_deg), pitch_quat(head_deg)]
        self.q = np.stack(qs, axis=1)
        self.acc = np.stack([specific_force(q, np.zeros((len(t_dev_s), 3))) for q in qs], axis=1)
        self.gyr = np.stack([2.0 * quat.mul(quat.conj(q), np.gradient(q, t_dev_s, axis=0))[:, 1:] for q in qs], axis=1)


def _write(path: Path, boots: list[_Boot], drop: range | None = None, notes: dict | None = None,
           per_packet: int = 5, chunk_packets: int = 70, reboot_lost: int | None = None,
           rate_hz: float = 50.0) -> Path:
    """Write ``boots`` as ``nape record`` would. Packets hold ``per_packet`` samples of one
    period; ``drop`` (seq of the last boot) is never received; ``notes``: {seq: note} written
    before the packet holding that seq."""
    meta = {"device_name": "factory", "firmware_version": "test", "imu_roles": ["trunk", "head"],
            "sample_rate_hz": rate_hz, "source": "simulated", "wire_format_version": 1}
    with RecordingWriter(path, meta, fsync_interval_s=0) as w:
        for b in boots:
            if b.n > 1:
                w.write_note({"event": "reboot", "t": T0 + b.wall[0], "previous_boot_id": boots[b.n - 2].boot_id,
                              "boot_id": b.boot_id, "lost_samples_at_least": reboot_lost}, T0 + b.wall[0] + 0.3)
            w.write_note({"event": "boot", "boot_id": b.boot_id, "n": b.n}, T0 + b.wall[0] + 0.3)
            batch: list[bytes] = []
            i = 0
            while i < len(b.t):
                j = i + 1
                while j < len(b.t) and j - i < per_packet and b.period[j] == b.period[i]:
                    j += 1
                if notes and any(s in notes for s in range(i, j)):
                    if batch:
                        w.write_packets(batch, T0 + b.wall[i - 1] + LATENCY_S)
                        batch = []
                    w.write_note(notes[next(s for s in range(i, j) if s in notes)], T0 + b.wall[i])
                if drop is None or b is not boots[-1] or not (i in drop):
                    batch.append(wire.encode_samples(3, i, int(round(b.t[i] * 1000)), int(b.period[i]),
                                                     np.zeros(j - i, np.uint8), b.q[i:j], b.acc[i:j], b.gyr[i:j]))
                if len(batch) >= chunk_packets:
                    w.write_packets(batch, T0 + b.wall[j - 1] + LATENCY_S)
                    batch = []
                i = j
            if batch:
                w.write_packets(batch, T0 + b.wall[-1] + LATENCY_S)
    return path


def _uniform(duration_s: float, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(round(duration_s * rate_hz))
    return np.arange(n) / rate_hz, np.full(n, int(round(1e6 / rate_hz)))


def _check_schema(f) -> dict:
    doc = json.loads(json.dumps(to_json(f), default=float))
    errs = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in Draft202012Validator(SCHEMA).iter_errors(doc)]
    assert not errs, errs
    return doc


# ------------------------------------------------------------------ (a) a reboot mid-recording


@pytest.fixture(scope="module")
def reboot_file(tmp_path_factory):
    """Boot 1: 150 s at 50 Hz; the device had 25 more samples (0.5 s) it never sent, then was
    off for 30 s; boot 2 (seq and t_ms from 0): 150 s with the neck bent 40° from 60 to 140 s
    of its device time, i.e. 240.5 to 320.5 s on the recording's timeline."""
    t1, p1 = _uniform(150, 50)
    t2, p2 = _uniform(150, 50)
    b1 = _Boot(t1, p1, np.zeros(len(t1)), np.zeros(len(t1)), 0.0, "0000aaaa", 1)
    b2 = _Boot(t2, p2, np.zeros(len(t2)), _step(t2, 60, 140, 40), 150.5 + 30.0, "0000bbbb", 2)
    return _write(tmp_path_factory.mktemp("boots") / "reboot.nape", [b1, b2], reboot_lost=25), b1, b2


def test_reboot_keeps_both_boots_and_reports_the_gap(reboot_file):
    path, b1, b2 = reboot_file
    r = BlockReader(open_recording(path), 3)
    idx = np.concatenate([b.index for b in r])
    assert r.samples == len(b1.t) + len(b2.t) == 15000 and r.late == 0 and r.duplicates == 0
    assert len(idx) == 15000 and (np.diff(idx) > 0).all()
    assert [b.boot_id for b in r.boots] == ["0000aaaa", "0000bbbb"]
    # boot 2's seq 0 sits where it was measured: 180.5 s after the first sample (±1 grid step + latency)
    t2_first = idx[7500] * r.grid_period_us / 1e6
    assert t2_first == pytest.approx(180.5, abs=0.1)

    f = analyse(path)
    assert f.samples == 15000 and f.lost_samples == 25
    (gap,) = f.gaps
    assert gap["reason"] == "device reboot" and gap["missing_samples"] == 25 and gap["boot_number"] == 2
    assert gap["start_s"] == pytest.approx(150.0, abs=0.02) and gap["duration_s"] == pytest.approx(30.5, abs=0.1)
    assert f.duration_s == pytest.approx(330.5, abs=0.1)
    (ep,) = [e for e in f.episodes if e.kind == "neck_flexion"]
    assert ep.start_s == pytest.approx(240.5, abs=1.0) and ep.end_s == pytest.approx(320.5, abs=1.0)
    doc = _check_schema(f)
    assert doc["gaps"][0]["start_local_time"] is not None
    notes = quality_notes(f)
    reboot = [n for n in notes if "device reboot" in n]
    assert len(reboot) == 1 and "no data for 30 s" in reboot[0] and "25 samples" in reboot[0], notes
    assert gap_clock(f, 150.0) in reboot[0]
    assert "No samples lost in transmission." in notes


def gap_clock(f, t_s):
    from nape.report import clock

    return clock(f, t_s)


def test_reboot_event_times_follow_their_boot(reboot_file, tmp_path):
    """An EVENT window's trigger time (device time of its boot) lands on the timeline."""
    path, _b1, b2 = reboot_file
    dst = tmp_path / "ev.nape"
    rec = open_recording(path)
    acc = np.tile(np.array([0.0, 0.0, 9.80665]), (9, 2, 1))
    ev = wire.encode_event(3, 7, 0, 9, 2, 500, 100_000, acc, np.zeros_like(acc))  # boot 2, device time 100 s
    with RecordingWriter(dst, rec.metadata, fsync_interval_s=0) as w:
        for c in rec.chunks():
            if c.note is not None:
                w.write_note(c.note, c.host_time_s)
            elif c.packets:
                w.write_packets(c.packets, c.host_time_s)
        w.write_packets([ev], T0 + 400)
    r = BlockReader(open_recording(dst), 3)
    for _ in r:
        pass
    (e,) = r.events
    assert (e.trigger_t_ms - r.t0_ms) / 1000 == pytest.approx(180.5 + 100.0, abs=0.1)


# ------------------------------------------------------------------ (b) gap reasons


def test_overflow_and_transmission_gaps_carry_their_reasons(tmp_path):
    """120 s at 50 Hz; samples 3000–3999 (60–80 s) gone with an overflow note, samples
    5000–5004 (one packet at 100 s) lost in transmission without a note."""
    t, p = _uniform(120, 50)
    b = _Boot(t, p, np.zeros(len(t)), np.zeros(len(t)), 0.0, "0000cccc", 1)
    note = {"event": "gap", "boot_id": "0000cccc", "from_seq": 3000, "to_seq": 4000, "missing_samples": 1000,
            "reason": "on-board buffer overflow"}
    path = _write(tmp_path / "gaps.nape", [b], drop=range(3000, 4000), notes={4000: note})
    path2 = _write(tmp_path / "gaps2.nape", [b], drop=set(range(3000, 4000)) | {5000}, notes={4000: note})
    for pth, radio in ((path, 0), (path2, 5)):
        f = analyse(pth)
        assert f.samples == 6000 - 1000 - radio and f.lost_samples == 1000 + radio
        (g,) = f.gaps  # the 0.1-s transmission gap is counted, not listed
        assert g["reason"] == "on-board buffer overflow" and g["missing_samples"] == 1000
        assert g["start_s"] == pytest.approx(60.0, abs=0.02) and g["duration_s"] == pytest.approx(20.0, abs=0.02)
        _check_schema(f)
        notes = quality_notes(f)
        over = [n for n in notes if "on-board buffer overflow" in n and n.startswith("Gap in the data at ")]
        assert len(over) == 1 and "1000 samples" in over[0] and "20 s missing" in over[0]
        assert gap_clock(f, 60.0) in over[0]
        assert "1000 samples were lost to on-board buffer overflow (16.67 %)." in notes
        if radio:
            assert "5 samples were lost in transmission (0.08 %)." in notes, notes
        else:
            assert "No samples lost in transmission." in notes


def test_long_transmission_gap_is_listed_with_its_reason(tmp_path):
    t, p = _uniform(90, 50)
    b = _Boot(t, p, np.zeros(len(t)), np.zeros(len(t)), 0.0, "0000dddd", 1)
    f = analyse(_write(tmp_path / "radio.nape", [b], drop=range(2000, 2150)))
    (g,) = f.gaps
    assert g == {"start_s": pytest.approx(40.0), "duration_s": pytest.approx(3.0), "reason": "lost in transmission",
                 "missing_samples": 150, "boot_number": 1}
    notes = quality_notes(f)
    assert any(n.startswith(f"Gap in the data at {gap_clock(f, 40.0)}: 3 s missing (150 samples), lost in "
                            "transmission") for n in notes), notes
    assert "150 samples were lost in transmission (3.33 %)." in notes


# ------------------------------------------------------------------ (c) 100 → 50 → 100 Hz


def _rate_switch_boot(switch: bool) -> _Boot:
    """300 s: 100 Hz, then (``switch``) 50 Hz from 100 to 200 s, 100 Hz again. Neck bent 40°
    from 70 to 160 s, trunk bent 40° from 185 to 260 s: both episodes span a switch."""
    if switch:
        parts = [np.arange(0, 100, 0.01), np.arange(100, 200, 0.02), np.arange(200, 300, 0.01)]
        t = np.concatenate(parts)
        per = np.concatenate([np.full(len(parts[0]), 10000), np.full(len(parts[1]), 20000),
                              np.full(len(parts[2]), 10000)])
    else:
        t, per = _uniform(300, 100)
    trunk = _step(t, 185, 260, 40)
    return _Boot(t, per, trunk, trunk + _step(t, 70, 160, 40), 0.0, "0000eeee", 1)


@pytest.fixture(scope="module")
def rate_switch(tmp_path_factory):
    d = tmp_path_factory.mktemp("rate")
    b = _rate_switch_boot(True)
    return (analyse(_write(d / "switch.nape", [b], rate_hz=100.0)),
            analyse(_write(d / "steady.nape", [_rate_switch_boot(False)], rate_hz=100.0)),
            len(b.t), d / "switch.nape")


def test_rate_switch_keeps_time(rate_switch):
    f, ref, n, path = rate_switch
    assert n == 25000 and f.samples == n and f.lost_samples == 0 and f.gaps == []
    assert f.duration_s == pytest.approx(300.0, abs=0.05)
    t = np.asarray(f.series["time_s"])
    assert (np.diff(t) > 0).all() and t[-1] == pytest.approx(299.0)
    got = {e.kind: e for e in f.episodes}
    want = {e.kind: e for e in ref.episodes}
    assert set(got) == set(want) == {"neck_flexion", "trunk_inclination"}
    truth = {"neck_flexion": (70.0, 160.0), "trunk_inclination": (185.0, 260.0)}
    for kind, (on, off) in truth.items():
        e, r = got[kind], want[kind]
        assert e.start_s == pytest.approx(on, abs=1.0) and e.end_s == pytest.approx(off, abs=1.0), (kind, e)
        assert e.duration_s == pytest.approx(off - on, abs=1.0)
        assert abs(e.start_s - r.start_s) <= 0.2 and abs(e.end_s - r.end_s) <= 0.2
        assert e.mean_deg == pytest.approx(r.mean_deg, abs=1.0)
    # the 1-Hz series agree with the steady recording within a degree (VQF ran at one rate)
    a, b = np.asarray(f.series["neck_flexion_deg"]), np.asarray(ref.series["neck_flexion_deg"])
    assert np.abs(a - b).max() < 1.0


def test_rate_switch_blocks_are_on_one_grid(rate_switch):
    path = rate_switch[3]
    r = BlockReader(open_recording(path), 3, batch=333)
    blocks = list(r)
    idx = np.concatenate([b.index for b in blocks])
    assert r.grid_period_us == 10000 and {b.period_s for b in blocks} == {0.01}
    assert r.samples == sum(b.samples for b in blocks) == 25000
    # the 50-Hz stretch filled in on the 100-Hz grid: 30 000 points, one per 10 ms, none twice
    assert len(idx) == 30000 and (np.diff(idx) == 1).all() and idx[0] == 0
    t_ms = np.concatenate([b.t_ms for b in blocks])
    assert np.abs(t_ms - idx * 10.0).max() < 1e-6
    q = np.concatenate([b.quat for b in blocks])
    assert np.abs(np.linalg.norm(q, axis=-1) - 1).max() < 1e-3  # as decoded: the wire quantises
