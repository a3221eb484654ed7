"""Firmware faults, end to end under the real MicroPython: chips -> drivers -> sampler -> BLE app.

The board is booted with ``main.boot`` on the register-level fake chips (nape/boardsim/mpy)
and the loopback ``bluetooth`` shim, a central connects and streams, and a fault is injected
mid-stream: I2C errors (transient and persistent), a chip that disappears from the bus (and
comes back, or comes back power-cycled), a FIFO overflow (the loop stalls), a central that
writes garbage to the control characteristic, a central that subscribes and never reads (every
notification refused). Each run checks, in CPython, with the host decoder:

* the firmware kept running (the sampler's scheduled poll never let an exception escape; the
  main loop went on; fused samples kept coming while the trunk IMU answered);
* the fault is counted in ``Sampler.health()`` and reported in the status characteristic;
* every sample that comes out over BLE is intact and correctly sequenced: notifications
  reassemble into packets that decode, sequence numbers run on without duplicates, time
  increases, and each sample carries the raw data its timestamp says -- the chips are fed
  ramps (trunk chip x, head chip y), so a fused sample's value names the raw samples it was
  averaged from; a corrupted, reordered or misaligned sample would not match. Samples are lost
  only where the firmware says so (a FIFO overflow while the bus was gone shows as a time jump
  counted in ``gaps``; an offline buffer overflow is counted in ``overflow_samples``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nape import wire as hw
from nape.ble import protocol as P
from nape.boardsim import mpy_dir
from tests.mpy import ROOT, run_mpy

FAKES = mpy_dir()  # the register-level fakes live with the board simulation
TRUNK_RAMP = (-30.0, 0.01)  # chip x, m/s^2: start, per raw sample
HEAD_RAMP = (25.0, -0.008)  # chip y


def _axis_map(name: str) -> tuple[int, ...]:
    m = re.search(r"^%s = \(([^)]*)\)" % name, (ROOT / "firmware" / "config.py").read_text(), re.M)
    assert m, name
    return tuple(int(x) for x in m.group(1).split(","))


_HARNESS = r"""
import sys, json, binascii, struct
import machine, bluetooth, fake_i2c, fake_mpu6050, fake_icm42688
print(sys.implementation.name)
import main, ble_app, ble_buffer, ble_service
cfg = json.loads(sys.stdin.buffer.read())
N = cfg["n"]
bus = fake_i2c.FakeI2C()
chips = {0x68: bus.add(0x68, fake_mpu6050.FakeMPU6050()), 0x69: bus.add(0x69, fake_icm42688.FakeICM42688())}
c0, c1 = chips[0x68], chips[0x69]
machine.I2C.attach(0, bus)
machine.Timer.reset_all()
ble = bluetooth.BLE()
store = ble_buffer.PacketStore(ram_slots=cfg["ram_slots"])
app = ble_app.BleApp(3, 100, store=store, ble=ble, power_saver=False)
dev = main.boot(app=app, clock=machine.time_ms)
svc = app.service
odr = dev.sampler.odr_hz
K = 1
while (K * 1000) % odr:
    K += 1
STEP = K * 1000 // odr  # push K samples, advance the clock STEP ms
stream, control = [], []
def collect():
    for x in ble._sent:
        if x[0] != "notify":
            continue
        a = x[1]
        if a[1] == svc.h_stream:
            stream.append(binascii.hexlify(a[2]).decode())
        elif a[1] == svc.h_control:
            control.append(binascii.hexlify(a[2]).decode())
    ble._sent.clear()
def write(cmd):
    ble._inject(3, (7, svc.h_control, cmd))
ble._inject(1, (7, 1, b"\x00" * 6))
ble._inject(21, (7, 247))
write(b"\x01")
faults = {}
for f in cfg["faults"]:
    faults.setdefault(f[0], []).append(f[1:])
