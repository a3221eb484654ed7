"""firmware/main.py modes under the real MicroPython, on the register-level fakes:
the power-saver sample-rate switch, quiet hours from the SET_TIME clock, SET_POSTURE over
the control characteristic, the posture defaults, and the allocation-free packet encoder
(firmware/pipeline.py) against the reference ``wire.SampleBatcher``.

The wearer is the simulated day of tests/firmware/test_sampler.py (500 Hz, chip axes);
when the board runs its IMUs at a lower ODR (saver: 200 Hz) the harness pushes
``odr`` of every 500 samples (evenly) while the hand-stepped clock advances 2 ms per
500 Hz sample, as a chip at that ODR would fill its FIFO.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nape import wire as hw
from nape.ble import protocol as P
from nape.settings import AnalysisSettings
from tests.firmware.test_sampler import FAKES, HUNCH_SLICE, JOLT_SLICE, signals
from tests.mpy import run_mpy

RES_OK, RES_BAD_VALUE = 0, 3  # protocol/SPEC.md control results (P.RESULTS)
assert P.RESULTS[RES_OK] == "ok" and P.RESULTS[RES_BAD_VALUE] == "bad value"

_HARNESS = r"""
import sys, json, gc, time, binascii
from array import array
import machine, fake_i2c, fake_mpu6050, fake_icm42688, bluetooth
import main, pipeline, posture, power, config
print(sys.implementation.name)
raw = sys.stdin.buffer.read()
nl = raw.index(b"\n")
cfg = json.loads(raw[:nl])
config.BLE_SECRETS_FILE = ""  # bonds in RAM: the unix port's "/" is the host's root
config.BLE_OWNER_KEY_FILE = ""
for k in cfg.get("config", {}):  # firmware settings of this run (read at boot)
    setattr(config, k, cfg["config"][k])
data = array("f", raw[nl + 1:])
del raw  # (the small-heap runs)
gc.collect()
W = 12
N = len(data) // W
bus = fake_i2c.FakeI2C()
c0 = bus.add(0x68, fake_mpu6050.FakeMPU6050())
c1 = bus.add(0x69, fake_icm42688.FakeICM42688())
machine.I2C.attach(0, bus)
machine.Timer.reset_all()


class FakeSvc:
    # what Device.step reads from a BLE service: link, status fields, event queue, clock
    def __init__(self):
        self.conn = None
        self.rate_hz = 100
        self.imu_errors = 0
        self._events = []
        self.max_events = 4096  # keeps every window of a run (the tests read them all)
        self.time_offset_ms = None
        self._boot_ms = time.ticks_ms()

    def queue_event(self, p):
        self._events.append(p)


class RecApp:
    # a radio-less app that keeps every SAMPLES packet (Device runs its own power policy)
    def __init__(self):
        self.pipeline = pipeline.Pipeline(3, 100, 244, fragment=False)
        self.service = FakeSvc()
        self.pkts = []

    def _take(self):
        for p in self.pipeline.outbox:
            self.pkts.append(binascii.hexlify(p).decode())
        self.pipeline.outbox.clear()

    def step(self, t, a0, g0, a1=None, g1=None, jolt=False):
        self.pipeline.step(t, a0, g0, a1, g1, jolt)
        self._take()

    def step_wire(self, t, a0, g0, a1, g1, w, jolt=False):
        self.pipeline.step_wire(t, a0, g0, a1, g1, w, jolt)
        if self.pipeline.outbox:
            self._take()

    def flush(self):
        self.pipeline.flush()
        self._take()

    def tick(self):
        return 0


ble = bluetooth.BLE()
app = RecApp() if cfg["app"] == "rec" else None
dev = main.boot(app=app, clock=machine.time_ms)
app = dev.app
smp = dev.sampler
svc = app.service
dev.feedback.posture = posture.PostureAlert(posture.PostureSettings(**cfg["posture"]))
if cfg.get("saver_after_s") is not None:
    dev.power = power.PowerPolicy(machine.time_ms(), saver_after_s=cfg["saver_after_s"])
    dev._own_power = True
