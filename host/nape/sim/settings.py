"""Settings of one simulation run, and the error the simulator raises on bad input."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nape.errors import NapeError

from .sensor import SensorModel


class SimError(NapeError):
    """A simulation setting or script is invalid (e.g. negative duration, vehicle reversing)."""


@dataclass(frozen=True)
class SimSettings:
    """How to run the simulated wearer.

    Attributes:
        rate_hz: output data rate of both IMUs, Hz (default 100.0; 400.0 for jolt work).
        head_imu: simulate the optional head IMU too (default True). The head is always
            simulated internally, so truth and labels are identical either way.
        time_scale: factor on every segment's duration and on event offsets inside segments
            (default 1.0 ≈ 15 min day; 0.1 ≈ 2.5 min). Transition ramps and events keep their
            physical durations and order, so compressing only shortens the quiet time
            (see :func:`nape.sim.script.scaled`).
        sensor: error model of both IMU parts (default ICM-42688-P).
        mounting_misalignment_deg: angle of a fixed, seeded random rotation between each
            segment frame and its sensor frame, degrees (default 0.0 = nominal mounting).
        acc_range_g: accelerometer full-scale range, ± g (default 16.0).
        gyr_range_dps: gyroscope full-scale range, ± °/s (default 2000.0).
        oversample: internal kinematics rate as a multiple of ``rate_hz``; None (default)
            picks ``max(2, ceil(400 / rate_hz))`` — 4 at 100 Hz, 2 at 400 Hz — so the
            internal rate is at least 400 Hz and at least twice the output rate. Positions
            and orientations are differentiated there and decimated with an anti-alias FIR.
        road_vibration: factor on the road vibration at the seat (default 1.0; 0.0 = a
            perfectly smooth road, e.g. an electric car on a new motorway). Potholes, rear
            impacts and manoeuvres are unchanged.
    """

    rate_hz: float = 100.0
    head_imu: bool = True
    time_scale: float = 1.0
    sensor: SensorModel = field(default_factory=SensorModel.icm42688)
    mounting_misalignment_deg: float = 0.0
    acc_range_g: float = 16.0
    gyr_range_dps: float = 2000.0
    oversample: int | None = None
    road_vibration: float = 1.0

    def validate(self) -> None:
        """Check ranges.

        Raises:
            SimError: if a value is out of range.
        """
        if not self.rate_hz >= 10.0:
            raise SimError(f"rate_hz must be >= 10 Hz, got {self.rate_hz!r}")
        if not self.time_scale > 0.0:
            raise SimError(f"time_scale must be > 0, got {self.time_scale!r}")
        if not self.acc_range_g > 0.0 or not self.gyr_range_dps > 0.0:
            raise SimError("acc_range_g and gyr_range_dps must be > 0")
        if not 0.0 <= self.mounting_misalignment_deg <= 180.0:
            raise SimError("mounting_misalignment_deg must be within [0, 180]")
        if not 0.0 <= self.road_vibration <= 10.0:
            raise SimError(f"road_vibration must be within [0, 10], got {self.road_vibration!r}")
        if self.oversample is not None and (
            int(self.oversample) != self.oversample or not 1 <= self.oversample <= 16
        ):
            raise SimError("oversample must be None or an integer in [1, 16]")

    def internal_oversample(self) -> int:
        """The oversampling factor actually used (see ``oversample``)."""
        if self.oversample is not None:
            return int(self.oversample)
        return max(2, math.ceil(400.0 / self.rate_hz))
