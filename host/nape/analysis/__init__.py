"""Analysis: one .nape recording in, findings out (see :mod:`nape.analysis.core`).

Modules: ``stream`` (blocks of decoded samples), ``calibration`` (neutral posture),
``orientation`` (VQF re-fusion, segment alignment, angles), ``context`` (activity),
``posture`` (episodes, ISO 11226, RULA), ``jolts`` (detection, NIC, cause, grade),
``traces`` (per-jolt acceleration / angular-velocity traces for the report),
``findings`` (result types), ``core`` (``analyse``).
"""

from .core import analyse
from .findings import Findings, Jolt, PostureEpisode

__all__ = ["analyse", "Findings", "Jolt", "PostureEpisode"]
