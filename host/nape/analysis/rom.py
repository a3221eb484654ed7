"""Neck range of motion (ROM): the guided test's protocol and its analysis (pages: nape.report.rom).

The guided test (``nape rom``) asks the wearer (head and trunk IMU) to sit upright and
still, then to move the head, one direction at a time, as far as is comfortable and hold
it there: flexion (chin to chest), extension (look up), lateral bending left and right
(ear towards the shoulder), axial rotation left and right (look over the shoulder).
:class:`Protocol` fixes the timing; its schedule is stored in the recording's metadata
(``"rom_protocol"``, seconds from the first sample), so the analysis knows which window
belongs to which direction without guessing.

Angles (docs/CONVENTIONS.md, :mod:`nape.analysis.orientation`): head relative to trunk as
intrinsic Y-X-Z Cardan angles — flexion about the trunk's left axis (forward +), lateral
bending about the forward axis (right +), axial rotation about the up axis (left +) —
after the neutral-posture calibration of both sensors (:mod:`nape.analysis.calibration`).
Per direction the signed angle is flexion = +flex, extension = −flex, lateral left =
−lateral, lateral right = +lateral, rotation left = +axial, rotation right = −axial.

Steps:

1. Calibration: neutral posture captured, else the still upright start of the test.
2. Orientation: each IMU re-fused with VQF 6D (or the firmware's quaternions), aligned to
   its segment, kept at :data:`SERIES_HZ`. VQF's rest-based gyro-bias estimation is off
   (:class:`_RomRefuser`): it mistakes the slow drift of a held head for gyro bias; the
   zero-rate offset measured in the still start is removed instead.
3. Heading: 6D fusion gives each IMU its own heading, so the head–trunk heading offset is
   a straight line (offset + drift) fitted to the neutral rests of the test.
4. Functional axis (``rom_functional_axis``): a sensor turned about the vertical on its
   segment makes part of flexion look like side bending. The rotation axis of the forward
   and backward bending is the joint's flexion axis; the joint frame is turned about the
   vertical onto it (functional calibration).
5. End range per direction: the largest value of the angle's rolling median over
   ``rom_hold_s`` within the direction's window — the end range actually held, not one
   noisy sample.
6. Comparison with the typical range for healthy adults (settings ``rom_*_low_deg`` /
   ``rom_*_high_deg``, sources in :mod:`nape.settings`), in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter

from .. import quat, wire
from ..errors import NapeError
from ..recording import open_recording
from ..settings import ROM_SOURCES, AnalysisSettings
from . import calibration
from .findings import Calibration
from .orientation import joint_angles, segment_alignment, yaw, z_rotation
from .core import recording_roles
from .stream import BlockReader

SCHEMA = "nape-rom/1"
SERIES_HZ = 25.0
PLOT_HZ = 10.0

DIRECTIONS: tuple[str, ...] = (
    "flexion", "extension", "lateral_left", "lateral_right", "rotation_left", "rotation_right",
)
LABELS = {
    "flexion": "bending forward (flexion)",
    "extension": "bending backward (extension)",
    "lateral_left": "side-bending to the left",
    "lateral_right": "side-bending to the right",
    "rotation_left": "rotation to the left",
    "rotation_right": "rotation to the right",
}
PROMPTS = {
    "neutral": "Sit upright, look straight ahead and keep still.",
    "flexion": "Slowly bend your head forward, chin towards your chest, as far as is comfortable. Hold it there.",
    "extension": "Slowly tip your head back and look up at the ceiling, as far as is comfortable. Hold it there.",
    "lateral_left": "Tilt your head to the left, ear towards your left shoulder (do not turn it). Hold it there.",
    "lateral_right": "Tilt your head to the right, ear towards your right shoulder (do not turn it). Hold it there.",
    "rotation_left": "Turn your head to the left, looking over your left shoulder. Hold it there.",
    "rotation_right": "Turn your head to the right, looking over your right shoulder. Hold it there.",
    "return": "Come back to the centre, look straight ahead and rest.",
}
# which joint angle (0 flexion, 1 lateral, 2 axial) and sign gives each direction's angle
_AXIS = {"flexion": (0, 1.0), "extension": (0, -1.0), "lateral_left": (1, -1.0), "lateral_right": (1, 1.0),
         "rotation_left": (2, 1.0), "rotation_right": (2, -1.0)}
_BAND = {"flexion": "flexion", "extension": "extension", "lateral_left": "lateral", "lateral_right": "lateral",
         "rotation_left": "rotation", "rotation_right": "rotation"}


class RomError(NapeError):
    """A recording cannot be analysed as a range-of-motion test."""


# ---------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """Timing of the guided test, seconds.

    Per direction: ``move_s`` to reach the end range, ``hold_s`` holding it, ``return_s``
    back to the centre, ``rest_s`` still in neutral. The test starts with ``neutral_s``
    of still, upright sitting (the calibration).
    """

    neutral_s: float = 8.0
    move_s: float = 2.5
    hold_s: float = 3.0
    return_s: float = 2.5
    rest_s: float = 3.0
    directions: tuple[str, ...] = DIRECTIONS

    @property
    def block_s(self) -> float:
        return self.move_s + self.hold_s + self.return_s + self.rest_s

    @property
    def total_s(self) -> float:
        return self.neutral_s + len(self.directions) * self.block_s

    def schedule(self) -> dict:
        """The schedule stored in the recording's metadata as ``"rom_protocol"``."""
        out = []
        t = self.neutral_s
        for d in self.directions:
            out.append({"direction": d, "start_s": t, "hold_start_s": t + self.move_s,
                        "hold_end_s": t + self.move_s + self.hold_s,
                        "return_end_s": t + self.move_s + self.hold_s + self.return_s, "end_s": t + self.block_s})
            t += self.block_s
        return {"version": 1, "neutral_s": [0.0, self.neutral_s], "rest_s": self.rest_s, "directions": out,
                "total_s": t}

    def prompts(self) -> list[tuple[float, str, str]]:
        """(time s, phase, text) of every prompt, in order."""
        out = [(0.0, "neutral", PROMPTS["neutral"])]
        for p in self.schedule()["directions"]:
            out.append((p["start_s"], p["direction"], PROMPTS[p["direction"]]))
            out.append((p["hold_end_s"], "return", PROMPTS["return"]))
        return out