acc0 = [0.0, 0.0, 9.0]
acc1 = [0.0, 0.0, 9.0]
zero = [0.0, 0.0, 0.0]
away = {}
loop_errors = 0
max_ctrl = 0
garbage = cfg.get("garbage", [])
gi = 0
i = 0
while i < N:
    for f in faults.get(i, ()):
        op = f[0]
        if op == "fail_next":
            bus.fail_next(f[1])
        elif op == "fail_reg":
            bus.fail_reg(f[1], f[2])
        elif op == "remove":
            away[f[1]] = bus.devices.pop(f[1])
        elif op == "restore":
            bus.devices[f[1]] = away.pop(f[1])
        elif op == "power_cycle":  # the chip browns out: registers and FIFO back to reset
            chips[f[1]].reset()
        elif op == "stall":
            dev.timer.deinit()
        elif op == "resume":
            dev.timer.init(mode=machine.Timer.PERIODIC, period=20, callback=dev.sampler.timer_cb)
        elif op == "deaf":
            ble._fail_notify = 1 << 30
        elif op == "hear":
            ble._fail_notify = 0
        elif op == "garbage":
            for _ in range(f[1]):
                write(binascii.unhexlify(garbage[gi % len(garbage)]))
                gi += 1
    for k in range(K):
        acc0[0] = cfg["tr"][0] + cfg["tr"][1] * (i + k)
        acc1[1] = cfg["hr"][0] + cfg["hr"][1] * (i + k)
        c0.push(acc0, zero)
        c1.push(acc1, zero)
    i += K
    machine.Timer.step(STEP)
    try:
        dev.step(machine.time_ms())
    except Exception as e:
        loop_errors += 1
        print("LOOP", repr(e))
    if ble._fail_notify == 0 and svc._frags is None and svc.cursor is not None and i % 40 == 0:
        write(b"\x09" + struct.pack("<I", svc.cursor))  # the central confirms what it has
    if len(svc._ctrl_out) > max_ctrl:
        max_ctrl = len(svc._ctrl_out)
    collect()
ble._fail_notify = 0
app.flush()
for _ in range(4000):  # let the service send everything stored
    machine.Timer.step(STEP)
    dev.step(machine.time_ms())
    collect()
    if svc.cursor == store.next_seq() and svc._frags is None:
        break
write(b"\x07")
svc.poll()
collect()
h = dev.sampler.health()
out = {"odr": odr, "health": h, "stream": stream, "control": control, "loop_errors": loop_errors,
       "last_error": dev.sampler.last_error, "status": binascii.hexlify(svc.status_bytes()).decode(),
       "next_seq": store.next_seq(), "overflow_samples": store.overflow_samples,
       "notify_busy": svc.notify_busy, "notify_errors": svc.notify_errors,
       "ctrl_out": len(svc._ctrl_out), "max_ctrl_out": max_ctrl, "streaming": svc.streaming, "garbage_sent": gi,
       "imu_errors_status": svc.imu_errors}