out = {"boot": [smp.fused_hz, smp.odr_hz]}
if cfg["app"] == "ble":
    ble._inject(1, (3, 1, b"\x00" * 6)); app.tick()
    ble._inject(21, (3, 247)); app.tick()
    # secure by default: the central pairs inside the power-on window (the stack stores
    # its bond, the link is encrypted)
    ble._inject(30, (2, b"central-1", b"keys")); ble._inject(28, (3, True, False, True, 16)); app.tick()
    for hx in cfg.get("writes", []):
        ble._inject(3, (3, svc.h_control, binascii.unhexlify(hx)))
        app.tick()
    out["control"] = [binascii.hexlify(x[1][2]).decode() for x in ble._sent
                      if x[0] == "notify" and x[1][1] == svc.h_control]
    out["time_set"] = svc.time_offset_ms is not None
connect_at = cfg.get("connect_at_ms")
modes = []
i = 0
step_due = 0
acc = 0
while i < N:
    j = i * W
    acc += smp.odr_hz  # the chips sample at their ODR: every (500 / odr)-th 500 Hz sample
    if acc >= 500:
        acc -= 500
        c0.push(data[j:j + 3], data[j + 3:j + 6])
        c1.push(data[j + 6:j + 9], data[j + 9:j + 12])
    machine.Timer.step(2)
    now = machine.time_ms()
    if connect_at is not None and now >= connect_at and svc.conn is None:
        svc.conn = 1  # a central connects: the policy leaves the saver at once
    if now >= step_due:
        step_due = now + 10
        dev.step(now)
        m = (now, smp.fused_hz, smp.odr_hz, dev.power.mode)
        if not modes or modes[-1][1:] != m[1:]:
            modes.append(m)
    i += 1
post = dev.feedback.posture
h = smp.health()
out.update({"modes": modes, "alerts": post.alerts, "over_since_ms": post.over_since_ms,
            "quiet": post.quiet, "hour": dev.feedback.hour_of_day, "errors": h["errors"],
            "rate_changes": h["rate_changes"], "screening": h["screening"],
            "status_rate": svc.rate_hz, "thr": post._thr, "tthr": post._tthr,
            "hold_ms": post._hold_ms,
            # posture alerts played (the BLE app also buzzes the pairing window at power-on)
            "played": dev.feedback.buzzer.played - getattr(app, "signals", 0),
            "pair_signals": getattr(app, "signals", 0), "secure": bool(getattr(svc, "secure", 0))})
if cfg["app"] == "rec":
    app.flush()
    out["pkts"] = app.pkts
    out["events"] = [binascii.hexlify(p).decode() for p in svc._events]
if cfg["app"] == "ble":  # the offline buffer main.make_app built, and what it holds
    st = app.store
    first = st.read_from(0)
    out["store"] = {"ram": st.ram_cap, "flash": st.flash_cap, "path": st.flash_path, "count": st.count(),
                    "spilled": st.spilled, "flash_n": st.flash_n, "overflow": st.overflow_samples,
                    "oldest": st.oldest_seq(), "next": st.next_seq(), "fused": h["fused_samples"],
                    "first": None if first is None else binascii.hexlify(first[0]).decode(),
                    "status": binascii.hexlify(svc.status_bytes()).decode()}
