"""The posture alert's state, computed on the host for the live view.

The board decides when to buzz (firmware/posture.py); the stream only carries whether it
is buzzing right now (the ALERT flag). To show *how long until* a buzz, the live view runs
the same rule on the host, with the same settings — the analysis' ``neck_flexion_deg``,
``trunk_inclination_deg``, ``hold_s``, ``hysteresis_deg``, ``end_grace_s`` and
``lying_trunk_deg`` (nape.settings), whose defaults are the board's
(firmware/config.py ``POSTURE_*``):

    ok --watched angle over its limit--> over (counting down hold_s)
    over --held hold_s--> alerted
    over / alerted --back below limit − hysteresis for end_grace_s--> ok

The watched angle is the worse of neck flexion (against the neck limit) and upper-back
inclination (against the back limit). Lying down: no alert (state "lying"). Times are
sample times (seconds), so a stalled link does not advance the countdown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import AnalysisSettings


@dataclass
class AlertView:
    """What the page shows about the alert (angles in degrees, times in seconds)."""

    state: str  # "ok", "over", "alerted", "lying"
    watched: str  # "neck" or "back": the angle furthest over its limit
    margin_deg: float  # watched angle minus its limit (> 0: over)
    countdown_s: float | None  # seconds until the buzz while "over"; None otherwise
    held_s: float  # seconds the current poor posture has lasted (0 when ok)

    def as_dict(self) -> dict:
        return {"state": self.state, "watched": self.watched, "margin_deg": round(self.margin_deg, 1),
                "countdown_s": None if self.countdown_s is None else round(self.countdown_s, 1),
                "held_s": round(self.held_s, 1)}


class PostureAlertMirror:
    """The board's alert rule on the host (see the module doc)."""

    def __init__(self, s: AnalysisSettings) -> None:
        self.s = s
        self.state = "ok"
        self.over_since: float | None = None
        self.corrected_since: float | None = None
        self.view = AlertView("ok", "back", 0.0, None, 0.0)

    def update(self, t_s: float, trunk_deg: float, neck_deg: float | None, lying: bool) -> AlertView:
        """Feed one sample: time (s), upper-back inclination and neck flexion (deg, None
        without a head sensor), lying (trunk tilted beyond ``lying_trunk_deg``)."""
        s = self.s
        margin, watched = trunk_deg - s.trunk_inclination_deg, "back"
        if neck_deg is not None and neck_deg - s.neck_flexion_deg > margin:
            margin, watched = neck_deg - s.neck_flexion_deg, "neck"
        if lying:
            self.state, self.over_since, self.corrected_since = "ok", None, None
            self.view = AlertView("lying", watched, margin, None, 0.0)
            return self.view
        if self.state == "ok" and margin > 0:
            self.state, self.over_since, self.corrected_since = "over", t_s, None
        if self.state != "ok":
            if margin < -s.hysteresis_deg:
                self.corrected_since = t_s if self.corrected_since is None else self.corrected_since
                if t_s - self.corrected_since >= s.end_grace_s:
                    self.state, self.over_since, self.corrected_since = "ok", None, None
            else:
                self.corrected_since = None
        if self.state == "over" and self.over_since is not None and t_s - self.over_since >= s.hold_s:
            self.state = "alerted"
        held = 0.0 if self.over_since is None else t_s - self.over_since
        countdown = max(0.0, s.hold_s - held) if self.state == "over" else None
        self.view = AlertView(self.state, watched, margin, countdown, held)
        return self.view
