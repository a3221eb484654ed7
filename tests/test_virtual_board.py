"""The virtual board is the whole firmware: ``main.py`` under MicroPython on the register-level
fake IMUs at 500 Hz, recorded over the bumble radio by the host's recorder.

A synthetic wearer (upright and still, then one 2 g bump on the trunk, then a 30 deg forward
hunch held past the posture alert's hold time) goes through the real drivers, the sampler, the
on-board jolt screen, the posture alert and the buzzer shim, the GATT service and the offline
buffer. Checked on the host side: the EVENT window of the bump arrives at the IMUs' rate and
holds the bump; the JOLT flag sits on the fused sample of the bump; the ALERT flag follows the
buzzer; the firmware printed its boot line and the motor pulses of the alert pattern.
"""

from __future__ import annotations

import asyncio

import numpy as np

from nape import wire
from nape.ble import BleTransport, VirtualDevice
from nape.ble.virtual import BOARD_ODR_HZ, nsim_blob
from nape.recorder import record
from nape.recording import open_recording

G = 9.80665
RATE = BOARD_ODR_HZ
BUMP_S = 5.0
HUNCH_S = 8.0
END_S = 75.0  # the default hold is 60 s (config.POSTURE_HOLD_S)
HUNCH_DEG = 35.0


class _Imu:
    def __init__(self, acc, gyr):
        self.acc = acc
        self.gyr = gyr


class _Wearer:
    """Trunk and head sensors (x forward, z up): still, a bump, then a forward hunch."""

    def __init__(self):
        n = int(END_S * RATE)
        t = np.arange(n) / RATE
        rng = np.random.default_rng(3)
        # pitch ramps over 1 s to HUNCH_DEG (trunk and head together: trunk inclination)
        pitch = np.deg2rad(HUNCH_DEG) * np.clip(t - HUNCH_S, 0.0, 1.0)
        rate = np.gradient(pitch, 1.0 / RATE)
        acc = np.stack([-G * np.sin(pitch), np.zeros(n), G * np.cos(pitch)], axis=1)
        gyr = np.stack([np.zeros(n), rate, np.zeros(n)], axis=1)
        bump = (t >= BUMP_S) & (t < BUMP_S + 0.03)
        trunk_acc = acc + rng.normal(0, 0.02, (n, 3))
        trunk_acc[bump, 2] += 2.0 * G
        self.rate_hz = RATE
        self.t = t
        self.imus = {"trunk": _Imu(trunk_acc, gyr + rng.normal(0, 0.002, (n, 3))),
                     "head": _Imu(acc + rng.normal(0, 0.02, (n, 3)), gyr + rng.normal(0, 0.002, (n, 3)))}


def test_the_virtual_board_runs_the_whole_firmware(tmp_path):
    path = tmp_path / "board.nape"
    blob = nsim_blob(_Wearer())

    async def main():
        async with VirtualDevice(blob, speed=0, quiet_hours=False, secure=False) as vd:
            tr = BleTransport(bumble=vd.bumble_args)
            stats = await record(tr, path)
            return stats, [e.get("line", "") for e in vd.events if e.get("event") == "fw"]

    stats, lines = asyncio.run(main())
    n_fused = int(END_S * 100)
    assert stats.samples == n_fused and stats.lost_samples == 0 and stats.duplicate_samples == 0
    assert any(ln.startswith("main: trunk MPU-6050, head ICM-42688-P, raw 500 Hz, stream 100 Hz")
               for ln in lines), lines[:10]

    events, flags, times = [], [], []
    for _t, p in open_recording(path).iter_packets():
        pkt = wire.decode_packet(p)
        if isinstance(pkt, wire.EventPacket):
            events.append(pkt)
        elif isinstance(pkt, wire.SamplesPacket):
            flags.extend(int(f) for f in pkt.flags)
            times.extend(pkt.t_ms + np.arange(pkt.count) * pkt.period_us / 1000.0)
    flags = np.array(flags)
    times = np.array(times)

    # the bump's EVENT window: full rate, two IMUs, the trigger inside the bump
    assert events, "no EVENT packets reached the host"
    ids = {e.event_id for e in events}
    assert len(ids) == 1
    first = min(events, key=lambda e: e.first_index)
    assert first.rate_hz == 500 and first.imu_mask == 3
    got = sum(e.count for e in events)
    assert got == first.total  # every part of the window
    acc = np.concatenate([e.acc for e in sorted(events, key=lambda e: e.first_index)])
    assert acc[:, 0, 2].max() > 2.5 * G  # the trunk's bump, at 500 Hz
    assert abs(first.trigger_t_ms - BUMP_S * 1000) <= 10

    # JOLT flag on the fused sample of the bump
    jolt_t = times[(flags & wire.FLAG_JOLT) != 0]
    assert len(jolt_t) == 1 and abs(jolt_t[0] - BUMP_S * 1000) <= 10

    # the posture alert buzzed after the hold; the ALERT flag spans the pattern (3 pulses)
    alert_t = times[(flags & wire.FLAG_ALERT) != 0]
    assert len(alert_t) >= 100
    assert HUNCH_S * 1000 + 60000 <= alert_t[0] <= HUNCH_S * 1000 + 61000 + 500
    buzz = [ln for ln in lines if ln.startswith("NAPE-APP buzz ")]
    assert len(buzz) == 3 and all("on_ms=200" in b for b in buzz), buzz