print(json.dumps(out))
"""


def run_main(cfg: dict, t=HUNCH_SLICE, heap: str = "64m") -> dict:
    """Boot main.py on the fakes under MicroPython (``-X heapsize=heap``) and run the
    wearer's slice ``t`` (s) through it; the harness's JSON, with the board's log lines
    as ``"log"``."""
    _, sig = signals(*t, ["trunk", "head"])
    rec = np.concatenate([sig["trunk"], sig["head"]], axis=1)
    stdin = json.dumps(cfg).encode() + b"\n" + rec.tobytes()
    lines = run_mpy(_HARNESS, stdin=stdin, extra_path=[FAKES], timeout=300, heap=heap).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    out = json.loads(lines[-1])
    out["log"] = lines[1:-1]
    return out


# the hunch of HUNCH_SLICE: trunk ~22 deg from ~3.5 s into the slice; threshold 15 deg
POSTURE = {"hold_s": 2.0, "trunk_threshold_deg": 15.0, "quiet_start_h": 22, "quiet_end_h": 7}


def test_saver_drops_the_rate_keeps_the_posture_alert_and_a_central_restores_it():
    out = run_main({"app": "rec", "posture": POSTURE, "saver_after_s": 1.0, "connect_at_ms": 8000})
    assert out["boot"] == [100, 500] and out["errors"] == 0
    # active -> saver after 1 s without a central (50 Hz fused from 200 Hz raw: jolt
    # screening stays on) -> active again when the central connects at 8 s
    seq = [(m[1], m[2], m[3]) for m in out["modes"]]
    assert seq == [(100, 500, "active"), (50, 200, "saver"), (100, 500, "active")], out["modes"]
    t_saver = out["modes"][1][0]
    t_back = out["modes"][2][0]
    assert 1000 <= t_saver <= 1100 and 8000 <= t_back <= 8020
    assert out["rate_changes"] == 2 and out["screening"] is True and out["status_rate"] == 100
    # the stream shows the change in period_us; samples stay evenly spaced per packet and
    # the sequence numbers run on without a hole
    pk = [hw.decode_packet(bytes.fromhex(h)) for h in out["pkts"]]
    per = np.array([p.period_us for p in pk])
    t0 = np.array([p.t_ms for p in pk])
    assert set(per[t0 < t_saver - 100]) == {10000}
    assert set(per[(t0 > t_saver + 100) & (t0 < t_back - 100)]) == {20000}
    assert set(per[t0 > t_back + 100]) == {10000}
    seqs = np.concatenate([p.seq + np.arange(p.count) for p in pk])
    assert np.all(np.diff(seqs) == 1)
    n_saver = sum(p.count for p in pk if p.period_us == 20000)
    assert abs(n_saver - 50 * (t_back - t_saver) / 1000) <= 10
    # the posture alert fired in saver, hold_s (2 s) after the hunch began, and buzzed
    assert out["alerts"] == 1 and out["played"] == 1
    rows = [p for p in pk if p.period_us == 20000]
    flags = np.concatenate([p.flags for p in rows])
    ts = np.concatenate([p.t_ms + np.arange(p.count) * p.period_us // 1000 for p in rows])
    first = ts[np.nonzero(flags & hw.FLAG_ALERT)[0][0]]
    assert t_saver < out["over_since_ms"] < first < t_back
    assert 2000 <= first - out["over_since_ms"] <= 2000 + 100 + 40


def test_a_jolt_window_under_capture_when_the_saver_starts_is_kept_whole():
    """The saver's new rate makes a new jolt screen: the switch waits until the window being
    captured is out, so a jolt at the moment the host's absence turns into the saver keeps
    its whole window (it was lost before)."""
    def windows(out):
        ev = [hw.decode_packet(bytes.fromhex(h)) for h in out["events"]]
        by = {}
        for e in ev:
            by.setdefault(e.event_id, []).append(e)
        return [(w[0].trigger_t_ms, sum(e.count for e in w), w[0].total) for w in by.values()]

    base = run_main({"app": "rec", "posture": POSTURE, "saver_after_s": 1000.0}, t=JOLT_SLICE)
    (trig_ms, n, total), = windows(base)  # the rear impact, captured at full rate
    assert n == total
    # the saver starts 150 ms after the trigger: inside the window's 0.5 s after it
    out = run_main({"app": "rec", "posture": POSTURE, "saver_after_s": (trig_ms + 150) / 1000.0}, t=JOLT_SLICE)
    assert out["modes"][-1][1:] == [50, 200, "saver"] and out["errors"] == 0
    assert windows(out) == [(trig_ms, total, total)]
    t_policy = next(m[0] for m in out["modes"] if m[3] == "saver")
    t_rates = next(m[0] for m in out["modes"] if m[2] == 200)
    assert trig_ms + 140 <= t_policy <= trig_ms + 170  # the policy turned to the saver inside the window
    assert t_policy < t_rates <= trig_ms + 1000  # the rates followed once the window was out, not later


def test_without_saver_the_alert_fires_at_the_same_time():
    """The saver's 50 Hz fusion finds the same episode as the full rate (within 0.2 s)."""
    full = run_main({"app": "rec", "posture": POSTURE, "saver_after_s": 1000.0})
    saver = run_main({"app": "rec", "posture": POSTURE, "saver_after_s": 1.0})
    assert [m[3] for m in full["modes"]] == ["active"]
    assert [m[3] for m in saver["modes"]] == ["active", "saver"]
    assert full["alerts"] == saver["alerts"] == 1
    assert abs(full["over_since_ms"] - saver["over_since_ms"]) <= 200