def _check_schedule(sched) -> dict:
    """Validate a ``rom_protocol`` metadata object.

    Raises:
        RomError: missing or malformed.
    """
    try:
        dirs = sched["directions"]
        n0, n1 = (float(v) for v in sched["neutral_s"])
        rest = float(sched["rest_s"])
        items = [{"direction": str(d["direction"]), **{k: float(d[k]) for k in
                                                        ("start_s", "hold_start_s", "hold_end_s", "return_end_s",
                                                         "end_s")}} for d in dirs]
    except (KeyError, TypeError, ValueError):
        raise RomError("the recording's rom_protocol metadata is malformed") from None
    bad = [d["direction"] for d in items if d["direction"] not in DIRECTIONS or not d["end_s"] > d["start_s"]]
    if bad or not n1 > n0:
        raise RomError(f"the recording's rom_protocol metadata is malformed ({', '.join(bad) or 'neutral'})")
    return {"neutral_s": (n0, n1), "rest_s": rest, "directions": items}


# ---------------------------------------------------------------- result


@dataclass
class RomDirection:
    """The end range of one direction. Angles in degrees; ``at_s`` from the recording start."""

    direction: str
    label: str
    max_deg: float | None  # None: not measured
    at_s: float | None
    typical_low_deg: float
    typical_high_deg: float
    verdict: str  # "below", "typical", "above", "not_measured"
    text: str


