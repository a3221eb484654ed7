"""LSL outlet loopback: an outlet and an inlet in one process, on this machine only."""

import uuid

import numpy as np
import pytest

pylsl = pytest.importorskip("pylsl", reason="pylsl is optional: pip install 'nape[lsl]'")

from nape import lsl, wire  # noqa: E402
from nape.errors import DeviceError  # noqa: E402
from tests.recording_factory import pitch_quat, specific_force  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_only():
    lsl.configure(local_only=True)  # discovery on 127.0.0.1 only; before any other LSL call


def _channels(info) -> list[str]:
    ch = info.desc().child("channels").child("channel")
    out = []
    while not ch.empty():
        out.append(ch.child_value("label"))
        ch = ch.next_sibling()
    return out


def test_outlet_streams_quaternions_and_neck_flexion_to_an_inlet():
    sid = f"nape-test-{uuid.uuid4().hex[:8]}"
    n = 25
    trunk = pitch_quat(np.full(n, 10.0), heading_deg=40)
    head = pitch_quat(np.linspace(10.0, 50.0, n), heading_deg=40)  # neck flexion 0 → 40°
    q = np.stack([trunk, head], axis=1)
    acc = np.stack([specific_force(trunk, np.zeros((n, 3))), specific_force(head, np.zeros((n, 3)))], axis=1)
    packet = wire.decode_packet(wire.encode_samples(3, 0, 0, 20000, np.zeros(n, np.uint8), q, acc, np.zeros_like(acc)))
    with lsl.LslOutlet(("trunk", "head"), rate_hz=50.0, source_id=sid) as out:
        found = pylsl.resolve_byprop("source_id", sid, 1, 5.0)
        assert len(found) == 1
        inlet = pylsl.StreamInlet(found[0])
        info = inlet.info(timeout=5.0)
        assert (info.name(), info.type(), info.channel_count(), info.nominal_srate()) == ("Nape", "Orientation", 9, 50.0)
        assert _channels(info) == ["trunk_qw", "trunk_qx", "trunk_qy", "trunk_qz",
                                   "head_qw", "head_qx", "head_qy", "head_qz", "neck_flexion_deg"]
        inlet.open_stream(timeout=5.0)
        t_last = pylsl.local_clock()
        out.push_packet(packet)
        rows, stamps = [], []
        while len(rows) < n:
            sample, ts = inlet.pull_sample(timeout=5.0)
            assert sample is not None, f"only {len(rows)} of {n} samples arrived"
            rows.append(sample)
            stamps.append(ts)
        inlet.close_stream()
    rows = np.array(rows)
    assert np.abs(rows[:, :8] - q.reshape(n, 8)).max() < 2e-4  # wire quantisation (1/16384) and float32
    assert np.abs(rows[:, 8] - np.linspace(0.0, 40.0, n)).max() < 0.05
    assert np.diff(stamps) == pytest.approx(np.full(n - 1, 0.02), abs=1e-3)  # spaced by the nominal rate
    assert abs(stamps[-1] - t_last) < 1.0


def test_trunk_only_outlet_and_bad_input():
    with lsl.LslOutlet(("trunk",), rate_hz=25.0, source_id=f"nape-test-{uuid.uuid4().hex[:8]}") as out:
        assert out.labels == ["trunk_qw", "trunk_qx", "trunk_qy", "trunk_qz"]
        assert out.samples(np.tile([1.0, 0, 0, 0], (3, 1, 1))).shape == (3, 4)
        with pytest.raises(DeviceError, match=r"shape \(n, 1, 4\)"):
            out.push(np.zeros((3, 2, 4)))
    with pytest.raises(DeviceError, match="IMU roles"):
        lsl.LslOutlet(("head",))