def _unix_ms_at(hour: int, minute: int = 30) -> int:
    return (20000 * 86400 + hour * 3600 + minute * 60) * 1000  # a day in 2024, UTC


@pytest.mark.parametrize("hour,quiet", [(23, True), (14, False), (6, True), (7, False)])
def test_quiet_hours_follow_the_set_time_clock(hour, quiet):
    """SET_TIME carries UTC; with config.UTC_OFFSET_MIN = 0 local = UTC. Quiet 22:00-07:00."""
    writes = [P.cmd_start().hex(), P.cmd_set_time(_unix_ms_at(hour)).hex()]
    out = run_main({"app": "ble", "posture": POSTURE, "writes": writes})
    assert out["time_set"] is True and out["hour"] == hour
    assert [P.parse_control(bytes.fromhex(v)).result for v in out["control"]] == [RES_OK, RES_OK]
    if quiet:
        assert out["alerts"] == 0 and out["played"] == 0 and out["quiet"] is True
    else:
        assert out["alerts"] == 1 and out["played"] == 1 and out["quiet"] is False
    # the board's own boot path is secure and buzzed its power-on pairing window once
    assert out["secure"] is True and out["pair_signals"] == 1


def test_no_clock_means_no_quiet_hours():
    out = run_main({"app": "ble", "posture": POSTURE, "writes": [P.cmd_start().hex()]})
    assert out["time_set"] is False and out["hour"] is None
    assert out["alerts"] == 1


def test_local_hour_applies_the_utc_offset():
    rows = run_mpy(r"""
import sys, json, time, main
print(sys.implementation.name)
class S:
    pass
s = S()
s._boot_ms = time.ticks_ms()
s.time_offset_ms = %d
print(json.dumps([main.local_hour(None), main.local_hour(s), main.local_hour(s, 60),
                  main.local_hour(s, -300), main.local_hour(s, 90)]))
""" % _unix_ms_at(23, 45)).decode().splitlines()
    assert rows[0] == "micropython"
    assert json.loads(rows[1]) == [None, 23, 0, 18, 1]


def test_set_posture_over_the_control_characteristic_changes_the_alert():
    writes = [P.cmd_set_posture(30, 12, 45).hex(), P.cmd_set_posture(3, 12, 45).hex()]
    out = run_main({"app": "ble", "posture": POSTURE, "writes": writes})
    res = [P.parse_control(bytes.fromhex(v)).result for v in out["control"]]
    assert res == [RES_OK, RES_BAD_VALUE]  # 3 deg is outside 5-90: refused, nothing changes
    assert out["thr"] == 30.0 and out["tthr"] == 12.0 and out["hold_ms"] == 45000
    assert out["alerts"] == 0  # 45 s hold: the 6 s hunch is too short


