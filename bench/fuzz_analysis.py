"""The ``analysis`` fuzz target: whole recordings built from fuzz bytes through analysis, report and export.

Structure-aware: the input bytes are read as a plan (:class:`Plan`) for one ``.nape`` recording,
written with the project's own encoder and writer:

- header: IMU roles (trunk, trunk + head, head only, none, junk), ``sample_rate_hz`` (normal,
  0, negative, huge, text), ``created`` (valid, junk);
- 0 to 4 segments, each with its own sample period (100, 50, 200, 400 Hz or any u16 period),
  length (0 to 1500 samples, mostly under 300), posture, and before it a loss (skipped sequence numbers), a
  device reboot (boot note, sequence numbers restarting at 0) or a gap note with any reason;
- values: still or moving postures plus saturation flags, values at the wire format's limits,
  a zero accelerometer, single-sample spikes, gyroscope offsets and °/s-sized values;
- notes: a calibration note (valid or junk quaternions), EVENT windows (high-rate data).

The check: ``nape.analysis.analyse`` raises nothing but ``RecordingError`` (and only for files the
reader refuses), emits no Python warning, and its findings go through ``report.to_json`` (strict
JSON: no NaN), ``report.render_html`` (for one input in :data:`RENDER_EVERY`, by hash: a page takes
~0.2 s; the hostile header strings must come out escaped), ``report.headlines`` / ``quality_notes`` and
``export.tables`` without an exception; ``valid_s`` never exceeds the recorded span. The
recording's own plan errors (metadata the writer refuses) are skipped, not crashes.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np

_TMP = Path(os.environ.get("NAPE_FUZZ_TMP") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()))
_path = _TMP / f"nape-fuzz-analysis-{os.getpid()}.nape"
G = 9.80665
PERIODS = (10000, 20000, 5000, 2500)  # 100, 50, 200, 400 Hz
RENDER_EVERY = 16  # the HTML page is rendered for this share of inputs (by input hash) and every short one
REASONS = ("lost in transmission", "on-board buffer overflow", "device reboot", "x" * 300, "<script>", "")


class Plan:
    """Reads structure from fuzz bytes; 0 once they run out (so every input is a valid plan)."""

    def __init__(self, data: bytes):
        self.data = data
        self.i = 0

    def u8(self) -> int:
        if self.i >= len(self.data):
            return 0
        self.i += 1
        return self.data[self.i - 1]

    def u16(self) -> int:
        return self.u8() | (self.u8() << 8)

    def pick(self, options):
        return options[self.u8() % len(options)]

    def chance(self, in_256: int) -> bool:
        return self.u8() < in_256


def _metadata(p: Plan) -> dict:
    roles = p.pick((["trunk"], ["trunk", "head"], ["trunk", "head"], ["head"], [], ["<b>x</b>"], ["trunk"]))
    rate = p.pick((100, 100, 50, 200, 0, -5, 1e12, "fast", None, True, 400))
    meta = {"source": "simulated", "imu_roles": roles, "device_name": p.pick(("fuzz", "<img src=x onerror=1>", "é")),
            "firmware_version": p.pick(("1.0", "\u202e", "</script>"))}
    if rate is not None:
        meta["sample_rate_hz"] = rate
    created = p.pick(("2025-01-06T08:00:00Z", "yesterday", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00", None))
    if created is not None:
        meta["created"] = created
    return meta


def _segment_values(p: Plan, rng: np.random.Generator, n: int, n_imu: int, period_us: int):
    """flags (n,), quaternions (n, k, 4), acc (n, k, 3) m/s², gyr (n, k, 3) rad/s."""
    from nape import quat, wire

    t = np.arange(n) * period_us / 1e6
    pitch = np.radians(p.pick((0.0, 30.0, 80.0, -40.0, 170.0))) + np.radians(p.pick((0.0, 20.0, 90.0))) * np.sin(
        2 * np.pi * t / max(0.5, p.u8() / 10))
    half = pitch / 2
    q1 = np.stack([np.cos(half), np.zeros(n), np.sin(half), np.zeros(n)], axis=-1)
    q = np.repeat(q1[:, None], n_imu, axis=1)
    acc = quat.rotate(quat.conj(q), np.broadcast_to([0.0, 0.0, G], q.shape[:-1] + (3,)))
    acc = acc + rng.normal(0, p.pick((0.0, 0.05, 2.0)), acc.shape)
    gyr = rng.normal(0, 0.002, acc.shape) + p.pick((0.0, 0.01, 0.3, 50.0))
    flags = np.zeros(n, np.uint8)
    for _ in range(p.u8() % 6):  # glitches of every kind
        if n == 0:
            break
        i, k = p.u16() % n, p.u8() % n_imu
        kind = p.u8() % 6
        if kind == 0:
            flags[i] |= wire.FLAG_TRUNK_SAT if k == 0 else wire.FLAG_HEAD_SAT
        elif kind == 1:
            acc[i, k] = [40 * G, -40 * G, 40 * G]  # beyond the wire range: saturates
        elif kind == 2:
            acc[i, k] = 0.0
        elif kind == 3:
            acc[i, k, 1] += p.pick((6, 20, 51)) * G  # a spike
        elif kind == 4:
            gyr[i, k] = [100.0, -100.0, 100.0]
        else:
            acc[i:, k] *= 1e-3  # the sensor fails to near zero
    if p.chance(30):  # a jolt: a 100 ms shock
        i = p.u16() % max(n, 1)
        w = max(1, int(0.1e6 / period_us))
        acc[i: i + w, 0, 0] += p.pick((0.5, 2.0, 8.0)) * G
    return flags, q, acc, gyr


def build(data: bytes, path: Path) -> bool:
    """Write the recording planned by ``data`` to ``path``; False when the writer refuses the plan."""
    from nape import wire
    from nape.errors import RecordingError
    from nape.recording import RecordingWriter

    p = Plan(data)
    rng = np.random.default_rng(int.from_bytes(data[-8:].ljust(8, b"\0"), "little"))
    meta = _metadata(p)
    roles = [r for r in meta["imu_roles"] if r in ("trunk", "head")] or ["trunk"]
    mask = sum(bit for r, bit in wire.ROLE_BITS if r in roles)
    n_imu = len(wire.roles_of(mask))
    path.unlink(missing_ok=True)
    try:
        w = RecordingWriter(path, meta, fsync_interval_s=3600, overwrite=True)
    except RecordingError:
        return False
    with w:
        host = 1.7e9
        seq = t_ms = 0
        boot = 0
        if p.chance(40):
            q = p.pick(([1, 0, 0, 0], [0, 0, 0, 0], ["a"], [1e308, 0, 0, 0], [0.7, 0.7, 0, 0]))
            w.write_note({"kind": "calibration", "trunk_q": q, "head_q": q, "fusion": "vqf"}, host)
        for _s in range(p.u8() % 5):
            period = p.pick(PERIODS + (max(1, p.u16()),))
            n = p.u16() % (1500 if p.chance(40) else 300)
            before = p.u8() % 8
            if before == 1:  # loss
                skip = p.u16() % 3000
                seq += skip
                t_ms += skip * period // 1000
            elif before == 2:  # reboot
                boot += 1
                w.write_note({"event": "boot", "boot_id": f"{boot:08x}", "n": boot}, host)
                seq = t_ms = 0
                host += p.u8()
            elif before == 3:
                w.write_note({"event": "gap", "boot_id": f"{boot:08x}" if boot else None, "from_seq": seq,
                              "reason": p.pick(REASONS)}, host)
                seq += 1 + p.u8()
            flags, q, acc, gyr = _segment_values(p, rng, n, n_imu, period)
            per = p.pick((10, 5, 1, 25)) if n_imu == 1 else p.pick((5, 1, 12))
            batch = []
            for i in range(0, n, per):
                j = min(n, i + per)
                batch.append(wire.encode_samples(mask, seq + i, (t_ms + (i * period) // 1000) & 0xFFFFFFFF, period,
                                                 flags[i:j], q[i:j], acc[i:j], gyr[i:j]))
            if p.chance(20):
                batch.reverse()  # out of order
            if p.chance(20) and batch:
                batch.append(batch[0])  # a duplicate
            for k in range(0, len(batch), 100):
                w.write_packets(batch[k: k + 100], host + k)
            host += n * period / 1e6
            seq += n
            t_ms += n * period // 1000
            if p.chance(25):  # an EVENT window
                m = 1 + p.u8() % 40
                ev = wire.encode_event(mask, p.u8(), 0, m, p.u8() % m, max(1, p.u16() % 2000), t_ms,
                                       rng.normal(0, 30, (m, n_imu, 3)), rng.normal(0, 3, (m, n_imu, 3)))
                w.write_packets([ev], host)
    return True


def t_analysis(data: bytes) -> None:
    """The fuzz target (bench.fuzz conventions: raises on a crash or a broken invariant)."""
    from nape import export
    from nape.report import recording as report
    from nape.analysis import analyse
    from nape.errors import RecordingError

    if not build(data, _path):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning reaching the user is a crash too
        try:
            f = analyse(_path)
        except RecordingError as e:
            assert str(e) and "\n" not in str(e)
            return
        doc = report.to_json(f)
        json.dumps(doc, allow_nan=False, default=report._json_default)
        assert 0 <= f.valid_s <= f.duration_s + 1e-6, (f.valid_s, f.duration_s)
        assert f.glitches.get("samples", 0) >= 0
        if _render_this(data):  # the page takes ~0.2 s (plotly): drawn for one input in RENDER_EVERY
            page = report.render_html(f)
            assert page.startswith("<!DOCTYPE html>") and "<img src=x" not in page
        report.headlines(f)
        report.quality_notes(f)
        for cols, rows in export.tables(f).values():
            assert all(len(r) == len(cols) for r in rows)


def _render_this(data: bytes) -> bool:
    import zlib

    return len(data) < 12 or zlib.crc32(data) % RENDER_EVERY == 0


def seeds() -> list[bytes]:
    """Plans covering the main shapes: empty, short, long with gaps and reboots, glitches."""
    rng = random.Random(5)
    out = [b"", bytes([6, 0, 0, 0, 0, 1]), bytes([1, 0, 0, 0, 0, 0, 1, 200, 3, 0])]
    for _ in range(6):
        out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 80))))
    return out


def cleanup() -> None:
    _path.unlink(missing_ok=True)
