"""Jolts where only the board's EVENT windows tell of them, and the recording's rate spans.

In a span of the offline day log (LOG samples: orientation only, 10 Hz) the stream has no
acceleration, so the stream's jolt detector (:mod:`.jolts`) sees nothing there. The board
still keeps every jolt's raw full-rate window (EVENT packets, ±16 g, pre- and post-trigger);
each window whose trigger no full-rate stretch of the recording covers is measured and graded
here on its own:

* gravity: the board's orientation (the day log's quaternion nearest the window's first
  sample, within ``MAX_Q_AGE_S``) carried through the window by the window's own gyroscope
  (a window is under a second: gyro integration drifts by hundredths of a degree); without
  a nearby quaternion, the mean specific force of the pre-trigger samples (biased low for
  slow pulses, said in the jolt's ``source``);
* linear acceleration in world axes at the stream's bandwidth (``jolt_lowpass_hz``, the
  same causal 2nd-order low-pass as the stream), so the grades measure the quantity the
  stream's grades measure;
* manoeuvre or shock: the board triggers on the rising edge (0.35 g) and its window ends
  0.5 s later; a braking, an acceleration or a corner (0.5–3 s) is still pushing then,
  a shock has rung out. When the mean horizontal acceleration over the window's last
  ``SUSTAINED_TAIL_S`` is still ``SUSTAINED_SHARE`` × ``jolt_trigger_g`` (and the jolt is not
  mainly vertical) it is a manoeuvre: braking / acceleration / lateral by its direction
  relative to the trunk's heading, graded as the stream grades it (``GRADE_BOUNDS`` in
  :mod:`nape.settings`, basis "vehicle"): the sustained (``vehicle_lowpass_hz``) horizontal
  acceleration averaged over ``VEHICLE_AVG_S`` — a lower bound, as a manoeuvre may still grow
  after its window ends;
* otherwise a shock, its cause as :meth:`JoltDetector._cause` in an unknown context (the day
  log cannot tell a vehicle ride; taken as in a vehicle, as the stream detector does without
  context), each graded on the quantity that loads the neck, as the stream does: a bump
  (``bump_vertical_ratio``) on the seat's shock estimated from the upper back's vertical
  acceleration (basis "seat"); rear_impact_like (pushes the trunk forward) on NIC from the
  trigger with a head sensor (basis "nic"), else on the upper back's velocity change (basis
  "delta_v", less certain); else a knock on the upper back's whole acceleration (basis
  "back"). Windows whose peak stays below ``shock_trigger_g`` are not jolts.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import signal

from .. import quat
from ..plainwords import fmt_duration
from ..settings import GRADE_BOUNDS, AnalysisSettings
from .findings import Jolt
from .jolts import (BRIC_CRIT, NIC_ALIGN_S, NIC_SPAN_S, VEHICLE_AVG_S, _align_heading, _delta_v_kmh,
                    _seat_from_back, grade_of_size)
from .stream import REASON_LOG_FULL

G = 9.80665
MAX_Q_AGE_S = 1.0  # the day log's quaternion used for gravity is at most this far from the window
COVER_MARGIN_S = 2.0  # a trigger this close to full-rate data is the stream detector's
SUSTAINED_TAIL_S = 0.15  # the window's last this long tells a manoeuvre from a shock ...
SUSTAINED_SHARE = 0.7  # ... when its mean horizontal acceleration is still this share of jolt_trigger_g


def covered(t_s: float, full_spans: list[tuple[float, float]]) -> bool:
    """True when full-rate data surrounds time ``t_s`` (seconds on the timeline)."""
    return any(a - COVER_MARGIN_S <= t_s <= b + COVER_MARGIN_S for a, b in full_spans)


def _integrate(q0: np.ndarray, gyr: np.ndarray, rate: float) -> np.ndarray:
    """Orientation per sample (n, 4) from ``q0`` carried by body rates ``gyr`` (n, 3) rad/s."""
    out = np.empty((len(gyr), 4))
    q = np.asarray(q0, float)
    for i, w in enumerate(gyr):
        out[i] = q
        ang = float(np.linalg.norm(w)) / rate
        if ang > 0:
            ax = w / np.linalg.norm(w)
            q = quat.mul(q, np.concatenate([[np.cos(ang / 2)], np.sin(ang / 2) * ax]))
    return out


def _up_to_z(up: np.ndarray) -> np.ndarray:
    """Quaternion turning the sensor-frame vector ``up`` onto world z (heading arbitrary)."""
    a = up / max(float(np.linalg.norm(up)), 1e-9)
    axis = np.cross(a, [0.0, 0.0, 1.0])
    sn, c = float(np.linalg.norm(axis)), float(a[2])
    if sn < 1e-9:
        return np.array([1.0, 0, 0, 0]) if c > 0 else np.array([0.0, 1, 0, 0])
    ang = np.arctan2(sn, c)
    return np.concatenate([[np.cos(ang / 2)], np.sin(ang / 2) * axis / sn])


def _board_q(board: dict, t_s: float) -> np.ndarray | None:
    """The day log's sensor orientation (k, 4) nearest ``t_s``, or None beyond ``MAX_Q_AGE_S``."""
    if not board["t_s"]:
        return None
    t = np.concatenate(board["t_s"])
    i = int(np.clip(np.searchsorted(t, t_s), 0, len(t) - 1))
    j = max(0, i - 1)
    i = i if abs(t[i] - t_s) <= abs(t[j] - t_s) else j
    if abs(t[i] - t_s) > MAX_Q_AGE_S:
        return None
    return np.concatenate(board["q"])[i].astype(float)