@dataclass
class RomResult:
    """One analysed range-of-motion test (see the module docstring)."""

    path: str
    metadata: dict
    duration_s: float
    samples: int
    lost_samples: int
    calibration: Calibration
    orientation_source: str
    functional_axis_deg: float | None  # yaw correction of the joint frame, deg (None: not applied)
    hold_window_s: float
    directions: list[RomDirection]
    asymmetry: list[str]
    series: dict
    schedule: dict
    settings: dict
    analysed_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
                             .replace("+00:00", "Z"))

    def max_deg(self) -> dict[str, float | None]:
        """Direction → end range, deg (None: not measured)."""
        return {d.direction: d.max_deg for d in self.directions}

    def totals_deg(self) -> dict[str, float | None]:
        """Whole arcs: sagittal (flexion + extension), lateral (left + right), rotation (left + right), deg."""
        m = self.max_deg()

        def add(a, b):
            return None if m.get(a) is None or m.get(b) is None else round(m[a] + m[b], 1)

        return {"sagittal_deg": add("flexion", "extension"), "lateral_deg": add("lateral_left", "lateral_right"),
                "rotation_deg": add("rotation_left", "rotation_right")}

    def headlines(self) -> list[str]:
        """The result in plain words, one sentence each."""
        out = [d.text for d in self.directions] + list(self.asymmetry)
        below = [d for d in self.directions if d.verdict == "below"]
        if not below and all(d.verdict != "not_measured" for d in self.directions):
            out.append("Your neck moved through its typical range in every direction.")
        elif below:
            out.append("A range below typical means the neck was stiffer in that direction. Range of motion "
                       "shrinks with age, and one test can be about 5° off: repeat it to see whether it lasts.")
        return out

    def to_dict(self) -> dict:
        """The JSON form (``protocol/rom.schema.json``)."""
        return {
            "schema": SCHEMA,
            "path": self.path,
            "created": self.metadata.get("created"),
            "analysed_at": self.analysed_at,
            "duration_s": round(self.duration_s, 3),
            "samples": self.samples,
            "lost_samples": self.lost_samples,
            "calibration": {"method": self.calibration.method, "detail": self.calibration.detail},
            "orientation_source": self.orientation_source,
            "functional_axis_deg": None if self.functional_axis_deg is None else round(self.functional_axis_deg, 2),
            "hold_window_s": self.hold_window_s,
            "directions": [asdict(d) for d in self.directions],
            "totals": self.totals_deg(),
            "asymmetry": list(self.asymmetry),
            "headlines": self.headlines(),
            "normative_source": ROM_SOURCES["CROM"],
            "schedule": self.schedule,
            "series": self.series,
            "settings": self.settings,
        }


# ---------------------------------------------------------------- analysis


def robust_max(angle_deg: np.ndarray, rate_hz: float, hold_s: float) -> tuple[float, int]:
    """The largest rolling median of ``angle_deg`` over ``hold_s`` seconds, and its index.

    Args:
        angle_deg: (n,) signed angle, deg (the direction's positive side).
        rate_hz: sample rate of ``angle_deg``, Hz.
        hold_s: window of the rolling median, s.

    Raises:
        RomError: no samples.
    """
    a = np.asarray(angle_deg, float)
    if a.size == 0:
        raise RomError("no samples in this direction's window")
    k = max(1, int(round(hold_s * rate_hz)))
    k = min(k, a.size)
    med = median_filter(a, size=k, mode="nearest")
    i = int(np.argmax(med))
    return float(med[i]), i


def _band(s: AnalysisSettings, direction: str) -> tuple[float, float]:
    b = _BAND[direction]
    return float(getattr(s, f"rom_{b}_low_deg")), float(getattr(s, f"rom_{b}_high_deg"))


def describe(direction: str, value: float | None, lo: float, hi: float, min_motion: float) -> tuple[str, str]:
    """(verdict, plain-words sentence) of one direction's end range."""
    label = LABELS[direction]
    name = label[0].upper() + label[1:]
    if value is None or value < min_motion:
        return "not_measured", f"{name}: not measured (no movement in that direction was found during its prompt)."
    band = f"the typical {lo:.0f}–{hi:.0f}° for healthy adults"
    if value < lo:
        return "below", f"{name} {value:.0f}°, below {band}."
    if value > hi:
        return "above", f"{name} {value:.0f}°, more than {band}."
    return "typical", f"{name} {value:.0f}°, within {band}."


def _asymmetry(m: dict[str, float | None], thr: float) -> list[str]:
    out = []
    for what, a, b in (("Side-bending", "lateral_left", "lateral_right"), ("Rotation", "rotation_left", "rotation_right")):
        la, rb = m.get(a), m.get(b)
        if la is None or rb is None:
            continue
        diff = la - rb
        if abs(diff) > thr:
            less, more = ("left", "right") if diff < 0 else ("right", "left")
            out.append(f"{what} is {abs(diff):.0f}° smaller to the {less} than to the {more}: "
                       f"a one-sided difference of more than {thr:g}°.")
    return out


