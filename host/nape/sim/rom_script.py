"""The simulated wearer doing the guided neck range-of-motion test (``nape rom --virtual``).

:func:`rom_script` turns :class:`nape.analysis.rom.Protocol` into simulator segments: the
wearer sits upright and still for the neutral phase, then for each direction moves the
head to its end range in ``move_s`` (minimum-jerk ramp), holds it ``hold_s``, returns to
neutral in ``return_s`` and rests ``rest_s``. Each end range is a pure single-plane joint
posture (``Posture.neck_flexion_deg`` / ``neck_lateral_deg`` / ``neck_axial_deg``), with
the head micro-movements and trunk sway of :mod:`nape.sim.motion` on top (``sway``).

:data:`DEFAULT_MAXIMA` are a healthy adult's end ranges (within the typical bands of
:mod:`nape.settings`); pass other values to simulate a stiffer or freer neck.

:func:`simulate_rom` returns the :class:`~nape.sim.SimResult` and the ground truth:
the scripted end ranges and the end ranges of the *true* joint angles measured with the
same held-maximum rule the analysis uses (:func:`nape.analysis.rom.robust_max`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .script import Posture, Segment
from .settings import SimError, SimSettings
from .simulate import SimResult, simulate

DEFAULT_MAXIMA: dict[str, float] = {
    "flexion": 55.0, "extension": 66.0, "lateral_left": 42.0, "lateral_right": 41.0,
    "rotation_left": 75.0, "rotation_right": 73.0,
}
_SEAT = {"hip_height_m": 0.50}


def _posture(direction: str, deg: float) -> Posture:
    field_sign = {"flexion": ("neck_flexion_deg", 1), "extension": ("neck_flexion_deg", -1),
                  "lateral_left": ("neck_lateral_deg", -1), "lateral_right": ("neck_lateral_deg", 1),
                  "rotation_left": ("neck_axial_deg", 1), "rotation_right": ("neck_axial_deg", -1)}
    name, sign = field_sign[direction]
    return Posture(**{name: sign * float(deg)}, **_SEAT)


def rom_script(maxima: dict[str, float] | None = None, protocol=None, sway: float = 0.3) -> list[Segment]:
    """Segments of the guided test.

    Args:
        maxima: end range per direction, deg (positive; missing directions use
            :data:`DEFAULT_MAXIMA`).
        protocol: a :class:`nape.analysis.rom.Protocol` (default timing if None).
        sway: scale of postural sway and head micro-movements (1 = relaxed standing).

    Raises:
        SimError: unknown direction or an end range outside 0..120°.
    """
    from nape.analysis.rom import Protocol

    p = protocol or Protocol()
    m = dict(DEFAULT_MAXIMA)
    for k, v in (maxima or {}).items():
        if k not in DEFAULT_MAXIMA:
            raise SimError(f"unknown ROM direction {k!r}; known: {', '.join(DEFAULT_MAXIMA)}")
        if not 0.0 <= float(v) <= 120.0:
            raise SimError(f"ROM end range for {k} must be 0..120°, got {v!r}")
        m[k] = float(v)
    neutral = Posture(**_SEAT)
    segs = [Segment("rom_neutral", p.neutral_s, "sitting", neutral, "upright", transition_s=0.0, sway=sway)]
    for d in p.directions:
        segs.append(Segment(f"rom_{d}", p.move_s + p.hold_s, "sitting", _posture(d, m[d]), None,
                            transition_s=p.move_s, sway=sway))
        segs.append(Segment(f"rom_{d}_rest", p.return_s + p.rest_s, "sitting", neutral, None,
                            transition_s=p.return_s, sway=sway))
    return segs


def simulate_rom(seed: int = 0, maxima: dict[str, float] | None = None, settings: SimSettings | None = None,
                 protocol=None, sway: float = 0.3) -> tuple[SimResult, dict]:
    """Simulate the wearer doing the guided test.

    Returns:
        ``(sim, truth)`` with ``truth = {"scripted_deg": {...}, "held_max_deg": {...},
        "protocol": schedule}`` — ``held_max_deg`` is the held maximum (rolling median over
        ``AnalysisSettings().rom_hold_s``) of the true joint angle in each direction's window.

    Raises:
        SimError: invalid seed, settings or maxima.
    """
    from nape.analysis.rom import _AXIS, Protocol, robust_max
    from nape.settings import AnalysisSettings

    p = protocol or Protocol()
    settings = replace(settings or SimSettings(), time_scale=1.0)  # the prompts' timing is fixed
    if not settings.head_imu:
        raise SimError("the range-of-motion test needs the head IMU")
    script = rom_script(maxima, p, sway)
    sim = simulate(script, seed, settings)
    sched = p.schedule()
    tr = sim.truth
    joint = (tr.neck_joint_flexion_deg, tr.neck_lateral_deg, tr.neck_axial_deg)
    hold = AnalysisSettings().rom_hold_s
    held = {}
    for d in sched["directions"]:
        sel = (sim.t >= d["start_s"]) & (sim.t < d["end_s"])
        k, sign = _AXIS[d["direction"]]
        held[d["direction"]] = round(robust_max(sign * np.asarray(joint[k])[sel], sim.rate_hz, hold)[0], 2)
    m = dict(DEFAULT_MAXIMA)
    m.update({k: float(v) for k, v in (maxima or {}).items()})
    return sim, {"scripted_deg": {d: m[d] for d in p.directions}, "held_max_deg": held, "protocol": sched}
