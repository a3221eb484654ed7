"""Lab Streaming Layer (LSL) outlet: stream Nape orientation live to LSL tools.

A recorder pushes decoded samples into an :class:`LslOutlet`; LabRecorder, MNE-LSL or any
LSL inlet on the network then sees one stream:

- name ``"Nape"``, type ``"Orientation"``, format float32, nominal rate = the IMU rate;
- channels ``trunk_qw, trunk_qx, trunk_qy, trunk_qz`` (and ``head_qw .. head_qz`` with a
  head IMU): unit quaternions (w, x, y, z), sensor-to-world, z up (docs/CONVENTIONS.md);
- ``neck_flexion_deg`` (with a head IMU): head minus trunk forward pitch in degrees,
  **uncalibrated** (no neutral posture removed; the analysis does that afterwards).

Needs the optional ``pylsl`` package (``pip install 'nape[lsl]'``), which ships liblsl.
LSL finds streams by UDP multicast on the local network; :func:`configure` restricts it to
this machine (as the tests do) and must run before any other LSL call in the process.
"""

from __future__ import annotations

import numpy as np

from . import quat as _quat
from .errors import DeviceError

STREAM_NAME = "Nape"
STREAM_TYPE = "Orientation"

_LOCAL_ONLY = """\
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
[log]
level = -3
"""


def _pylsl():
    try:
        import pylsl
    except ImportError:
        raise DeviceError("LSL streaming needs pylsl: pip install 'nape[lsl]' (or pip install pylsl)") from None
    except RuntimeError as e:  # pylsl raises RuntimeError when it cannot load liblsl
        raise DeviceError(f"pylsl is installed but liblsl cannot be loaded: {e}") from None
    return pylsl


def configure(local_only: bool = True) -> None:
    """Set liblsl's configuration for this process; call before any other LSL use.

    ``local_only``: discovery and streaming stay on this machine (127.0.0.1, IPv4 only).

    Raises:
        DeviceError: pylsl is missing or its liblsl cannot take a configuration.
    """
    pylsl = _pylsl()
    if local_only:
        try:
            pylsl.set_config_content(_LOCAL_ONLY)
        except (AttributeError, RuntimeError) as e:
            raise DeviceError(f"this liblsl cannot be configured from Python: {e}") from None


def channel_labels(roles: tuple[str, ...] | list[str]) -> list[str]:
    """Channel names for the IMU roles (wire order: trunk, then head)."""
    labels = [f"{r}_q{c}" for r in roles for c in "wxyz"]
    if "head" in roles and "trunk" in roles:
        labels.append("neck_flexion_deg")
    return labels


def pitch_deg(q: np.ndarray) -> np.ndarray:
    """Forward pitch of the sensor's x axis below horizontal, degrees (flexion positive)."""
    x_w = _quat.axis_in_world(q, 0)
    return np.degrees(np.arcsin(np.clip(-x_w[..., 2], -1.0, 1.0)))


class LslOutlet:
    """An LSL outlet for Nape orientation samples.

    Example::

        out = LslOutlet(("trunk", "head"), rate_hz=50, source_id="Nape-01")
        out.push_packet(wire.decode_packet(packet))   # from the recorder's receive loop
        out.close()

    Raises:
        DeviceError: pylsl is missing or liblsl cannot be loaded; roles lack the trunk.
    """

    def __init__(self, roles=("trunk", "head"), rate_hz: float = 50.0, source_id: str = "nape",
                 name: str = STREAM_NAME, chunk_size: int = 0):
        roles = tuple(roles)
        if not roles or roles[0] != "trunk" or not set(roles) <= {"trunk", "head"} or len(set(roles)) != len(roles):
            raise DeviceError(f"IMU roles must be ('trunk',) or ('trunk', 'head'), got {roles}")
        pylsl = _pylsl()
        self.roles = roles
        self.labels = channel_labels(roles)
        self.rate_hz = float(rate_hz)
        self._has_neck = "neck_flexion_deg" in self.labels
        info = pylsl.StreamInfo(name, STREAM_TYPE, len(self.labels), self.rate_hz, pylsl.cf_float32, source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "Nape")
        desc.append_child_value("conventions", "quaternion (w,x,y,z) sensor-to-world, z up; "
                                "neck_flexion_deg = head minus trunk forward pitch, uncalibrated")
        chans = desc.append_child("channels")
        for label in self.labels:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "degrees" if label.endswith("_deg") else "unitless")
            ch.append_child_value("type", "NeckFlexion" if label.endswith("_deg") else "Quaternion")
        self.info = info
        self._outlet = pylsl.StreamOutlet(info, chunk_size)
        self._clock = pylsl.local_clock

    def samples(self, q: np.ndarray) -> np.ndarray:
        """The (n, channels) float32 rows for quaternions ``q`` of shape (n, n_imu, 4)."""
        q = np.asarray(q, dtype=np.float64)
        if q.ndim != 3 or q.shape[1] != len(self.roles) or q.shape[2] != 4:
            raise DeviceError(f"quaternions must have shape (n, {len(self.roles)}, 4), got {q.shape}")
        cols = [q.reshape(len(q), -1)]
        if self._has_neck:
            p = pitch_deg(q)
            cols.append((p[:, 1] - p[:, 0])[:, None])
        return np.concatenate(cols, axis=1).astype(np.float32)

    def push(self, q: np.ndarray, timestamp: float | None = None) -> None:
        """Push n samples (quaternions (n, n_imu, 4)); ``timestamp`` is the LSL time of the
        last one (default: now), earlier ones are spaced by the nominal rate."""
        rows = self.samples(q)
        if not len(rows):
            return
        t_last = self._clock() if timestamp is None else float(timestamp)
        stamps = t_last - (len(rows) - 1 - np.arange(len(rows))) / self.rate_hz
        self._open().push_chunk(rows, stamps.tolist())

    def push_packet(self, packet) -> None:
        """Push the samples of a decoded SAMPLES packet (:class:`nape.wire.SamplesPacket`)."""
        if tuple(packet.roles) != self.roles:
            raise DeviceError(f"packet has IMUs {packet.roles}, this outlet streams {self.roles}")
        self.push(packet.quat)

    def have_consumers(self) -> bool:
        return bool(self._open().have_consumers())

    def _open(self):
        if self._outlet is None:
            raise DeviceError("the LSL outlet is closed")
        return self._outlet

    def close(self) -> None:
        """Stop streaming (inlets see the stream end)."""
        self._outlet = None

    def __enter__(self) -> "LslOutlet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