def functional_yaw(rel: np.ndarray, mask: np.ndarray, min_deg: float = 15.0) -> float | None:
    """Yaw (rad) of the flexion axis seen in ``rel`` (head relative to trunk, (n, 4)).

    The rotation vectors of the samples in ``mask`` bent more than ``min_deg`` should lie
    along the trunk's y (left) axis; their principal direction, projected on the
    horizontal plane, is at angle ``c`` from it (positive towards +x). Turning the joint
    frame by ``c`` (``Rz(c) ⊗ rel ⊗ Rz(-c)``) puts flexion back about y.

    Returns:
        ``c`` in rad, or None if too few bent samples or no clear axis.
    """
    q = rel[mask]
    if len(q) < 10:
        return None
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    v = q[:, 1:]
    s = np.linalg.norm(v, axis=1)
    ang = 2 * np.arctan2(s, q[:, 0])
    rv = v * (ang / np.maximum(s, 1e-12))[:, None]
    keep = np.degrees(ang) > min_deg
    if keep.sum() < 10:
        return None
    rv = rv[keep]
    w, vec = np.linalg.eigh(rv.T @ rv)
    if w[-1] < 4 * max(w[-2], 1e-12):  # no single dominant axis
        return None
    u = vec[:, -1] * (1 if vec[1, -1] >= 0 else -1)
    if math.hypot(u[0], u[1]) < 0.7:  # axis far from horizontal: not a flexion movement
        return None
    return float(math.atan2(u[0], u[1]))


class _RomRefuser:
    """VQF 6D per IMU for the short test, with VQF's own gyro-bias estimation off.

    VQF estimates gyro bias whenever it detects rest; a head held at its end range still
    drifts slowly (about 1°/s), which that estimator takes for bias and then integrates into
    the heading — several degrees of false axial rotation within one test. The test lasts
    about 75 s, so the zero-rate offset measured in the still start (calibration) is removed
    instead and kept fixed.
    """

    def __init__(self, n_imu: int, period_s: float, gyro_offset=None):
        from vqf import VQF

        self.filters = [VQF(period_s, restBiasEstEnabled=False, motionBiasEstEnabled=False) for _ in range(n_imu)]
        self.offset = np.zeros((n_imu, 3)) if gyro_offset is None else np.asarray(gyro_offset, float)

    def __call__(self, acc: np.ndarray, gyr: np.ndarray) -> np.ndarray:
        """Orientations (n, k, 4) for raw acc (m/s^2) and gyr (rad/s), gyro offset removed."""
        out = np.empty(acc.shape[:2] + (4,))
        for k, f in enumerate(self.filters):
            r = f.updateBatch(np.ascontiguousarray(gyr[:, k] - self.offset[k]), np.ascontiguousarray(acc[:, k]))
            out[:, k] = r["quat6D"]
        return out