def test_posture_defaults_are_the_hosts_cited_values():
    rows = run_mpy(r"""
import sys, json, posture, config
print(sys.implementation.name)
s = posture.PostureSettings()
print(json.dumps([s.threshold_deg, s.trunk_threshold_deg, s.hold_s, s.rearm_deg, s.rearm_s,
                  s.lying_deg, s.quiet_start_h, s.quiet_end_h, config.POSTURE_NECK_FLEXION_LIMIT_DEG]))
""").decode().splitlines()
    assert rows[0] == "micropython"
    host = AnalysisSettings()
    neck, trunk, hold, rearm, grace, lying, qs, qe, cfg_neck = json.loads(rows[1])
    assert (neck, trunk, hold) == (host.neck_flexion_deg, host.trunk_inclination_deg, host.hold_s)
    assert (rearm, grace, lying) == (host.hysteresis_deg, host.end_grace_s, host.lying_trunk_deg)
    assert neck == cfg_neck == 20 and (qs, qe) == (22, 7)


_ENCODER = r"""
import sys, json, random, wire, pipeline, micropython
from array import array
print(sys.implementation.name)
random.seed(%(seed)d)
bad = 0
packets = 0
for mask in (1, 2, 3):
    wb = wire.SampleBatcher(mask, 10000, 5, 7)
    pb = pipeline.Batcher(mask, 10000, 5, 7)
    w = array("h", bytearray(24))
    for i in range(1500):
        def rq():
            r = random.random()
            if r < 0.1:
                return random.choice([0.0, -0.0, 1.0, -1.0, 0.5 / 16384, -0.5 / 16384, 1.5 / 16384,
                                      -2.5 / 16384, 3e-9, 2.0, -2.0])
            return random.uniform(-1.0, 1.0)
        q0 = array("f", [rq() for _ in range(4)])
        q1 = array("f", [rq() for _ in range(4)])
        big = 400.0 if random.random() < 0.1 else 80.0
        a0 = [random.uniform(-big, big) for _ in range(3)]
        g0 = [random.uniform(-big / 10, big / 10) for _ in range(3)]
        a1 = [random.uniform(-big, big) for _ in range(3)]
        g1 = [random.uniform(-big / 10, big / 10) for _ in range(3)]
        flags = random.getrandbits(6) & 0x3C
        sat = 1 if pipeline._to_wire(a0, g0, w, 0) else 0
        if pipeline._to_wire(a1, g1, w, 6):
            sat |= 2
        f1 = wb.add(i, flags, q0, a0, g0, q1, a1, g1)
        f2 = pb.add(i, flags, q0, q1, w, sat)
        if f1 != f2:
            bad += 1
        if f1:
            packets += 1
            if wb.packet() != pb.packet():
                bad += 1
# the integer path allocates nothing while a packet fills (heap locked)
pb = pipeline.Batcher(3, 10000, 5)
q = array("f", [0.7, -0.1, 0.7, 0.1])
locked = 0
i = 0
micropython.heap_lock()
try:
    while i < 4:  # (a for loop would allocate its range iterator)
        pb.add(i * 10, 0, q, q, w, 0)
        i += 1
    locked = 1
except MemoryError:
    pass
micropython.heap_unlock()
print(json.dumps([bad, packets, locked, pb.count]))
"""


def test_packet_encoder_is_byte_identical_to_wire_samplebatcher():
    rows = run_mpy(_ENCODER % {"seed": 3}).decode().splitlines()
    assert rows[0] == "micropython"
    bad, packets, locked, count = json.loads(rows[1])
    assert packets == 900 and bad == 0
    assert locked == 1 and count == 4


