"""Posture alert: when to buzz, from the fused orientations, MicroPython.

Angles (degrees, docs/CONVENTIONS.md, the same definitions as the host's nape.analysis):

* segment inclination: sagittal pitch of the segment's forward (x) axis below the
  horizontal, ``asin(-x_world.z)``, forward / flexion positive, minus the neutral pitch
  stored by ``calibrate`` (upright, looking ahead);
* neck flexion = head inclination - trunk inclination (ISO 11226 definition);
* lying: the trunk's up (z) axis tilted more than ``lying_deg`` from vertical (absolute,
  not relative to neutral, as the host does).

Which angle is watched: with a head IMU, the worse of neck flexion (against
``threshold_deg``) and trunk inclination (against ``trunk_threshold_deg``); with the
trunk IMU alone, trunk inclination only. The state machine runs on ``margin_deg``, how
far the watched angle is above its threshold (> 0: over):

    OK --margin > 0--> OVER (timing from over_since_ms)
    OVER --held hold_s--> ALERTED (buzz; again every repeat_s while not corrected)
    OVER / ALERTED --corrected (margin < -rearm_deg) for rearm_s--> OK (re-armed)

A correction shorter than ``rearm_s`` changes nothing: the hold timer keeps running
(a glance up does not restart a minute of slouching) and the buzz waits while the
wearer is corrected. This mirrors the host's episode rule (enter above the threshold,
leave below threshold - hysteresis for longer than a grace time), so an alert fires
when a host episode reaches ``hold_s``. Lying down or quiet hours send the machine
straight to OK (nothing buzzes, and timing starts afresh afterwards).

``update`` is called at the fused rate (100 Hz). Floats are heap objects on the ESP32:
an update makes 20 of them with a head IMU, 11 without (320 / 176 bytes on the ESP32,
640 / 352 on the 64-bit unix port; tests/firmware/test_posture.py checks it), and
nothing else; thresholds, times in ms and the lying limit are precomputed. Calling it
at 10 Hz instead is fine: only the timing resolution changes.
"""

import math
import time

from micropython import const

import config

STATE_OK = const(0)
STATE_OVER = const(1)
STATE_ALERTED = const(2)
STATE_NAMES = ("ok", "over", "alerted")

_DEG = 57.29577951308232  # degrees per radian


class PostureSettings:
    """Alert settings (units in the names). Defaults come from ``config.py`` (the one
    source of the board's posture defaults, with the same values and sources as the
    host's ``nape.settings``); sources:

    Args:
        threshold_deg: neck flexion above which posture is poor, deg (default 20).
            Norasi H. et al. (2022), Exposure to neck flexion and risk of neck pain: a
            systematic review, Appl Ergon: 20 deg was the best-supported risk cut-off.
        trunk_threshold_deg: trunk (upper back) inclination above which the back counts
            as hunched, deg (default 20). ISO 11226:2000: trunk inclination 0-20 deg
            acceptable, 20-60 deg only for limited holding times.
        hold_s: poor posture held this long before the buzz, s (default 60; the host's
            ``hold_s``: ISO 11226 limits holding times, Nape reports >= 1 min).
        rearm_deg: hysteresis, deg (default 5): corrected means this far below the
            threshold (the host's ``hysteresis_deg``).
        rearm_s: corrected this long re-arms the alert, s (default 5; the host's
            ``end_grace_s``). Shorter corrections do not restart the hold timer.
        lying_deg: trunk up-axis tilt from vertical beyond which the wearer is lying and
            nothing buzzes, deg (default 60; the host's ``lying_trunk_deg``).
        quiet_start_h, quiet_end_h: quiet hours, local hour of day 0-24 (default 22 to 7;
            Nape default): no buzz from start to end, wrapping over midnight. Equal
            values or None disable quiet hours.
        repeat_s: buzz again after this long if still not corrected, s (default 120;
            Nape default); 0 or None: buzz once per episode.

    Raises:
        ValueError: a negative angle or duration, or lying_deg outside 0-180.
    """

    def __init__(self, threshold_deg=config.POSTURE_NECK_FLEXION_LIMIT_DEG,
                 trunk_threshold_deg=config.POSTURE_TRUNK_INCLINATION_LIMIT_DEG,
                 hold_s=config.POSTURE_HOLD_S, rearm_deg=config.POSTURE_REARM_DEG,
                 rearm_s=config.POSTURE_REARM_S, lying_deg=config.POSTURE_LYING_DEG,
                 quiet_start_h=config.POSTURE_QUIET_START_H,
                 quiet_end_h=config.POSTURE_QUIET_END_H, repeat_s=config.POSTURE_REPEAT_S):
        for v in (hold_s, rearm_deg, rearm_s):
            if v < 0:
                raise ValueError("durations and rearm_deg must be >= 0")
        if not 0 < lying_deg <= 180:
            raise ValueError("lying_deg must be in (0, 180]")
        if repeat_s is not None and repeat_s < 0:
            raise ValueError("repeat_s must be >= 0")
        self.threshold_deg = threshold_deg
        self.trunk_threshold_deg = trunk_threshold_deg
        self.hold_s = hold_s
        self.rearm_deg = rearm_deg
        self.rearm_s = rearm_s
        self.lying_deg = lying_deg
        self.quiet_start_h = quiet_start_h
        self.quiet_end_h = quiet_end_h
        self.repeat_s = repeat_s