def analyse_rom(path: Path | str, settings: AnalysisSettings | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> RomResult:
    """Analyse a recorded guided ROM test.

    Args:
        path: a .nape recording of ``nape rom`` (metadata ``rom_protocol``), head and trunk IMU.
        settings: thresholds and typical ranges (:mod:`nape.settings`).
        on_progress: called with (samples done, expected samples or 0).

    Raises:
        RecordingError: the file cannot be read.
        RomError: no head IMU, no ROM protocol in the metadata, or no samples.
    """
    s = settings or AnalysisSettings()
    path = Path(path)
    rec = open_recording(path)
    meta = rec.metadata
    roles, mask, _doubts = recording_roles(rec, path)  # a damaged header: the packets say which IMUs
    if "head" not in roles or "trunk" not in roles:
        raise RomError(f"{path.name}: a range-of-motion test needs the head and the trunk IMU; this recording has "
                       f"{', '.join(roles)}")
    if "rom_protocol" not in meta:
        raise RomError(f"{path.name} is not a range-of-motion test (no rom_protocol in its header): record one with "
                       "nape rom --virtual, or analyse everyday recordings with nape analyse")
    sched = _check_schedule(meta["rom_protocol"])
    n_imu = len(wire.roles_of(mask))
    calib = calibration.estimate(open_recording(path), mask, n_imu, s)
    align = [segment_alignment(np.asarray(q, float)) for q in calib.neutral_quat_wxyz]
    expected = int(float(meta.get("sample_rate_hz") or 0) * float(meta["rom_protocol"].get("total_s", 0) or 0))

    reader = BlockReader(rec, mask)
    refuser = None
    step = 1
    rate = None
    n = lost = 0
    last = -1
    keep_idx, keep_qt, keep_qh = [], [], []
    for b in reader:
        if rate is None:
            rate = 1.0 / b.period_s
            step = max(1, int(round(rate / SERIES_HZ)))
            refuser = _RomRefuser(n_imu, b.period_s, calib.gyro_offset_rad_s) if s.fuse_on_host else None
        gaps = np.diff(np.concatenate([[last], b.index])) - 1
        lost += int(gaps[gaps > 0].sum())
        last = int(b.index[-1])
        n += len(b.index)
        q_sensor = refuser(b.acc, b.gyr) if refuser else b.quat
        sel = b.index % step == 0
        keep_idx.append(b.index[sel])
        roles_order = wire.roles_of(mask)
        kt, kh = roles_order.index("trunk"), roles_order.index("head")
        keep_qt.append(quat.mul(q_sensor[sel, kt], align[kt]))
        keep_qh.append(quat.mul(q_sensor[sel, kh], align[kh]))
        if on_progress:
            on_progress(n, expected)
    if n == 0 or rate is None:
        raise RomError(f"{path.name}: no samples of the head and trunk IMUs")
    t = np.concatenate(keep_idx) / rate
    qt = np.concatenate(keep_qt)
    qh = np.concatenate(keep_qh)
    fs = rate / step

    # heading offset between the two IMUs: a line fitted to the neutral stretches
    dyaw = np.unwrap(yaw(qt) - yaw(qh))
    rest = (t >= sched["neutral_s"][0] + s.calib_settle_s) & (t < sched["neutral_s"][1])
    for d in sched["directions"]:
        rest |= (t >= d["end_s"] - sched["rest_s"]) & (t < d["end_s"])
    if rest.sum() < 3:
        rest = np.ones_like(t, bool)
    if np.ptp(t[rest]) > 1.0:
        slope, icpt = np.polyfit(t[rest], dyaw[rest], 1)
    else:
        slope, icpt = 0.0, float(np.median(dyaw[rest]))
    offset = icpt + slope * t
    rel = quat.mul(quat.mul(quat.conj(qt), z_rotation(offset)), qh)

    c = None
    if s.rom_functional_axis:
        sag = np.zeros_like(t, bool)
        for d in sched["directions"]:
            if d["direction"] in ("flexion", "extension"):
                sag |= (t >= d["start_s"]) & (t < d["end_s"])
        c = functional_yaw(rel, sag)
        if c is not None and abs(math.degrees(c)) <= 45.0:
            rz = z_rotation(np.array(c))
            rel = quat.mul(quat.mul(rz, rel), quat.conj(rz))
        else:
            c = None
    flex, lat, axial = joint_angles(rel)
    angles = (flex, lat, axial)

    directions = []
    for name in DIRECTIONS:
        lo, hi = _band(s, name)
        win = next((d for d in sched["directions"] if d["direction"] == name), None)
        value = at = None
        if win is not None:
            sel = (t >= win["start_s"]) & (t < win["end_s"])
            if sel.sum() >= 2:
                k, sign = _AXIS[name]
                value, i = robust_max(sign * angles[k][sel], fs, s.rom_hold_s)
                at = float(t[sel][i])
        verdict, text = describe(name, value, lo, hi, s.rom_min_motion_deg)
        if verdict == "not_measured":
            value = at = None
        directions.append(RomDirection(name, LABELS[name], None if value is None else round(value, 1),
                                       None if at is None else round(at, 2), lo, hi, verdict, text))
    m = {d.direction: d.max_deg for d in directions}
    plot_step = max(1, int(round(fs / PLOT_HZ)))
    series = {"time_s": np.round(t[::plot_step], 2).tolist(), "flexion_deg": np.round(flex[::plot_step], 1).tolist(),
              "lateral_deg": np.round(lat[::plot_step], 1).tolist(),
              "rotation_deg": np.round(axial[::plot_step], 1).tolist()}
    return RomResult(
        path=str(path), metadata=dict(meta), duration_s=float(last + 1) / rate, samples=n, lost_samples=lost,
        calibration=calib,
        orientation_source="host re-fusion (VQF 6D)" if s.fuse_on_host else "firmware fusion",
        functional_axis_deg=None if c is None else math.degrees(c), hold_window_s=s.rom_hold_s,
        directions=directions, asymmetry=_asymmetry(m, s.rom_asymmetry_deg), series=series,
        schedule=meta["rom_protocol"], settings={k: v for k, v in s.as_dict().items() if k.startswith("rom_")},
    )