def test_offline_buffer_is_sized_to_the_heap():
    rows = run_mpy(r"""
import sys, json, main, config
print(sys.implementation.name)
print(json.dumps([main.ram_slots(8 * 1024 * 1024), main.ram_slots(60000),
                  main.ram_slots(config.HEAP_RESERVE_BYTES + 249 * 100 + 10), config.BLE_RAM_SLOTS]))
""").decode().splitlines()
    assert rows[0] == "micropython"
    assert json.loads(rows[1]) == [4096, 32, 100, 4096]


# ---------------------------------------------------------------- offline buffer: RAM + flash spill

def _spill_run(tmp_path, heap: str, t=(6.0, 11.0), ram_slots: int = 64) -> dict:
    """main.boot with the BLE app (make_app) on a heap of ``heap``, the spill allowed on the
    unix port (BLE_SPILL 2) into a file in ``tmp_path``, a small RAM ring (``ram_slots``)
    so the slice (20 packets/s, no ACKs) has to spill."""
    spill = tmp_path / "spill.bin"
    out = run_main({"app": "ble", "posture": POSTURE, "writes": [P.cmd_start().hex()],
                    "config": {"BLE_SPILL": 2, "BLE_SPILL_FILE": str(spill), "BLE_RAM_SLOTS": ram_slots,
                               "BLE_SPILL_KIB": 3904}},
                   t=t, heap=heap)
    out["file"] = spill.stat().st_size if spill.exists() else None
    return out


def _check_store(st: dict) -> None:
    """The buffer holds every sample once, from seq 0 (the boot's first), readable back."""
    assert st["oldest"] == 0 and st["fused"] > 0
    assert st["count"] == st["fused"] // 5 and st["next"] == 5 * st["count"]  # closed packets of 5
    pk = hw.decode_packet(bytes.fromhex(st["first"]))
    assert pk.seq == 0 and pk.count == 5
    status = P.parse_status(bytes.fromhex(st["status"]))
    assert status.buffer_fill_permille == 1000 * st["count"] // (st["ram"] + st["flash"])
    assert status.oldest_seq == 0 and status.next_seq == st["next"] and status.overflow_samples == 0


def test_big_heap_boots_with_the_flash_spill(tmp_path):
    """8 MB heap (the XIAO ESP32S3's PSRAM): the spill index (16 384 slots, 80 KiB) fits."""
    out = _spill_run(tmp_path, "8m")
    st = out["store"]
    assert st["path"] == str(tmp_path / "spill.bin") and st["flash"] == 16384 and st["ram"] == 64
    assert any("heap holds the spill index" in x for x in out["log"]), out["log"]
    assert any("64 RAM + 16384 flash slots (spill to" in x and "822 s at 100 Hz" in x for x in out["log"])
    # 5 s at 100 Hz = 100 packets in a 64-slot ring: the oldest went to flash, none lost
    assert out["errors"] == 0 and st["spilled"] >= 100 - 64 and st["flash_n"] == st["spilled"] > 0
    assert out["file"] == st["spilled"] * 244  # the file grows in 244-byte slots
    _check_store(st)


def test_small_heap_boots_with_the_buffer_in_ram_only(tmp_path):
    """A heap without room for the spill index besides the reserve: RAM only, and the board
    still runs; the full ring overwrites its oldest samples."""
    out = _spill_run(tmp_path, "550k", t=(6.0, 8.0), ram_slots=32)
    st = out["store"]
    assert st["path"] is None and st["flash"] == 0 and st["ram"] == 32
    # 0.55 MB on the 64-bit unix port: gc.mem_free() says yes, but no 64 KiB piece is
    # left for the index, so the fallback builds the RAM-only ring
    assert any("offline buffer 32 RAM + 0 flash slots (RAM only)" in x for x in out["log"]), out["log"]
    assert not any("spill to" in x for x in out["log"]) and out["file"] is None and st["spilled"] == 0
    assert out["errors"] == 0 and st["fused"] == 200  # 2 s at 100 Hz: the loop ran
    # full, the ring frees a 16-packet batch at a time: 40 packets leave 24
    assert 32 - 16 <= st["count"] <= 32 and st["next"] == 200 and st["oldest"] == 200 - 5 * st["count"]
    assert st["overflow"] == st["oldest"] > 0  # the oldest packets, never confirmed: lost and counted