def _window_nic(lin: np.ndarray, on: int, rate: float, fwd: np.ndarray) -> float:
    """NIC (m²/s²) over ``NIC_SPAN_S`` from the trigger sample ``on``: T1 minus head forward
    acceleration (``lin`` (n, 2, 3) world-frame linear acceleration, trunk then head; the head's
    heading turned into the trunk's as :func:`nape.analysis.jolts._align_heading` does), as the
    stream's NIC (:mod:`.jolts`); NaN when the window holds too little after its trigger."""
    a0 = max(on - int(0.05 * rate), 0)
    if len(lin) - on < max(2, int(0.1 * rate)):
        return float("nan")
    span = slice(a0, min(on + int(NIC_ALIGN_S * rate), len(lin)))
    head_h = _align_heading(lin[span, 0, :2], lin[span, 1, :2], lin[:, 1, :2], rate)
    a_rel = (lin[:, 0, :2] - head_h) @ fwd
    seg = slice(a0, min(on + int(NIC_SPAN_S * rate), len(lin)))
    v_rel = np.cumsum(a_rel[seg]) / rate
    return float((0.2 * a_rel[seg] + v_rel ** 2).max())


def grade_windows(windows: list[dict], board: dict, align: list[np.ndarray], s: AnalysisSettings,
                  gyro_offset: np.ndarray) -> list[Jolt]:
    """Jolts measured from EVENT windows alone (:func:`nape.analysis.traces.event_windows`)."""
    out = []
    if windows and board["t_s"]:  # joined once (a day's log: hundreds of thousands of samples)
        board = {"t_s": [np.concatenate(board["t_s"])], "q": [np.concatenate(board["q"])]}
    for w in windows:
        ok = ~np.isnan(w["acc"]).any(axis=(1, 2)) & ~np.isnan(w["gyr"]).any(axis=(1, 2))
        if ok.sum() < 4:
            continue
        if w["trigger_s"] + w["t_trig_s"][0] < 0:
            continue  # from before the recording's first sample: not on its timeline
        acc, gyr, t_rel = w["acc"][ok], w["gyr"][ok], w["t_trig_s"][ok]
        k = acc.shape[1]
        rate = float(w["rate_hz"])
        off = gyro_offset if np.shape(gyro_offset) == (k, 3) else np.zeros((k, 3))
        gyr = gyr - off
        q0 = _board_q(board, w["trigger_s"] + t_rel[0])
        gravity = "the board's orientation"
        if q0 is None or q0.shape[0] != k:  # no day-log orientation near: the pre-trigger mean
            q0 = np.stack([_up_to_z(np.asarray(w["pre_grav"][j], float)) for j in range(k)])
            gravity = "the pre-trigger mean"
        q = np.stack([_integrate(q0[j], gyr[:, j], rate) for j in range(k)], axis=1)
        lin = quat.rotate(q, acc) - np.array([0.0, 0.0, G])  # world axes (heading of the board's own)
        cut = min(s.jolt_lowpass_hz, 0.45 * rate)
        sos = signal.butter(2, cut, fs=rate, output="sos")
        flt = signal.sosfilt(sos, lin.reshape(len(lin), -1), axis=0).reshape(lin.shape)
        trunk = flt[:, 0]
        vertical, horiz_v = trunk[:, 2], trunk[:, :2]
        fwd = quat.axis_in_world(quat.mul(q[:, 0], align[0]), 0)[:, :2]  # same frame as lin: any heading will do
        horiz = np.linalg.norm(horiz_v, axis=1)
        mag = np.linalg.norm(trunk, axis=1)
        ip = int(np.argmax(mag))
        peak_g = float(mag[ip] / G)
        if peak_g < s.shock_trigger_g:
            continue
        vert_g, horiz_g = float(np.abs(vertical).max() / G), float(horiz.max() / G)
        # sustained (vehicle-level) horizontal part: what is still there as the window ends
        veh = signal.sosfilt(signal.butter(2, min(s.vehicle_lowpass_hz, 0.45 * rate), fs=rate, output="sos"),
                             lin[:, 0, :2], axis=0)
        tail = t_rel >= t_rel[-1] - SUSTAINED_TAIL_S
        late = horiz_v[tail].mean(axis=0)
        f_late = fwd[tail].mean(axis=0)
        f_late /= max(float(np.linalg.norm(f_late)), 1e-9)
        on = int(np.clip(np.searchsorted(t_rel, 0.0), 0, len(t_rel) - 1))  # the trigger sample
        nic = dv = float("nan")
        if np.linalg.norm(late) / G >= SUSTAINED_SHARE * s.jolt_trigger_g and vert_g <= s.bump_vertical_ratio * horiz_g:
            # a manoeuvre (braking, accelerating, cornering): still pushing when the window ends
            along_m = float(late @ f_late)
            across_m = float(late[0] * -f_late[1] + late[1] * f_late[0])
            cause = "lateral" if abs(across_m) > abs(along_m) else "braking" if along_m < 0 else "acceleration"
            # the vehicle's level as the stream grades it: the sustained part averaged over VEHICLE_AVG_S
            kv = max(1, min(int(VEHICLE_AVG_S * rate), len(veh)))  # ("same" needs kv <= len)
            basis = "vehicle"
            size = float(np.convolve(np.linalg.norm(veh, axis=1), np.ones(kv) / kv, mode="same").max() / G)
            vehicle_g = size
        else:
            ih = int(np.argmax(horiz))
            f = fwd[ih] / max(float(np.linalg.norm(fwd[ih])), 1e-9)
            along = float(horiz_v[ih] @ f)
            vehicle_g = float("nan")
            f_on = fwd[on] / max(float(np.linalg.norm(fwd[on])), 1e-9)
            dv = _delta_v_kmh(lin[:, 0, :2] @ f_on, on, rate)
            if vert_g > s.bump_vertical_ratio * horiz_g:  # the seat's shock, as the stream grades a bump
                cause, basis = "bump", "seat"
                z = lin[:, 0, 2] - np.median(lin[:max(on, 1), 0, 2])
                size = float(np.abs(_seat_from_back(z, rate, s.seat_body_hz, s.seat_body_damping)).max() / G)
            elif along > 0:
                cause = "rear_impact_like"
                if k > 1:  # neck loading: NIC from the impact's own onset, head heading aligned to the trunk's
                    nic = _window_nic(lin, on, rate, f_on)
                if np.isfinite(nic):
                    basis, size = "nic", nic
                else:  # no head sensor: the upper back's velocity change, less certain
                    basis, size = "delta_v", dv
            else:  # a knock (a fall, a blow): its whole size
                cause, basis, size = "knock", "back", peak_g
            if cause != "rear_impact_like":
                dv = float("nan")
        grade = grade_of_size(size, tuple(getattr(s, key) for key in GRADE_BOUNDS[basis]))
        head_g = head_dps = neck_dps = bric = float("nan")
        if k > 1:
            head_g = float(np.linalg.norm(flt[:, 1], axis=1).max() / G)
            head_dps = float(np.degrees(np.linalg.norm(gyr[:, 1], axis=1).max()))
            w_world = quat.rotate(q, gyr)
            neck_dps = float(np.degrees(np.linalg.norm(w_world[:, 1] - w_world[:, 0], axis=1).max()))
            bric = float(np.sqrt(np.sum((np.abs(gyr[:, 1]).max(axis=0) / BRIC_CRIT) ** 2)))
        t_abs = w["trigger_s"] + t_rel
        peak_t = float(t_abs[ip])
        raw = np.linalg.norm(lin, axis=-1) / G
        trace = {"source": "event window", "rate_hz": rate, "t_rel_s": np.round(t_abs - peak_t, 4).tolist(),
                 "complete": bool(w["complete"])}
        for j, role in enumerate(w["roles"]):
            trace[f"{role}_acc_g"] = np.round(raw[:, j].astype(float), 4).tolist()
            trace[f"{role}_gyr_dps"] = np.round(np.degrees(np.linalg.norm(gyr[:, j], axis=1)), 2).tolist()
        out.append(Jolt(
            peak_t_s=peak_t, start_s=float(t_abs[0]), end_s=float(t_abs[-1]), cause=cause, grade=grade,
            peak_trunk_g=peak_g, peak_head_g=head_g, peak_head_dps=head_dps, peak_vertical_g=vert_g,
            peak_vehicle_g=vehicle_g,
            peak_neck_dps=neck_dps, bric=bric, nic_m2s2=float(nic),
            grade_basis=basis, grade_value=float(size), delta_v_kmh=float(dv),
            source="event window", trace=trace | {"gravity_from": gravity}))
    return merge_same_event(out, s.jolt_merge_s)