def pitch_deg(q):
    """Sagittal pitch of the segment's x axis below horizontal, deg (forward +).

    ``q`` = (w, x, y, z) sensor-to-world; x_world.z = 2 (x z - w y).
    """
    s = 2.0 * (q[0] * q[2] - q[1] * q[3])
    if s > 1.0:
        s = 1.0
    elif s < -1.0:
        s = -1.0
    return math.asin(s) * _DEG


class PostureAlert:
    """Posture alert state machine (see the module docstring).

    Args:
        settings: ``PostureSettings`` (defaults when None).

    Attributes (read-only for callers):
        state: ``STATE_OK``, ``STATE_OVER`` or ``STATE_ALERTED`` (``STATE_NAMES[state]``).
        over_since_ms: ticks_ms when the current poor-posture episode began; None in OK.
        alerts: buzzes so far (first buzzes and repeats).
        trunk_deg: trunk inclination relative to neutral, deg (last update).
        head_deg, neck_deg: head inclination and neck flexion, deg; None without head.
        margin_deg: watched angle minus its threshold, deg (> 0: over).
        lying, quiet: the last update was suppressed for this reason.
        neutral_trunk_deg, neutral_head_deg: pitches stored by ``calibrate``.
    """

    def __init__(self, settings=None):
        s = settings if settings is not None else PostureSettings()
        self.settings = s
        self._thr = float(s.threshold_deg)
        self._tthr = float(s.trunk_threshold_deg)
        self._exit = -float(s.rearm_deg)
        self._hold_ms = int(s.hold_s * 1000 + 0.5)
        self._rearm_ms = int(s.rearm_s * 1000 + 0.5)
        self._repeat_ms = int(s.repeat_s * 1000 + 0.5) if s.repeat_s else 0
        # lying: z_world.z = 1 - 2 (x^2 + y^2) < cos(lying) <=> x^2 + y^2 > sin^2(lying / 2)
        h = math.sin(s.lying_deg / _DEG / 2)
        self._lie = h * h
        qs, qe = s.quiet_start_h, s.quiet_end_h
        if qs is None or qe is None or qs == qe:
            self._quiet_on = False
            self._qs = self._qe = 0
        else:
            self._quiet_on = True
            self._qs = qs
            self._qe = qe
        self.neutral_trunk_deg = 0.0
        self.neutral_head_deg = 0.0
        self.state = STATE_OK
        self.over_since_ms = None
        self._over_ms = 0  # = over_since_ms while not OK (an int for ticks_diff)
        self.alerts = 0
        self.trunk_deg = 0.0
        self.head_deg = None
        self.neck_deg = None
        self.margin_deg = 0.0
        self.lying = False
        self.quiet = False
        self._corrected_since = None
        self._last_alert_ms = 0

    def calibrate(self, trunk_q, head_q=None):
        """Store the neutral pitches (wearer upright, looking straight ahead).

        Later angles are relative to these. Without ``head_q`` the head neutral is kept.
        """
        self.neutral_trunk_deg = pitch_deg(trunk_q)
        if head_q is not None:
            self.neutral_head_deg = pitch_deg(head_q)

    def in_quiet_hours(self, hour_of_day):
        """True if ``hour_of_day`` (0-24, int or float; None = clock unknown) is quiet."""
        if not self._quiet_on or hour_of_day is None:
            return False
        qs = self._qs
        qe = self._qe
        if qs < qe:
            return qs <= hour_of_day < qe
        return hour_of_day >= qs or hour_of_day < qe

    def _reset(self):
        self.state = STATE_OK
        self.over_since_ms = None
        self._corrected_since = None

    # The update is split into small methods on purpose: MicroPython puts a frame with
    # more than ~11 slots (arguments + locals + stack) on the heap and frees it on
    # return. Floats allocated while such a frame lives make the allocator rescan all
    # the garbage since the last collection on every call (gc_free rewinds its
    # search start to the freed frame), which made a one-method update 10-100x
    # slower on a large (PSRAM-sized) heap. Each method below stays within 11 slots.

    def update(self, t_ms, trunk_q, head_q=None, hour_of_day=None):
        """Feed one fused sample; True on the update where a buzz should START.

        Args:
            t_ms: ``time.ticks_ms()`` of the sample (wrapping; compared with ticks_diff).
            trunk_q: trunk orientation (w, x, y, z), sensor-to-world.
            head_q: head orientation, or None without a head IMU.
            hour_of_day: local hour 0-24 for quiet hours, or None (no clock: never quiet).
        """
        self._angles(trunk_q, head_q)
        self.quiet = self.in_quiet_hours(hour_of_day)
        if self.lying or self.quiet:
            if self.state != STATE_OK:
                self._reset()
            return False
        return self._step(t_ms)

    def _angles(self, tq, hq):
        """Angles of this sample into the attributes (floats: the allocating part)."""
        self.lying = tq[1] * tq[1] + tq[2] * tq[2] > self._lie
        trunk = pitch_deg(tq) - self.neutral_trunk_deg
        self.trunk_deg = trunk
        margin = trunk - self._tthr
        if hq is None:
            self.head_deg = None
            self.neck_deg = None
        else:
            margin = self._neck(hq, trunk, margin)
        self.margin_deg = margin

    def _neck(self, hq, trunk, margin):
        head = pitch_deg(hq) - self.neutral_head_deg
        neck = head - trunk
        self.head_deg = head
        self.neck_deg = neck
        m = neck - self._thr
        return m if m > margin else margin

    def _step(self, t_ms):
        """State machine on ``margin_deg``; True when a buzz starts. No allocation."""
        st = self.state
        if st == STATE_OK:
            if self.margin_deg <= 0.0:
                return False
            st = self.state = STATE_OVER
            self.over_since_ms = self._over_ms = t_ms
            self._corrected_since = None
        if self.margin_deg < self._exit:  # corrected
            return self._correcting(t_ms)
        self._corrected_since = None
        if st == STATE_OVER:
            if time.ticks_diff(t_ms, self._over_ms) < self._hold_ms:
                return False
            self.state = STATE_ALERTED
        elif not self._repeat_ms or time.ticks_diff(t_ms, self._last_alert_ms) < self._repeat_ms:
            return False
        self._last_alert_ms = t_ms
        self.alerts += 1
        return True

    def _correcting(self, t_ms):
        cs = self._corrected_since
        if cs is None:
            self._corrected_since = cs = t_ms
        if time.ticks_diff(t_ms, cs) >= self._rearm_ms:
            self._reset()
        return False
