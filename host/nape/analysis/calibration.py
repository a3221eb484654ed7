"""Neutral posture: captured by the wearer, or estimated from the recording.

Priority: (1) a NOTE chunk ``{"kind": "calibration", "trunk_q": [w,x,y,z], "head_q": [...]}``
written when the wearer pressed "calibrate" (quaternions from the same fusion the analysis
uses: ``"fusion": "firmware"`` or ``"vqf"``); (2) the first still, upright stretch of
``neutral_window_s`` within the first ``calib_search_s`` seconds (the wearer is asked to
start upright, hardware/MOUNTING.md); (3) the first ``neutral_window_s`` seconds, flagged
as a guess. The report says which was used.
"""

from __future__ import annotations

import numpy as np

from .. import quat
from ..settings import AnalysisSettings
from .orientation import Refuser
from .stream import BlockReader


def captured(rec) -> dict | None:
    """The last calibration NOTE in the recording, if any."""
    found = None
    for _t, note in rec.iter_notes():
        if note.get("kind") == "calibration" and "trunk_q" in note:
            found = note
    return found


def estimate(rec, mask: int, n_imu: int, s: AnalysisSettings) -> dict:
    """Neutral quaternions per IMU (list of [w,x,y,z]) and how they were found."""
    note = captured(rec)
    if note is not None:
        qs = [note["trunk_q"]] + ([note["head_q"]] if n_imu > 1 and "head_q" in note else [])
        if len(qs) == n_imu:
            return {"method": "captured", "detail": "neutral posture captured by the wearer",
                    "neutral_q": qs, "fusion": note.get("fusion", "firmware")}
    quats, gyrs = [], []
    refuser = None
    n_max = None
    for b in BlockReader(rec, mask, batch=500):
        if n_max is None:
            n_max = int(s.calib_search_s / b.period_s)
            refuser = Refuser(n_imu, b.period_s) if s.refuse else None
            period = b.period_s
        quats.append(refuser(b.acc, b.gyr) if refuser else b.quat)
        gyrs.append(np.linalg.norm(b.gyr, axis=2).max(axis=1))
        if sum(len(g) for g in gyrs) >= n_max:
            break
    if not quats:
        return {"method": "none", "detail": "no samples", "neutral_q": [[1, 0, 0, 0]] * n_imu}
    q = np.concatenate(quats)[:n_max]
    g = np.concatenate(gyrs)[:n_max]
    win = max(1, int(s.neutral_window_s / period))
    settle = int(s.calib_settle_s / period)
    tilt = np.degrees(np.arccos(np.clip(quat.axis_in_world(q[:, 0], 2)[:, 2], -1, 1)))
    ok = (g < np.radians(s.still_dps)) & (tilt < s.upright_tilt_deg)
    ok[:settle] = False
    run = np.convolve(ok.astype(np.int32), np.ones(win, dtype=np.int32), mode="valid")
    hits = np.flatnonzero(run == win)
    if len(hits):
        i0 = int(hits[0])
        method, detail = "automatic", (f"first still upright {s.neutral_window_s:g} s "
                                       f"(at {i0 * period:.0f} s) taken as neutral; no calibration captured")
    else:
        i0 = min(settle, max(0, len(q) - win))
        method, detail = "guess", (f"no still upright stretch found in the first {s.calib_search_s:g} s; "
                                   f"{s.neutral_window_s:g} s from {i0 * period:.0f} s assumed neutral")
    seg = q[i0: i0 + win]
    neutral = []
    for k in range(n_imu):
        m = seg[:, k] * np.sign(seg[:, k] @ seg[0, k])[:, None]  # same hemisphere before averaging
        mean = m.mean(axis=0)
        neutral.append((mean / np.linalg.norm(mean)).tolist())
    return {"method": method, "detail": detail, "neutral_q": neutral, "start_s": i0 * period,
            "fusion": "vqf" if s.refuse else "firmware"}