def test_plain_esp32_heap_decides_ram_only_at_boot():
    """Boot alone on a 332 KiB heap: what is free at make_app (~124 KiB with the modules
    compiled on the board) cannot hold the 80 KiB index besides the 64 KiB reserve.
    (332, not 300: compiling main.py from source on this heap leaves it fragmented, and
    the light-sleep code's ~1.4 KiB left no 2 x 9 KiB block for the jolt rings at 300;
    the day log's code in the BLE service and BLE app took ~20 KiB more.)"""
    rows = run_mpy(r"""
import sys, json, machine, fake_i2c, fake_mpu6050, fake_icm42688, bluetooth, config
print(sys.implementation.name)
config.BLE_SPILL = 2
config.BLE_SPILL_KIB = 3904  # the 16 384-slot file of a board without a day log (80 KiB index)
config.BLE_SPILL_FILE = "/nonexistent-dir/spill.bin"  # never opened: the decision comes first
import main
bus = fake_i2c.FakeI2C()
bus.add(0x68, fake_mpu6050.FakeMPU6050())
bus.add(0x69, fake_icm42688.FakeICM42688())
machine.I2C.attach(0, bus)
machine.Timer.reset_all()
ble = bluetooth.BLE()
dev = main.boot(clock=machine.time_ms, start_timer=False)
st = dev.app.store
print(json.dumps([st.ram_cap, st.flash_cap, st.flash_path]))
""", extra_path=[FAKES], heap="332k").decode().splitlines()
    assert rows[0] == "micropython"
    free = int(rows[1].split()[1])
    assert free < 65536 + 16384 * 5 + 32 * 249 and rows[1].endswith("heap too small for the spill index")
    assert "RAM only" in rows[2] and "unusable" not in "".join(rows)
    ram, flash, path = json.loads(rows[-1])
    # as much RAM ring as the decision allows, halved while no piece that big is free
    assert flash == 0 and path is None and 32 <= ram <= max(32, (free - 65536) // 249)
    assert ("offline buffer %d RAM + 0 flash slots (RAM only)" % ram) in rows[2]


def test_buffer_plan_decides_from_the_heap():
    rows = run_mpy(r"""
import sys, json, main, config
print(sys.implementation.name)
M = 1024 * 1024
default_kib = config.BLE_SPILL_KIB
config.BLE_SPILL_KIB = 3904  # the 16 384-slot file of a board without a day log
print(json.dumps([main.buffer_plan(8 * M, spill=2), main.buffer_plan(110 * 1024, spill=2),
                  main.buffer_plan(8 * M, spill=0), main.buffer_plan(8 * M),
                  main.buffer_plan(8 * M, spill=2, spill_file=""),
                  main.buffer_plan(65536 + 16384 * 5 + 32 * 249, spill=2),
                  main.buffer_plan(65536 + 16384 * 5 + 32 * 249 - 1, spill=2),
                  config.BLE_SPILL, config.BLE_SPILL_FILE, default_kib]))
""").decode().splitlines()
    assert rows[0] == "micropython"
    big, esp32, off, unix_port, nofile, edge, below, default, path, kib = json.loads(rows[1])
    assert big == [4096, path, 16384, "heap holds the spill index"] and kib == 640 and default == 1
    # a plain ESP32's ~110 KiB: 80 KiB of index would leave less than the 64 KiB reserve
    assert esp32 == [(110 * 1024 - 65536) // 249, None, 0, "heap too small for the spill index"]
    assert off == nofile == [4096, None, 0, "spill off in config"]
    assert unix_port == [4096, None, 0, "no board flash on this port"]  # 1: the esp32 port only
    assert edge == [32, path, 16384, "heap holds the spill index"] and below[1] is None and below[2] == 0