def merge_same_event(jolts: list[Jolt], merge_s: float) -> list[Jolt]:
    """One jolt per event: a braking or a corner still pushing when its window ends triggers the
    board again, so windows of the same cause that overlap or lie within ``merge_s``
    (``jolt_merge_s``, as the stream merges its runs) are one event, kept at its largest
    graded value and spanning all of them."""
    out: list[Jolt] = []
    for j in sorted(jolts, key=lambda j: j.start_s):
        last = out[-1] if out else None
        if last is not None and j.cause == last.cause and j.start_s <= last.end_s + merge_s:
            big = j if j.grade_value > last.grade_value else last
            out[-1] = replace(big, start_s=min(last.start_s, j.start_s), end_s=max(last.end_s, j.end_s))
        else:
            out.append(j)
    return out


def alerts_from_marks(marks: list[dict]) -> list[dict]:
    """The board's posture alerts from its ALERT_START / ALERT_END marks: ``start_s``,
    ``end_s`` (None: still on at the end), ``neck``, ``trunk`` (which alert)."""
    out: list[dict] = []
    open_: dict | None = None
    for m in marks:
        if m["t_s"] is None:
            continue
        if m["kind"] == "alert_start":
            if open_ is not None:
                out.append(open_)
            open_ = {"start_s": round(m["t_s"], 2), "end_s": None, "neck": bool(m["a"] & 1),
                     "trunk": bool(m["a"] & 2)}
        elif m["kind"] == "alert_end" and open_ is not None:
            open_["end_s"] = round(m["t_s"], 2)
            out.append(open_)
            open_ = None
    if open_ is not None:
        out.append(open_)
    return out


