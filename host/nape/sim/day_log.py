"""Simulated wearer -> a mixed-rate .nape recording, as the board's offline day log makes one.

While no host is connected the board logs LOG packets (wire type 3: both IMUs' orientation,
10 Hz, one ``seq`` per LOG sample in the SAMPLES sequence space), keeps each jolt's raw
full-rate window (EVENT packets) and marks what happened (MARKS, type 4: OFFLINE_START /
OFFLINE_END, posture alerts, LOG_DROPPED when the log was full). On reconnect it sends the
log in ``seq`` order, then live SAMPLES again (protocol/SPEC.md, "Streaming, backfill").

:func:`write_day_log_recording` writes that file from a :class:`~nape.sim.SimResult` with the
host encoders (:func:`nape.wire.encode_samples`, :func:`nape.wire_log.encode_log_packet`,
:func:`nape.wire.encode_event`, :func:`nape.wire_marks.encode_marks_packet`) — the host twin of
the firmware path, for tests and figures (``bench.offline_day`` runs the firmware itself).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nape import wire, wire_log, wire_marks
from nape.recording import RecordingWriter

from .settings import SimError
from .to_recording import _HOST_T0, DEFAULT_VALUE_LEN, orientations, samples_per_packet

LOG_PERIOD_MS = 100  # 10 Hz (protocol/SPEC.md type 3)
EVENT_PRE_S = 0.25
EVENT_POST_S = 0.5
TRIGGER_G = 0.35  # the board's jolt screen (firmware/jolt.py trigger_mg)


def write_day_log_recording(
    sim,
    path: str | os.PathLike[str],
    log_spans: list[tuple[float, float]],
    *,
    orientation: str = "vqf",
    windows: bool = True,
    drop_log_s: float = 0.0,
    alerts: list[tuple[float, float, int]] | None = None,
    overwrite: bool = False,
    metadata: dict | None = None,
) -> dict:
    """Write ``sim`` with the times in ``log_spans`` (seconds, ``[(t0, t1), ...]``) as the day log.

    Args:
        sim: the simulated wearer (trunk first, head optional).
        path: file to create.
        log_spans: stretches without a host: LOG at 10 Hz there, SAMPLES elsewhere.
        orientation: the board's orientation ("vqf" as :func:`.to_recording.orientations`).
        windows: write an EVENT window (0.25 s before to 0.5 s after the board's trigger, the
            sim's rate) for every labelled jolt whose peak lies in a LOG span; the trigger is
            the first sample where the trunk's true linear acceleration exceeds 0.35 g.
        drop_log_s: the first this many seconds of the first LOG span are dropped (the log was
            full), with a LOG_DROPPED mark.
        alerts: posture alerts as (start_s, end_s, a) written as ALERT_START / ALERT_END marks.
        overwrite: replace an existing file.
        metadata: extra header metadata.

    Returns:
        ``{"path", "log_samples", "samples", "windows": [trigger times], "dropped"}``.

    Raises:
        SimError: no trunk IMU, or overlapping / unordered spans.
    """
    roles = [r for r in ("trunk", "head") if r in sim.imus]
    if "trunk" not in roles:
        raise SimError("the simulation has no trunk IMU")
    spans = sorted((float(a), float(b)) for a, b in log_spans)
    if any(b <= a for a, b in spans) or any(s1[0] < s0[1] for s0, s1 in zip(spans, spans[1:])):
        raise SimError("log spans must be ordered, non-empty and not overlap")
    mask = sum(bit for r, bit in wire.ROLE_BITS if r in roles)
    quats = orientations(sim, orientation)
    q_all = np.stack([quats[r] for r in roles], axis=1)
    acc_all = np.stack([sim.imus[r].acc for r in roles], axis=1)
    gyr_all = np.stack([sim.imus[r].gyr for r in roles], axis=1)
    rate = float(sim.rate_hz)
    n = len(q_all)
    period_us = int(round(1e6 / rate))
    t = np.arange(n) / rate
    in_log = np.zeros(n, bool)
    for a, b in spans:
        in_log |= (t >= a) & (t < b)
    step = max(1, int(round(LOG_PERIOD_MS / 1000.0 * rate)))
    per_s = samples_per_packet(len(roles), DEFAULT_VALUE_LEN)
    per_l = wire_log.per_packet(mask)
    items: list[tuple[float, bytes]] = []  # (host time, packet), written in this order
    marks: list[tuple[int, int, int, int, int]] = []
    later: list[tuple[float, bytes]] = []  # EVENT and MARKS of a span: sent at its reconnect
    seq = 0
    dropped = 0
    log_samples = samples = 0
    win_times: list[float] = []
    ids = [0]
    cuts = [0] + list(np.flatnonzero(in_log[1:] != in_log[:-1]) + 1) + [n]
    for k0, k1 in zip(cuts[:-1], cuts[1:]):
        if not in_log[k0]:
            for i in range(k0, k1, per_s):
                j = min(k1, i + per_s)
                items.append((_HOST_T0 + j / rate, wire.encode_samples(
                    mask, seq, int(i * period_us // 1000), period_us, np.zeros(j - i, np.uint8),
                    q_all[i:j], acc_all[i:j], gyr_all[i:j])))
                seq += j - i
                samples += j - i
            continue
        idx = np.arange(k0, k1, step)
        reconnect = _HOST_T0 + k1 / rate
        marks.append((int(idx[0] * 1000 // rate), wire_marks.OFFLINE_START, 0, 0, seq))
        first_span = not dropped and drop_log_s > 0 and k0 == next(c for c in cuts if in_log[c])
        if first_span:
            drop = min(len(idx) - 1, int(round(drop_log_s * 1000 / LOG_PERIOD_MS)))
            marks.append((int(idx[drop] * 1000 // rate), wire_marks.LOG_DROPPED, 0, min(drop, 0xFFFF), seq))
            seq += drop
            dropped = drop
            idx = idx[drop:]
        for p in range(0, len(idx), per_l):
            sel = idx[p: p + per_l]
            items.append((reconnect, wire_log.encode_log_packet(mask, seq, int(sel[0] * 1000 // rate),
                                                                LOG_PERIOD_MS, q_all[sel])))
            seq += len(sel)
            log_samples += len(sel)
        marks.append((int(k1 * 1000 // rate), wire_marks.OFFLINE_END, 0, 0, seq))
        if windows:
            for e in sim.labels.events:
                if e.kind == "head_turn" or not (t[k0] <= e.t_peak < (t[k1 - 1] if k1 < n else t[-1])):
                    continue
                t_trig = _trigger(sim, e, rate)
                later += [(reconnect, p) for p in _event_packets(mask, len(win_times), t_trig, rate,
                                                                 acc_all, gyr_all)]
                win_times.append(t_trig)
        if marks:
            later += _mark_packets(mask, marks, reconnect, ids)
            marks = []
        items += later
        later = []
    for a0, a1, a in alerts or []:
        items += _mark_packets(mask, [(int(a0 * 1000), wire_marks.ALERT_START, a, 0, 0),
                                      (int(a1 * 1000), wire_marks.ALERT_END, a, 0, 0)], items[-1][0], ids)
    meta = {"device_name": "Nape-sim-daylog", "firmware_version": "host-encoder", "wire_format_version": wire.VERSION,
            "imu_roles": roles, "sample_rate_hz": rate, "source": "simulated", "sim_seed": int(sim.seed)}
    meta.update(metadata or {})
    path = Path(path)
    with RecordingWriter(path, meta, fsync_interval_s=3600.0, overwrite=overwrite) as w:
        batch: list[bytes] = []
        host = items[0][0] if items else _HOST_T0
        for h, p in items:
            if batch and (h != host or len(batch) >= 200):
                w.write_packets(batch, host)
                batch = []
            host = h
            batch.append(p)
        if batch:
            w.write_packets(batch, host)
    return {"path": path, "log_samples": log_samples, "samples": samples, "windows": win_times, "dropped": dropped}


def _mark_packets(mask: int, marks: list, host_s: float, ids: list[int]) -> list[tuple[float, bytes]]:
    """MARKS packets of ``marks``; ``ids[0]`` is the next mark_id (one boot's, continued)."""
    out = []
    for i in range(0, len(marks), wire_marks.MAX_MARKS):
        chunk = marks[i: i + wire_marks.MAX_MARKS]
        out.append((host_s, wire_marks.encode_marks_packet(mask, ids[0], chunk)))
        ids[0] = (ids[0] + len(chunk)) & 0xFFFF
    return out


def _trigger(sim, e, rate: float) -> float:
    """When the board's jolt screen fires for label ``e``: the first sample from the label's
    start where the trunk's linear acceleration (true orientation) exceeds TRIGGER_G, else its peak."""
    from nape import quat

    i0, i1 = int(max(0.0, e.t_start) * rate), int(min(e.t_peak + 0.5, sim.t[-1]) * rate) + 1
    imu = sim.imus["trunk"]
    lin = quat.rotate(np.asarray(imu.quat_true[i0:i1]), np.asarray(imu.acc[i0:i1])) - np.array([0.0, 0.0, 9.80665])
    hit = np.flatnonzero(np.linalg.norm(lin, axis=1) > TRIGGER_G * 9.80665)
    return float((i0 + hit[0]) / rate) if len(hit) else float(e.t_peak)


def _event_packets(mask: int, event_id: int, t_peak: float, rate: float, acc: np.ndarray,
                   gyr: np.ndarray) -> list[bytes]:
    """EVENT packets of the raw window around ``t_peak`` (trigger at the peak)."""
    k = acc.shape[1]
    i_trig = int(round(t_peak * rate))
    pre, post = int(EVENT_PRE_S * rate), int(EVENT_POST_S * rate)
    lo, hi = max(0, i_trig - pre), min(len(acc), i_trig + post)
    total = hi - lo
    per = max(1, (DEFAULT_VALUE_LEN - 1 - wire.EVENT_HEADER) // (12 * k))
    out = []
    for f in range(0, total, per):
        m = min(per, total - f)
        out.append(wire.encode_event(mask, event_id, f, total, i_trig - lo, int(round(rate)),
                                     int(i_trig * 1000 // rate), acc[lo + f: lo + f + m], gyr[lo + f: lo + f + m]))
    return out
