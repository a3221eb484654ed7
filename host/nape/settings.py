"""Analysis settings: every clinical or ergonomic threshold, its default and its source.

Users override any field from the CLI (``nape analyse --set neck_flexion_deg=25``) or a
JSON file. Angles are degrees, times seconds, accelerations g (9.80665 m/s^2).

Sources cited by key:
- [ISO11226] ISO 11226:2000 Ergonomics — Evaluation of static working postures (head
  inclination 0–25° acceptable; trunk inclination 0–20° acceptable, 20–60° acceptable only
  for limited holding times; neck flexion = head inclination − trunk inclination).
- [NORASI22] Norasi H, et al. (2022) Exposure to neck flexion and risk of neck pain: a
  systematic review. Appl Ergon — 20° neck flexion was the best-supported risk cut-off.
- [BRAKE] Naturalistic-driving deceleration figures: routine braking ~0.25 g, harsh
  0.35–0.45 g, emergency 0.64–0.97 g (e.g. Bagdadi & Várhelyi 2011, Accid Anal Prev 43;
  Fambro et al. 1997, NCHRP Report 400).
- [POTHOLE] Vertical seat shocks from potholes and road bumps start around 1.4 g
  (ISO 2631-5 shock guidance; reported pothole seat peaks 1.4–3 g).
- [WHIPLASH] Low-speed rear impacts (Δv ≈ 6 km/h) gave head accelerations up to ~2 g above
  the chest (volunteer sled tests; e.g. Siegmund et al. 1997, SAE 973341).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NapeError


@dataclass(frozen=True)
class AnalysisSettings:
    """Thresholds and filter settings of the analysis (units in the names)."""

    # --- calibration ---
    neutral_window_s: float = 10.0
    """Seconds at the start of a recording taken as the upright neutral posture when no
    calibration was captured (Nape default; the wearer is asked to start upright)."""

    # --- posture ---
    neck_flexion_deg: float = 20.0
    """Neck flexion (head minus trunk inclination) above which posture is poor. [NORASI22]"""
    trunk_inclination_deg: float = 20.0
    """Trunk (upper back) forward inclination above which the back counts as hunched. [ISO11226]"""
    hold_s: float = 60.0
    """Minimum time a poor posture must last to be an episode. ISO 11226 limits holding
    times for 20–60° trunk inclination; Nape reports anything held for a minute. [ISO11226]"""
    hysteresis_deg: float = 5.0
    """An episode ends only when the angle falls this far below the threshold (Nape default,
    stops noise from splitting one episode into many)."""
    end_grace_s: float = 5.0
    """Short returns to upright shorter than this do not end an episode (Nape default)."""
    posture_lowpass_hz: float = 0.5
    """Low-pass on posture angles: postures are held for seconds, not fractions (Nape default)."""

    # --- jolts ---
    jolt_trigger_g: float = 0.35
    """Linear acceleration of trunk or head that marks a jolt: the lower bound of harsh
    braking. [BRAKE]"""
    jolt_moderate_g: float = 0.65
    """Peak linear acceleration from which a jolt is moderate: the lower bound of
    emergency braking. [BRAKE]"""
    jolt_severe_g: float = 1.5
    """Peak linear acceleration from which a jolt is severe: pothole seat shocks from
    ~1.4 g and low-speed rear impacts up to ~2 g head acceleration. [POTHOLE] [WHIPLASH]"""
    jolt_merge_s: float = 1.5
    """Threshold crossings closer than this belong to one event, so a jolt and its rebound
    count once (Nape default)."""
    jolt_max_s: float = 4.0
    """Events whose merged crossings span longer than this are sustained or rhythmic motion
    (walking, running, a long corner), not jolts: braking pulses last about 1–3 s and
    shocks 50–150 ms (Nape default)."""
    jolt_lowpass_hz: float = 20.0
    """Low-pass on linear acceleration before peak picking: keeps 50–150 ms shocks and
    drops sensor noise and vibration above it (Nape default)."""
    head_turn_dps: float = 150.0
    """A head-only event with head angular velocity above this and a still trunk is a
    voluntary head turn, not a jolt (Nape default: quick looks reach 200–400 °/s)."""

    # --- context ---
    lying_trunk_deg: float = 60.0
    """Trunk tilted more than this from vertical (any direction) counts as lying (Nape default)."""

    sources: dict = field(default_factory=lambda: dict(_SOURCES), compare=False)

    def with_overrides(self, pairs: list[str]) -> "AnalysisSettings":
        """A copy with ``name=value`` overrides applied.

        Raises:
            NapeError: unknown name or a value that is not a number.
        """
        changes = {}
        names = {f.name for f in dataclasses.fields(self) if f.name != "sources"}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or name not in names:
                raise NapeError(f"unknown setting {name!r}; known: {', '.join(sorted(names))}")
            try:
                changes[name] = float(value)
            except ValueError:
                raise NapeError(f"setting {name} needs a number, got {value!r}") from None
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, path: Path) -> "AnalysisSettings":
        """Settings from a JSON object of overrides.

        Raises:
            NapeError: unreadable file, not JSON, or unknown names.
        """
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise NapeError(f"cannot read settings file {path}: {e}") from None
        if not isinstance(data, dict):
            raise NapeError(f"settings file {path} must hold a JSON object")
        return cls().with_overrides([f"{k}={v}" for k, v in data.items()])

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        return d


_SOURCES = {
    "neck_flexion_deg": "Norasi et al. 2022 (systematic review): 20° neck flexion best-supported risk cut-off",
    "trunk_inclination_deg": "ISO 11226:2000: trunk inclination 0–20° acceptable",
    "hold_s": "ISO 11226:2000 limits holding time above 20° trunk inclination; Nape reports ≥ 1 min",
    "jolt_trigger_g": "harsh braking starts at 0.35 g (naturalistic driving studies)",
    "jolt_moderate_g": "emergency braking 0.64–0.97 g (naturalistic driving studies)",
    "jolt_severe_g": "pothole seat shocks ≥ 1.4 g (ISO 2631-5); low-speed rear impact head ~2 g",
}