REDUCED_MEANING = ("While no phone or computer was connected, the board kept a day log: posture measured at "
                   "10 Hz from the board's own orientation; jolts only from the board's own high-rate windows; "
                   "walking and vehicle rides not measured there.")


def empty_rates() -> dict:
    """The ``rates`` finding of a recording without samples."""
    return {"full_rate_s": 0.0, "reduced_rate_s": 0.0, "spans": [], "log_dropped_samples": 0,
            "event_windows_dropped": 0, "event_windows": 0, "window_jolts": 0}


def rates(stream, reader, windows: int, window_jolts: int) -> tuple[dict, list[dict]]:
    """(the ``rates`` finding, the ``alerts`` finding) of a recording.

    ``rates``: ``full_rate_s`` and ``reduced_rate_s`` (seconds of data at each), ``spans`` (each
    ``{"rate": "full" | "reduced", "start_s", "end_s", "rate_hz"}``), ``log_dropped_samples``
    (the board's log was full), ``header_rate_words`` (when the header's rate matches no packet's),
    ``event_windows_dropped``, ``event_windows`` (received) and
    ``window_jolts`` (jolts graded from windows alone), and ``meaning`` in plain words when
    any span was at the reduced rate; with reduced spans and host re-fusion,
    ``board_orientation_check``: the board's own inclination against the host's re-fusion in the
    full-rate stretches (median and 95th percentile of the absolute difference, deg; seconds compared).
    """
    r = stream.rate or 1.0
    spans = []
    for kind, a, b in stream.spans:
        hz = r if kind == "full" else 10.0
        spans.append({"rate": kind, "start_s": round(a / r, 2), "end_s": round((b + r / hz) / r, 2),
                      "rate_hz": round(hz, 2)})
    for sp, nxt in zip(spans, spans[1:]):  # a span ends where the next begins at the latest
        sp["end_s"] = min(sp["end_s"], nxt["start_s"])
    marks = reader.mark_times()
    dropped = sum(m["b"] for m in marks if m["kind"] == "log_dropped")
    ev_dropped = sum(1 for m in marks if m["kind"] == "event_dropped")
    series_s = getattr(stream, "series_s", {"full": 0.0, "reduced": 0.0})
    out = {"full_rate_s": round(series_s["full"], 1), "reduced_rate_s": round(series_s["reduced"], 1),
           "spans": spans, "log_dropped_samples": int(dropped), "event_windows_dropped": ev_dropped,
           "event_windows": windows, "window_jolts": window_jolts}
    if series_s["reduced"] > 0 or dropped:
        out["meaning"] = REDUCED_MEANING
    diff = np.concatenate(stream.board_diff) if getattr(stream, "board_diff", None) else np.zeros((0, 1))
    diff = diff[np.isfinite(diff).all(axis=1)] if len(diff) else diff
    if series_s["reduced"] > 0 and len(diff):
        # the reduced-rate posture rests on the board's own orientation: how far its inclination
        # was from the host's re-fusion where both were measured (the worse IMU of each sample)
        worst = diff.max(axis=1)
        out["board_orientation_check"] = {"median_abs_deg": round(float(np.median(worst)), 2),
                                          "p95_abs_deg": round(float(np.percentile(worst, 95)), 2),
                                          "compared_s": round(len(worst) / 10.0, 1)}
    if dropped:
        out["dropped_words"] = (f"The board's day log was full: it dropped {dropped} of its oldest posture "
                                f"samples ({fmt_duration(dropped / 10.0)} at 10 Hz; {REASON_LOG_FULL}).")
    words = reader.header_rate_words() if hasattr(reader, "header_rate_words") else None
    if words:
        out["header_rate_words"] = words
    return out, alerts_from_marks(marks)