print(json.dumps(out))
"""


def run_faults(faults: list, n: int = 4000, ram_slots: int = 4096, garbage: list[str] | None = None) -> dict:
    cfg = {"n": n, "faults": faults, "ram_slots": ram_slots, "tr": TRUNK_RAMP, "hr": HEAD_RAMP,
           "garbage": garbage or []}
    lines = run_mpy(_HARNESS, stdin=json.dumps(cfg).encode(), extra_path=[FAKES], timeout=300).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    out = json.loads(lines[-1])
    out["log"] = lines[1:-1]
    return out


def decode(out: dict) -> dict:
    """Reassemble and decode every stream notification; per-sample arrays in seq order."""
    r = hw.Reassembler()
    pk = []
    for h in out["stream"]:
        p = r.feed(bytes.fromhex(h))
        if p is not None:
            pk.append(hw.decode_packet(p))  # PacketError here = a corrupted packet
    assert r.dropped == 0, "a fragment was lost or out of place"
    assert pk and all(isinstance(p, hw.SamplesPacket) and p.imu_mask == 3 for p in pk)
    seq = np.concatenate([p.seq + np.arange(p.count) for p in pk])
    t = np.concatenate([p.t_ms + np.arange(p.count) * p.period_us / 1000.0 for p in pk])
    acc = np.concatenate([p.acc for p in pk])  # (n, 2, 3) m/s^2, device axes
    return {"packets": pk, "seq": seq, "t": t, "acc": acc}


def ramp_index(acc_dev: np.ndarray, axes: tuple[int, ...], chip_axis: int, ramp: tuple[float, float]) -> np.ndarray:
    """Raw sample index a fused value was averaged around, from the ramp on ``chip_axis``."""
    d = [k for k, m in enumerate(axes) if abs(m) - 1 == chip_axis][0]
    chip_val = np.sign(axes[d]) * acc_dev[:, d]
    return (chip_val - ramp[0]) / ramp[1]


def check_stream(out: dict, head_skip: list[tuple[float, float]] = (), lost_ok: int = 0) -> dict:
    """The stream is intact and in order (see module doc); returns the decoded stream."""
    st = decode(out)
    seq, t = st["seq"], st["t"]
    # every sample exactly once, in order; a missing span only where the firmware counted it
    assert np.all(np.diff(seq) > 0), "duplicate or reordered samples"
    missing = int(seq[-1] - seq[0] + 1 - len(seq))
    assert seq[0] == 0 and seq[-1] + 1 == out["next_seq"]
    if lost_ok:  # evicted before the central confirmed them: at most that many are missing,
        # in one hole (some of the evicted ones may have reached the central unconfirmed)
        assert 0 < missing <= lost_ok and np.sum(np.diff(seq) != 1) == 1, (missing, lost_ok)
    else:
        assert missing == 0, missing
    assert np.all(np.diff(t) > 0), "time runs backwards"
    period = 1000.0 / out["odr"]
    ct = ramp_index(st["acc"][:, 0], _axis_map("TRUNK_AXIS_MAP"), 0, TRUNK_RAMP)
    ch = ramp_index(st["acc"][:, 1], _axis_map("HEAD_AXIS_MAP"), 1, HEAD_RAMP)
    # each fused sample holds the raw samples of its time: t = ct * period + a fixed offset
    # (the anchor), to within the ramp's quantisation (about 1 raw sample) and one poll's
    # worth of re-anchoring after a gap
    off = t - ct * period
    base = np.median(off[: max(10, len(off) // 10)])
    assert np.all(np.abs(off - base) <= 2.5 * period + 1.0), float(np.max(np.abs(off - base)))
    assert np.all(np.diff(ct) > 0), "trunk data out of order"
    keep = np.ones(len(t), bool)
    for a, b in head_skip:
        keep &= ~((t >= a) & (t <= b))
    # the head carries the same raw instants as the trunk (pairing within the carry window)
    assert np.all(np.abs(ch[keep] - ct[keep]) <= 6.0), float(np.max(np.abs(ch[keep] - ct[keep])))
    st["ct"], st["ch"], st["period"] = ct, ch, period
    return st


def status(out: dict) -> P.Status:
    return P.parse_status(bytes.fromhex(out["status"]))


def no_crash(out: dict) -> None:
    assert out["loop_errors"] == 0, out["log"]
    assert out["streaming"], "the service stopped streaming"


# ---------------------------------------------------------------------------------- tests


def test_clean_run_is_complete_and_exact():
    out = run_faults([])
    no_crash(out)
    st = check_stream(out)
    h = out["health"]
    assert h["gaps"] == 0 and h["errors"] == 0 and h["imu_errors"] == 0
    assert len(st["seq"]) == out["next_seq"] >= 4000 // (out["odr"] // 100) - 5
    s = status(out)
    assert s.imu_errors == 0 and s.overflow_samples == 0


def test_transient_i2c_errors_are_retried_counted_and_lose_nothing():
    # two failed transactions every 250 raw samples: each is retried (max_retries 2)
    out = run_faults([[i, "fail_next", 2] for i in range(400, 3600, 250)])
    no_crash(out)
    st = check_stream(out)
    h = out["health"]
    n_faults = len(range(400, 3600, 250))
    i2c = h["trunk"]["i2c_errors"] + h["head"]["i2c_errors"]
    assert i2c == 2 * n_faults and h["trunk"]["retries"] + h["head"]["retries"] == 2 * n_faults
    assert h["errors"] == 0 and h["gaps"] == 0  # retried: nothing lost, no time jump
    assert len(st["seq"]) == out["next_seq"]
    assert status(out).imu_errors >= i2c  # reported to the central


def test_trunk_bus_failure_for_some_polls_loses_nothing():
    # the trunk's FIFO count register fails 3 times in a row (all retries) three times:
    # those polls raise inside the scheduled wrapper, the samples wait in the FIFO
    MPU_FIFO_COUNTH = 0x72
    out = run_faults([[1000, "fail_reg", MPU_FIFO_COUNTH, 3], [2000, "fail_reg", MPU_FIFO_COUNTH, 3],
                      [3000, "fail_reg", MPU_FIFO_COUNTH, 3]])
    no_crash(out)
    h = out["health"]
    assert h["errors"] == 3 and h["imu_errors"] == 3 and "ImuError" in out["last_error"]
    st = check_stream(out)
    assert len(st["seq"]) == out["next_seq"]
    assert status(out).imu_errors >= 3


def test_head_chip_disappears_and_comes_back():
    # the head's connector lets go for 1 s (all transactions NACK: ENODEV), then reconnects
    out = run_faults([[1200, "remove", 0x69], [1600, "restore", 0x69]])
    no_crash(out)
    h = out["health"]
    assert h["imu_errors"] >= 1 and h["head"]["i2c_errors"] >= 3
    assert h["gaps"] == 2  # head down, head back: both re-align the streams
    # the trunk went on alone: no time lost, and the head is right again after it came back
    period = 1000.0 / out["odr"]
    st = check_stream(out, head_skip=[(1150 * period, 1700 * period)])
    assert len(st["seq"]) == out["next_seq"]
    # the trunk went on while the head was away; when the head came back its FIFO had
    # overflowed (counted) and re-aligning newest-to-newest costs at most a few fused
    # samples: one short time jump, at the head's return, counted in gaps
    d = np.diff(st["t"])
    jumps = np.nonzero(d != 10.0)[0]
    assert len(jumps) <= 1 and np.all(d[jumps] <= 50.0), d[jumps]
    if len(jumps):
        assert abs(st["t"][jumps[0]] - 1600 * period) <= 50.0 and h["fifo_overflows"] >= 1
    assert status(out).imu_errors >= 1


def test_trunk_chip_disappears_long_enough_to_overflow_its_fifo():
    # trunk gone for 600 raw samples (more than its FIFO holds): no fused samples while it
    # is away (the loop keeps running), then a counted FIFO overflow, a gap and the stream
    # goes on with a time jump; every sample that came out is intact
    out = run_faults([[1500, "remove", 0x68], [2100, "restore", 0x68]])
    no_crash(out)
    h = out["health"]
    assert h["errors"] >= 5 and h["imu_errors"] >= 5  # every poll while away
    assert h["fifo_overflows"] >= 1 and h["gaps"] >= 1
    st = check_stream(out)
    jumps = np.diff(st["t"])
    assert np.sum(jumps > 10.0 + 1e-9) == 1 and jumps.max() >= 100  # one visible hole, ~the FIFO overrun
    assert status(out).imu_errors >= 5


def test_head_chip_power_cycles_and_is_set_up_again():
    # the head browns out and comes back with its reset register values (FIFO off, sleep):
    # the firmware must notice (no samples, or a wrong configuration) and set it up again
    out = run_faults([[1200, "remove", 0x69], [1300, "power_cycle", 0x69], [1400, "restore", 0x69]])
    no_crash(out)
    period = 1000.0 / out["odr"]
    # after a settling time the head's values are the head's data again
    st = check_stream(out, head_skip=[(1150 * period, 2400 * period)])
    assert len(st["seq"]) == out["next_seq"]
    h = out["health"]
    assert h["imu_errors"] >= 1 and h["gaps"] >= 2


def test_fifo_overflow_from_a_stalled_loop():
    out = run_faults([[2000, "stall"], [2400, "resume"]])
    no_crash(out)
    h = out["health"]
    assert h["fifo_overflows"] >= 1 and h["trunk"]["fifo_overflows"] >= 1 and h["gaps"] >= 1
    assert h["late_polls"] >= 1
    st = check_stream(out)
    assert np.sum(np.diff(st["t"]) > 10.0 + 1e-9) == 1
    assert status(out).imu_errors >= 1


def test_garbage_on_the_control_characteristic():
    rng = np.random.default_rng(5)
    garbage = [rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes().hex() for _ in range(200)]
    garbage = [g for g in garbage if not g.startswith(("02", "03", "08"))]  # not STOP / BACKFILL: valid asks
    out = run_faults([[i, "garbage", 20] for i in range(300, 3300, 300)], garbage=garbage)
    no_crash(out)
    st = check_stream(out)
    assert len(st["seq"]) == out["next_seq"]
    # every write got its answer in the documented format, and the service still answers
    resp = [P.parse_control(bytes.fromhex(h)) for h in out["control"]]
    sent = [bytes.fromhex(garbage[i % len(garbage)]) for i in range(out["garbage_sent"])]
    want = [g for g in sent if g and not (g[0] == 9 and len(g) == 5)]
    answered = [r for r in resp if not r.is_event]
    assert len(answered) == len(want) + 2  # + START, GET_STATUS
    assert all(r.result in (0, 1, 2, 3, 4) for r in answered)
    assert answered[-1].opcode == 0x07 and answered[-1].ok
    assert out["ctrl_out"] == 0


def test_central_that_never_reads_backs_up_then_catches_up():
    # every notification refused (ENOMEM) for 3000 raw samples: the service keeps its place,
    # counts the refusals, the buffer holds the backlog, and when the central reads again
    # everything comes out in order (nothing lost: the RAM buffer holds it)
    out = run_faults([[500, "deaf"], [3500, "hear"]])
    no_crash(out)
    assert out["notify_busy"] >= 100
    st = check_stream(out)
    assert len(st["seq"]) == out["next_seq"]
    assert status(out).notify_busy == out["notify_busy"] and out["overflow_samples"] == 0


def test_central_that_never_reads_overflows_a_small_buffer_and_says_so():
    # 32 RAM slots (about 1.6 s of packets) and no flash: the oldest unconfirmed packets are
    # evicted and counted in overflow_samples; the central sees one hole, no larger than that
    out = run_faults([[400, "deaf"], [3600, "hear"]], ram_slots=32)
    no_crash(out)
    assert out["overflow_samples"] > 0
    check_stream(out, lost_ok=out["overflow_samples"])
    assert status(out).overflow_samples == out["overflow_samples"]


def test_central_that_never_reads_while_writing_commands_does_not_grow_memory():
    # a deaf central that keeps writing: responses cannot go out; the queue must stay bounded
    garbage = ["07"] * 10 + ["99"] * 10
    out = run_faults([[500, "deaf"]] + [[i, "garbage", 50] for i in range(600, 3400, 100)] + [[3500, "hear"]],
                     garbage=garbage)
    no_crash(out)
    check_stream(out)
    assert out["garbage_sent"] == 50 * len(range(600, 3400, 100))
    assert out["max_ctrl_out"] <= 8, out["max_ctrl_out"]
    assert out["ctrl_out"] == 0
