"""Per-sample processing shared by the board's sampling loop and the simulated device.

One call to ``step`` takes one raw sample per IMU (m/s^2, rad/s, sensor frame), fuses
each IMU into an orientation, batches the result into SAMPLES packets and splits full
packets into notification values queued in ``outbox``. Nothing here touches hardware
or the radio: the caller drains ``outbox`` when the link can take it, so the loop never
blocks on BLE.
"""

import wire
from fusion import Fusion, FusionSettings

_G = 9.80665


class Pipeline:
    """Fusion + batching + fragmentation for one or two IMUs.

    Args:
        imu_mask: 1 trunk, 2 head, 3 both (wire format ``imu_mask``).
        rate_hz: fused output rate, Hz (one ``step`` per sample).
        max_value_len: bytes per notification value (ATT MTU - 3).
        seq: sequence number of the first sample.
    """

    def __init__(self, imu_mask, rate_hz, max_value_len, seq=0):
        self.imu_mask = imu_mask
        self.rate_hz = rate_hz
        self.period_us = int(1000000 / rate_hz + 0.5)
        self.fusion = []
        for _ in range(wire.imu_count(imu_mask)):
            self.fusion.append(Fusion(FusionSettings(rate_hz=rate_hz)))
        self.set_mtu_value_len(max_value_len, seq)
        self.outbox = []  # notification values (bytes) waiting for the link
        self.alert = False  # posture alert state, set by the posture module
        self.jolt = False  # jolt trigger on this sample, set by the jolt screen

    def set_mtu_value_len(self, max_value_len, seq=None):
        """(Re)size packets for a new ATT MTU; any partial packet is flushed first."""
        if seq is None:
            seq = self.batcher.seq
            self.flush()
        per = wire.samples_per_packet(self.imu_mask, max_value_len)
        self.batcher = wire.SampleBatcher(self.imu_mask, self.period_us, per, seq)
        self.fragmenter = wire.Fragmenter(max_value_len)

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None):
        """Fuse and queue one sample. acc/gyr are 3-sequences (m/s^2, rad/s)."""
        f0 = self.fusion[0]
        f0.update(gyr0[0], gyr0[1], gyr0[2], acc0[0], acc0[1], acc0[2])
        flags = 0
        first_rest = wire.FLAG_TRUNK_REST if self.imu_mask & 1 else wire.FLAG_HEAD_REST
        if f0.rest:
            flags |= first_rest
        if self.alert:
            flags |= wire.FLAG_ALERT
        if self.jolt:
            flags |= wire.FLAG_JOLT
        if self.imu_mask == 3 and acc1 is not None and gyr1 is not None:
            f1 = self.fusion[1]
            f1.update(gyr1[0], gyr1[1], gyr1[2], acc1[0], acc1[1], acc1[2])
            if f1.rest:
                flags |= wire.FLAG_HEAD_REST
            full = self.batcher.add(t_ms, flags, f0.q, acc0, gyr0, f1.q, acc1, gyr1)
        else:
            full = self.batcher.add(t_ms, flags, f0.q, acc0, gyr0)
        if full:
            self.flush()

    def flush(self):
        """Close the current packet (if any) and queue its notification values."""
        pkt = self.batcher.packet()
        if pkt is not None:
            self.outbox.extend(self.fragmenter.split(pkt))
