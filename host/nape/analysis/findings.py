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
    iso11226_verdict: str = ""  # "acceptable", "not acceptable: held 6 min > 2.9 min allowed at 35°", ...
    mean_trunk_inclination_deg: float = 0.0
    mean_neck_lateral_deg: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Jolt:
    """A jarring movement, graded; accelerations in g, angular velocities in °/s."""

    peak_t_s: float  # time of the peak
    start_s: float
    end_s: float
    cause: str  # braking, acceleration, bump, lateral, rear_impact_like, knock
    grade: str  # mild, moderate, severe
    peak_trunk_g: float  # peak linear acceleration of the upper back
    peak_head_g: float  # peak linear acceleration of the head (nan without head IMU)
    peak_head_dps: float  # peak head angular velocity
    peak_vehicle_g: float = float("nan")  # the vehicle's sustained (≤ 2 Hz) horizontal acceleration, read at the trunk
    peak_vertical_g: float = float("nan")  # peak vertical acceleration of the trunk
    peak_head_rel_g: float = float("nan")  # peak head-minus-trunk acceleration
    peak_neck_dps: float = float("nan")  # peak head-relative-to-trunk angular velocity
    nic_m2s2: float = float("nan")  # Neck Injury Criterion (Boström et al. 1996)
    bric: float = float("nan")  # Brain Injury Criterion (Takhounts et al. 2013)
    source: str = "stream"  # "stream" or "event window" (high-rate raw data)
    # what the grade was read from ([GRADE] in nape.settings): "vehicle" (the vehicle's
    # sustained acceleration, g), "seat" (the seat's vertical shock, g), "nic" (m²/s²),
    # "delta_v" (the upper back's velocity change, km/h: no head sensor, less certain),
    # "back" (the upper back's peak, g); "" in older files
    grade_basis: str = ""
    grade_value: float = float("nan")  # the graded quantity, in the basis' unit
    delta_v_kmh: float = float("nan")  # rear impacts: the upper back's forward velocity change
    trace: dict | None = None  # acceleration (g) / angular velocity (°/s) around the peak: analysis.traces
    # roles ("trunk", "head") whose sensor reached its range during the jolt: their peaks are
    # lower bounds ("at least"), the railed samples kept as measured (analysis.quality)
    range_reached: list[str] = field(default_factory=list)


def _without_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


@dataclass
class Calibration:
    """The neutral (upright) posture the angles are measured from, and how it was found
    (:mod:`nape.analysis.calibration`; protocol/report.schema.json ``calibration``)."""

    method: str  # "captured", "automatic", "walking", "guess", "none"
    detail: str  # how, in plain words
    neutral_quat_wxyz: list[list[float]]  # per IMU in the order of the roles, sensor-to-world
    start_s: float | None = None  # start of the stretch taken as neutral (automatic and guess)
    gyro_offset_rad_s: list[list[float]] | None = None  # zero-rate offset per IMU, rad/s [x, y, z]
    fusion: str | None = None  # "vqf" (host re-fusion) or "firmware"
    guess_error_deg: float | None = None  # guess and walking: how far off the neutral may be, deg
    # the walking check (calibration.WalkReference): seconds walked, bouts, which sensors took it
    # as their neutral, how far each sensor's neutral was from it and how sure it is
    walking_reference: dict | None = None
    # doubts about the input seen while looking for the neutral (units, frame); the analysis
    # moves them to Findings.input_warnings, so they are not part of this JSON object
    input_warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON form: fields that do not apply (None) left out."""
        d = _without_none(asdict(self))
        d.pop("input_warnings", None)
        d["neutral_quat_wxyz"] = d.pop("neutral_quat_wxyz")  # last, as reports have always had it
        return d


@dataclass
class Exposure:
    """Time in posture ranges while not lying, seconds; band keys 'LO..HI' in degrees
    (LO ≤ angle < HI). Neck figures need the head IMU (None without)."""

    trunk_over_threshold_s: float = 0.0
    trunk_bands_s: dict[str, float] = field(default_factory=dict)
    neck_over_threshold_s: float | None = None
    neck_bands_s: dict[str, float] | None = None

    def to_dict(self) -> dict:
        """The JSON form: neck figures left out without a head IMU."""
        return _without_none(asdict(self))


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
    calibration: Calibration
    roles: list[str]
    orientation_source: str = ""
    episodes: list[PostureEpisode] = field(default_factory=list)
    jolts: list[Jolt] = field(default_factory=list)
    head_turns: int = 0
    lying_s: float = 0.0
    exposure_s: Exposure = field(default_factory=Exposure)
    activity_s: dict = field(default_factory=dict)
    rula_neck_s: dict = field(default_factory=dict)
    time_to_first_episode_s: float | None = None
    longest_upright_s: float = 0.0
    gaps: list[dict] = field(default_factory=list)
    series: dict = field(default_factory=dict)  # 1 Hz: time_s, neck_flexion_deg, trunk_inclination_deg, ...
    valid_s: float = 0.0  # seconds of valid data every figure rests on (analysis.coverage)
    low_coverage: bool = False  # too little valid data: flagged, kept out of trends' averages
    not_judged: list[str] = field(default_factory=list)  # what the data is too short to judge, plain words
    glitches: dict = field(default_factory=dict)  # sensor glitches masked (analysis.quality): samples, by kind
    input_warnings: list[str] = field(default_factory=list)  # doubts about the input (units, frame), plain words
    # full and reduced (offline day log) rate spans, what the board dropped (analysis.window_jolts.rates)
    rates: dict = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)  # the board's posture alerts (MARKS): start_s, end_s, neck, trunk

    def as_dict(self) -> dict:
        d = asdict(self)
        for e, ep in zip(d["episodes"], self.episodes):
            e["duration_s"] = ep.duration_s
        d["calibration"] = self.calibration.to_dict()
        d["exposure_s"] = self.exposure_s.to_dict()
        return d


# Field names are the JSON report's and the export tables' (protocol/report.schema.json):
# units in every name, peaks named as peaks.


def jolt_record(j: Jolt) -> dict:
    """One jolt as the JSON report and the tables have it, without the trace."""
    return {k: v for k, v in asdict(j).items() if k != "trace"}


def episode_record(e: PostureEpisode) -> dict:
    """One episode as the JSON report and the tables have it, with ``duration_s``."""
    return asdict(e) | {"duration_s": e.duration_s}