_FRAMES_VS_SAMPLES = r"""
import sys, struct, machine, fake_i2c, fake_mpu6050, fake_icm42688, imu_detect, board_app
print(sys.implementation.name)
w = board_app.Wearer(sys.argv[1] if len(sys.argv) > 1 else "WEARER")
def board():
    bus = fake_i2c.FakeI2C()
    chips = [bus.add(0x68, fake_mpu6050.FakeMPU6050()), bus.add(0x69, fake_icm42688.FakeICM42688())]
    imus = imu_detect.find_imus(bus)
    for d in (imus["trunk"], imus["head"]):
        d.configure(odr_hz=400)
    return chips
a = board()  # sample by sample, from counts decoded out of the frames
b = board()  # the fast path: frames in one call
buf, off = w.span(0, 50)
for i in range(50):
    o = off + i * w.rec
    t = struct.unpack_from(">6h", buf, o)
    h = struct.unpack_from(">6h", buf, o + 13)
    a[0].push_counts(t, 0)
    a[1].push_counts(h, 0)
b[0].push_frames(buf, off, w.rec, 50)
b[1].push_frames(buf, off + w.trunk_size, w.rec, 50)
for ca, cb in zip(a, b):
    x = bytearray(ca.fifo.n); ca.fifo.get_into(x)
    y = bytearray(cb.fifo.n); cb.fifo.get_into(y)
    print(len(x), x == y, ca.regs == cb.regs, ca.pushed == cb.pushed == 50)
"""


def test_fifo_frames_from_the_host_equal_what_the_chips_make(tmp_path):
    """The virtual board's fast path (the host packs the chips' FIFO frames) gives the very
    bytes and registers the register-level chip models produce sample by sample."""
    from tests.mpy import run_mpy

    path = tmp_path / "w.nfrm"
    path.write_bytes(nsim_blob(_Wearer()))
    out = run_mpy(_FRAMES_VS_SAMPLES.replace('"WEARER"', repr(str(path)))).decode().split()
    assert out[0] == "micropython"
    assert out[1:] == ["600", "True", "True", "True", "800", "True", "True", "True"]


def test_the_virtual_board_keeps_a_xiao_day_log_by_default():
    # the virtual board's day log is the XIAO ESP32S3's, the size config.DAYLOG_KIB names
    import inspect
    import re

    from nape.ble import virtual
    from nape.paths import firmware_dir

    cfg = (firmware_dir() / "config.py").read_text()
    kib = int(re.search(r"^DAYLOG_KIB = const\((\d+)\)", cfg, re.M).group(1))
    assert virtual.BOARD_DAYLOG_KIB == kib
    assert inspect.signature(VirtualDevice).parameters["daylog_kib"].default == kib
