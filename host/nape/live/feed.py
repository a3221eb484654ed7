"""Live angles, alert, jolts and link figures from the recorder's packets.

:class:`LiveFeed` is fed every accepted packet (``nape.recorder.record(on_packet=...)``)
and turns it into *frames* for the live page (plain dicts, JSON-ready):

- angles from the firmware's quaternions, with the analysis' own helpers
  (:func:`nape.analysis.orientation.segment_alignment`, ``inclination``, ``joint_angles``):
  upper-back (trunk) and head inclination, neck flexion = head − trunk (ISO 11226), neck
  side bend and turn (rotation), degrees, forward / right / left positive as in the report;
- the neutral posture: the first still, upright ``neutral_window_s`` after
  ``calib_settle_s`` (the analysis' test, :func:`nape.analysis.calibration._first_still_upright`),
  or "now" when the wearer presses the page's button (:meth:`LiveFeed.set_neutral`);
  until then the angles are relative to the first samples and flagged as provisional;
- the posture alert's state and countdown (:mod:`.alert`) and whether the board buzzes;
- jolts as the board flags them (the JOLT flag's rising edge) with a rough live strength
  (largest departure of the acceleration magnitude from 1 g); the report grades them;
- link quality from the recorder's :class:`nape.recorder.RecordStats` and the transport.

Backfilled samples (re-sent from the board's buffer, minutes old) are counted, not drawn.
Frames are decimated to ``frame_hz`` (default 50 Hz) of sample time.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from .. import quat, wire
from ..analysis.calibration import _first_still_upright
from ..analysis.orientation import inclination, joint_angles, segment_alignment, yaw, z_rotation
from ..settings import AnalysisSettings
from .alert import PostureAlertMirror

GRAVITY = 9.80665
#: Frames per second of sample time sent to the page.
FRAME_HZ = 50.0
#: Jolts kept for the page.
JOLTS_SHOWN = 8
#: A sensor whose UP arrow is further than this from vertical in the neutral posture is
#: probably on wrong (calibration removes any tilt, but hardware/MOUNTING.md asks for the
#: arrow along the spine, pointing to the head); Nape default.
MOUNT_CHECK_DEG = 45.0
#: Directions of neck motion tracked live: (name, angle, sign).
_FURTHEST = (("flexion", "neck", 1.0), ("extension", "neck", -1.0), ("lateral_left", "side", -1.0),
             ("lateral_right", "side", 1.0), ("rotation_left", "turn", 1.0), ("rotation_right", "turn", -1.0))


class LiveFeed:
    """Per-packet state of the live view. Not thread-safe: feed it from one event loop.

    Args:
        settings: thresholds (alert limits, neutral detection); defaults when None.
        frame_hz: frames per second of sample time sent to the page.
    """

    def __init__(self, settings: AnalysisSettings | None = None, frame_hz: float = FRAME_HZ) -> None:
        self.s = settings or AnalysisSettings()
        self.frame_hz = frame_hz
        self.alert = PostureAlertMirror(self.s)
        self.stats = None  # nape.recorder.RecordStats, set by on_progress
        self.link = None  # the transport's stats (disconnects, reconnect_s, last_status)
        self.roles: tuple[str, ...] = ()
        self.rate_hz = 0.0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.align: list[np.ndarray] | None = None
        self.neutral = {"state": "waiting", "detail": "stand or sit upright, still, looking ahead"}
        self.heading: float | None = None  # head–trunk heading offset, rad (tracked)
        self.buf: deque = deque()  # recent live samples for the neutral test: (acc, gyr, quat)
        self.jolts: deque = deque(maxlen=JOLTS_SHOWN)
        self.jolt_on = False
        self.board_buzzing = False
        self.event_windows = 0
        self.latest: dict | None = None
        self.extra: dict = {}  # e.g. the ROM test's prompt, set by the caller
        self._subscribers: list = []
        self._want_neutral = False
        self.furthest: dict[str, float] = {}  # since the neutral was taken, deg

    # ------------------------------------------------------------ input

    def subscribe(self, fn) -> None:
        """``fn(frame)`` for every new frame."""
        self._subscribers.append(fn)

    def on_progress(self, stats) -> None:
        """The recorder's ``on_progress``: keeps its stats for the link figures."""
        self.stats = stats

    def set_neutral(self) -> None:
        """Take the next live sample as the neutral posture (the wearer is upright now)."""
        self._want_neutral = True

    def on_packet(self, packet, arrival_s: float | None = None) -> None:
        """One accepted packet (``wire.SamplesPacket`` or ``wire.EventPacket``)."""
        if isinstance(packet, wire.EventPacket):
            self.event_windows += 1
            return
        if not isinstance(packet, wire.SamplesPacket):
            return  # the offline day log (LOG, MARKS): hours old, in the recording only
        if packet.count == 0 or packet.quat.shape[1] == 0:
            return
        arrival_s = time.time() if arrival_s is None else arrival_s
        if packet.flags[0] & wire.FLAG_BACKFILL:
            return  # minutes old: counted in the link figures, not drawn
        self.roles = packet.roles
        self.rate_hz = 1e6 / packet.period_us if packet.period_us else 100.0
        if self.last_seq is not None and packet.seq < self.last_seq:  # the board rebooted
            self.first_seq = None
        if self.first_seq is None:
            self.first_seq = packet.seq
        self.last_seq = packet.seq + packet.count - 1
        self._neutral_from(packet)
        frame = self._frame(packet, arrival_s)
        self.latest = frame
        for fn in list(self._subscribers):
            fn(frame)

    # ------------------------------------------------------------ neutral

    def _neutral_from(self, p) -> None:
        """Keep the last window of samples; take the neutral when it is still and upright
        (or at once when asked); until then a provisional neutral from the first samples."""
        s = self.s
        win = max(2, int(round(s.neutral_window_s * self.rate_hz)))
        for i in range(p.count):
            self.buf.append((p.acc[i], p.gyr[i], p.quat[i]))
        while len(self.buf) > win:
            self.buf.popleft()
        if self._want_neutral:
            self._want_neutral = False
            self._take_neutral(p.quat[-1:], "set by you", "taken when you pressed “Set neutral”")
            return
        if self.align is None:
            self._take_neutral(p.quat[:1], "provisional",
                               "not yet: stand or sit upright, still, looking ahead for "
                               f"{s.neutral_window_s:g} s")
        if self.neutral["state"] != "provisional" or len(self.buf) < win:
            return
        settle = int(s.calib_settle_s * self.rate_hz)
        if self.last_seq - self.first_seq + 1 < settle + win:
            return
        acc = np.array([b[0] for b in self.buf])
        gyr = np.array([b[1] for b in self.buf])
        _i0, still = _first_still_upright(acc, gyr, win, 0, s)
        if still:
            self._take_neutral(np.array([b[2] for b in self.buf]), "captured",
                               f"taken from {s.neutral_window_s:g} s still and upright")

    def _take_neutral(self, qs: np.ndarray, state: str, detail: str) -> None:
        """Neutral = the mean orientation of ``qs`` (n, n_imu, 4) per sensor."""
        neutral = []
        for k in range(qs.shape[1]):
            m = qs[:, k] * np.sign(qs[:, k] @ qs[0, k])[:, None]  # one hemisphere before averaging
            mean = m.mean(axis=0)
            neutral.append(mean / np.linalg.norm(mean))
        self.align = [segment_alignment(q) for q in neutral]
        segs = [quat.mul(q, a) for q, a in zip(neutral, self.align)]
        self.heading = float(yaw(segs[0]) - yaw(segs[1])) if len(segs) > 1 else None
        self.neutral = {"state": state, "detail": detail, "mounting": mounting(neutral, self.roles)}
        self.furthest = {}

    # ------------------------------------------------------------ angles

    def angles(self, q: np.ndarray) -> dict[str, np.ndarray]:
        """Angles (deg) of quaternions ``q`` (n, n_imu, 4) relative to the neutral."""
        seg = np.stack([quat.mul(q[:, k], self.align[k]) for k in range(q.shape[1])], axis=1)
        pitch, roll, tilt = inclination(seg)
        out = {"trunk": pitch[:, 0], "trunk_side": roll[:, 0], "trunk_tilt": tilt[:, 0]}
        if q.shape[1] > 1:
            out["head"] = pitch[:, 1]
            out["neck"] = pitch[:, 1] - pitch[:, 0]
            raw = yaw(seg[:, 0]) - yaw(seg[:, 1])
            ok = (tilt[:, 0] < 45) & (tilt[:, 1] < 60)
            if ok.any():  # track the heading offset slowly (analysis: heading_tau_s)
                d = np.angle(np.exp(1j * (raw[ok].mean() - self.heading)))
                a = min(1.0, ok.sum() / (self.rate_hz * self.s.heading_tau_s))
                self.heading += a * float(d)
            rel = quat.mul(quat.mul(quat.conj(seg[:, 0]), z_rotation(np.full(len(q), self.heading))), seg[:, 1])
            _flex, lat, axial = joint_angles(rel)
            out["side"] = lat
            out["turn"] = axial
        return out

    def _frame(self, p, arrival_s: float) -> dict:
        a = self.angles(p.quat)
        step = max(1, int(round(self.rate_hz / self.frame_hz)))
        idx = list(range(p.count - 1, -1, -step))[::-1]  # always include the newest sample
        seqs = p.seq + np.arange(p.count)
        lying = bool(a["trunk_tilt"][-1] > self.s.lying_trunk_deg)
        t = (seqs - self.first_seq) / self.rate_hz
        neck = a.get("neck")
        for i in range(p.count):
            view = self.alert.update(float(t[i]), float(a["trunk"][i]),
                                     None if neck is None else float(neck[i]), bool(a["trunk_tilt"][i] > self.s.lying_trunk_deg))
        self.board_buzzing = bool(p.flags[-1] & wire.FLAG_ALERT)
        self._jolts(p, t)
        self._track_furthest(a)
        keys = [k for k in ("trunk", "head", "neck", "side", "turn", "trunk_side") if k in a]
        samples = [[int(seqs[i])] + [round(float(a[k][i]), 2) for k in keys] for i in idx]
        return {
            "type": "frame", "arrival_ms": round(arrival_s * 1000.0, 1), "period_ms": 1000.0 / self.rate_hz,
            "keys": ["seq"] + keys, "samples": samples, "t_s": round(float(t[-1]), 2), "lying": lying,
            "neutral": dict(self.neutral), "alert": view.as_dict() | {"board_buzzing": self.board_buzzing},
            "jolts": list(self.jolts), "link": self.link_figures(), "furthest_deg": dict(self.furthest),
            **self.extra,
        }

    def _track_furthest(self, a: dict) -> None:
        """Furthest neck angle so far in each direction (how far can I move today),
        names as in nape.analysis.rom.DIRECTIONS."""
        if "neck" not in a:
            return
        for name, key, sign in _FURTHEST:
            v = float((sign * a[key]).max())
            if v > self.furthest.get(name, 0.0):
                self.furthest[name] = round(v, 1)

    def _jolts(self, p, t: np.ndarray) -> None:
        """A jolt per rising edge of the board's JOLT flag; live strength = largest
        departure of any sensor's acceleration magnitude from 1 g in the packet."""
        on = (p.flags & wire.FLAG_JOLT) != 0
        prev = np.concatenate([[self.jolt_on], on[:-1]])
        starts = np.flatnonzero(on & ~prev)
        self.jolt_on = bool(on[-1])
        if len(starts):
            dev = np.abs(np.linalg.norm(p.acc, axis=-1) / GRAVITY - 1.0).max()
            for i in starts:
                self.jolts.appendleft({"t_s": round(float(t[i]), 1), "seq": int(p.seq + i),
                                       "strength_g": round(float(dev), 2), "wall_ms": round(time.time() * 1000)})

    def link_figures(self) -> dict:
        """Samples, losses, backfill and link drops so far."""
        s, link = self.stats, self.link
        out = {"rate_hz": round(self.rate_hz, 1), "event_windows": self.event_windows}
        if s is not None:
            out |= {"samples": s.samples, "lost": s.lost_samples, "backfilled": s.backfilled_samples,
                    "duplicates": s.duplicate_samples, "malformed": s.malformed}
        if link is not None:
            out |= {"drops": getattr(link, "disconnects", 0), "reconnects": len(getattr(link, "reconnect_s", []) or [])}
            st = getattr(link, "last_status", None)
            if st is not None:
                out["buffer_pct"] = round(st.buffer_fill_permille / 10, 1)
                if getattr(st, "battery_pct", None) is not None:
                    out["battery_pct"] = st.battery_pct
        return out

    def hello(self) -> dict:
        """The first message to a page: the limits it draws against."""
        s = self.s
        return {"type": "hello", "limits": {"neck_deg": s.neck_flexion_deg, "back_deg": s.trunk_inclination_deg,
                                            "hold_s": s.hold_s, "hysteresis_deg": s.hysteresis_deg,
                                            "lying_deg": s.lying_trunk_deg},
                "sources": {"neck_deg": s.sources.get("neck_flexion_deg", ""),
                            "back_deg": s.sources.get("trunk_inclination_deg", "")}}


def mounting(neutral: list[np.ndarray], roles) -> list[str]:
    """How each sensor sits in the neutral posture, plainly: the angle between its UP arrow
    (+z) and vertical (hardware/MOUNTING.md)."""
    out = []
    for q, role in zip(neutral, roles):
        up = quat.axis_in_world(np.asarray(q, float), 2)
        tilt = float(np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0))))
        name = "upper-back sensor" if role == "trunk" else "head sensor"
        if tilt > 90:
            out.append(f"{name}: upside down ({tilt:.0f}° off) — turn it so the UP arrow points to your head")
        elif tilt > MOUNT_CHECK_DEG:
            out.append(f"{name}: {tilt:.0f}° off vertical — check the UP arrow runs along your spine, towards your head")
        else:
            out.append(f"{name}: {tilt:.0f}° off vertical — fine, calibration removes it")
    return out
