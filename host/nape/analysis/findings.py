"""What the analysis finds. Times are seconds from the recording's first sample."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class PostureEpisode:
    """A poor posture held at least ``hold_s``."""

    kind: str  # "neck_flexion", "trunk_inclination", "bed_neck"
    start_s: float
    end_s: float
    mean_deg: float
    peak_deg: float
    pattern: str = ""  # "keyboard", "phone / looking down", "pillow too low", ...
    iso11226: str = ""  # "acceptable", "not acceptable: held 6 min > 2.9 min allowed at 35°", ...
    mean_trunk_deg: float = 0.0
    mean_lateral_deg: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Jolt:
    """A jarring movement, graded; accelerations in g, angular velocities in °/s."""

    t_s: float  # time of the peak
    start_s: float
    end_s: float
    cause: str  # braking, acceleration, bump, lateral, rear_impact_like, knock
    grade: str  # mild, moderate, severe
    peak_trunk_g: float  # peak linear acceleration of the upper back
    peak_head_g: float  # peak linear acceleration of the head (nan without head IMU)
    peak_head_dps: float  # peak head angular velocity
    vehicle_g: float = float("nan")  # sustained (≤ 2 Hz) horizontal acceleration of the trunk
    vertical_g: float = float("nan")  # peak vertical acceleration of the trunk
    head_rel_g: float = float("nan")  # peak head-minus-trunk acceleration
    neck_dps: float = float("nan")  # peak head-relative-to-trunk angular velocity
    nic_m2s2: float = float("nan")  # Neck Injury Criterion (Boström et al. 1996)
    bric: float = float("nan")  # Brain Injury Criterion (Takhounts et al. 2013)
    source: str = "stream"  # "stream" or "event window" (high-rate raw data)
    trace: dict | None = None  # acceleration (g) / angular velocity (°/s) around the peak: analysis.traces


@dataclass
class Findings:
    """Everything the report shows."""

    path: str
    metadata: dict
    settings: dict
    duration_s: float
    samples: int
    lost_samples: int
    malformed_packets: int
    file_issues: list[dict]
    calibration: dict
    roles: list[str]
    orientation_source: str = ""
    episodes: list[PostureEpisode] = field(default_factory=list)
    jolts: list[Jolt] = field(default_factory=list)
    head_turns: int = 0
    lying_s: float = 0.0
    exposure_s: dict = field(default_factory=dict)
    activity_s: dict = field(default_factory=dict)
    rula_neck_s: dict = field(default_factory=dict)
    time_to_first_episode_s: float | None = None
    longest_upright_s: float = 0.0
    gaps: list[dict] = field(default_factory=list)
    series: dict = field(default_factory=dict)  # 1 Hz: t_s, neck_flexion_deg, trunk_inclination_deg, ...
    valid_s: float = 0.0  # seconds of valid data every figure rests on (analysis.coverage)
    low_coverage: bool = False  # too little valid data: flagged, kept out of trends' averages
    not_judged: list[str] = field(default_factory=list)  # what the data is too short to judge, plain words
    glitches: dict = field(default_factory=dict)  # sensor glitches masked (analysis.quality): samples, by kind
    input_warnings: list[str] = field(default_factory=list)  # doubts about the input (units, frame), plain words

    def as_dict(self) -> dict:
        d = asdict(self)
        for e, ep in zip(d["episodes"], self.episodes):
            e["duration_s"] = ep.duration_s
        return d


# Stable names of the JSON report and the export tables (protocol/report.schema.json):
# units in every name, peaks named as peaks. Python attribute → JSON field; unlisted keep their name.
JOLT_FIELDS = {"t_s": "peak_t_s", "vehicle_g": "peak_vehicle_g", "vertical_g": "peak_vertical_g",
               "head_rel_g": "peak_head_rel_g", "neck_dps": "peak_neck_dps"}
EPISODE_FIELDS = {"iso11226": "iso11226_verdict", "mean_trunk_deg": "mean_trunk_inclination_deg",
                  "mean_lateral_deg": "mean_neck_lateral_deg"}
SERIES_FIELDS = {"t_s": "time_s"}
CALIBRATION_FIELDS = {"neutral_q": "neutral_quat_wxyz", "gyro_offset_rads": "gyro_offset_rad_s"}


def jolt_record(j: Jolt) -> dict:
    """One jolt under its JSON / table names, without the trace."""
    return {JOLT_FIELDS.get(k, k): v for k, v in asdict(j).items() if k != "trace"}


def episode_record(e: PostureEpisode) -> dict:
    """One episode under its JSON / table names, with ``duration_s``."""
    d = {EPISODE_FIELDS.get(k, k): v for k, v in asdict(e).items()}
    d["duration_s"] = e.duration_s
    return d
