"""IMU drivers (firmware/imu_*.py) against register-level fakes, under the real MicroPython.

Every driver call runs in the unix ``micropython`` binary (tests/mpy.py: run_mpy) with the
fakes in nape/boardsim/mpy. Physical samples (slices of the simulated wearer, nape.sim)
are made here in CPython, written to the interpreter's stdin as float32 records, pushed into the fake chip (which converts them to
counts with its configured range) and read back through the driver. The expected values
are computed here from the datasheet sensitivities written out below, not from the fakes.
"""

from __future__ import annotations

import functools
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nape.boardsim import mpy_dir
from tests.mpy import run_mpy

FAKES = mpy_dir()  # the register-level fakes live with the board simulation
G = 9.80665

# Datasheet sensitivities (MPU-6000/6050 PS rev 3.4 sec. 6.1-6.2, MPU-6500 PS, ICM-42688-P DS-000347).
ACC_LSB_PER_G = {2: 16384, 4: 8192, 8: 4096, 16: 2048}
GYR_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}
# Range register fields: MPU ACCEL_CONFIG/GYRO_CONFIG bits 4:3 = 0..3 from the smallest range;
# ICM ACCEL_CONFIG0/GYRO_CONFIG0 bits 7:5 = 0..3 from the largest range.
MPU_FS = {2: 0, 4: 1, 8: 2, 16: 3, 250: 0, 500: 1, 1000: 2, 2000: 3}
ICM_FS = {16: 0, 8: 1, 4: 2, 2: 3, 2000: 0, 1000: 1, 500: 2, 250: 3}

# kind -> (FIFO capacity in bytes, bytes per sample, data register of accel X, burst length,
#          FIFO data register)
CHIPS = {
    "mpu6050": (1024, 12, 0x3B, 14, 0x74),
    "mpu6500": (512, 12, 0x3B, 14, 0x74),
    "icm42688": (2048, 16, 0x1F, 12, 0x30),
}
KINDS = list(CHIPS)

_PRELUDE = r"""
import sys, json
from array import array
import micropython
import fake_i2c, fake_mpu6050, fake_icm42688
import imu_base, imu_mpu6050, imu_icm42688, imu_detect
from imu_base import ImuError
print(sys.implementation.name)
FAKE = {
    "mpu6050": lambda who=0x68: fake_mpu6050.FakeMPU6050(who),
    "mpu6500": lambda who=0x70: fake_mpu6050.FakeMPU6050(who),
    "icm42688": lambda who=0x47: fake_icm42688.FakeICM42688(who),
}
DRV = {"mpu6050": imu_mpu6050.MPU6050, "mpu6500": imu_mpu6050.MPU6050, "icm42688": imu_icm42688.ICM42688}

def make(kind, addr=0x68, **kw):
    bus = fake_i2c.FakeI2C()
    chip = bus.add(addr, FAKE[kind]())
    return bus, chip, DRV[kind](bus, addr, **kw)

def h(n):
    return array("h", [0] * (3 * n))

def f3():
    return array("f", [0.0, 0.0, 0.0])

def out(**kw):
    print(json.dumps(kw))

def samples():
    for r in fake_i2c.stdin_records(6):
        yield r[:3], r[3:]
"""


def mpy(kind: str, body: str, stdin: bytes = b"") -> list[dict]:
    """Run the prelude + ``body`` (with @KIND@ replaced) under MicroPython; JSON lines out."""
    code = _PRELUDE + textwrap.dedent(body).replace("@KIND@", kind)
    lines = run_mpy(code, stdin=stdin, extra_path=[FAKES]).decode().splitlines()
    assert lines[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(line) for line in lines[1:] if line]


# ---- signals -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _sim_trunk() -> tuple[np.ndarray, np.ndarray] | None:
    """Trunk IMU of the simulated wearer's default day (nape.sim), or None if not installed."""
    try:
        from nape.sim import simulate_day
    except ImportError:
        return None
    imu = simulate_day(0).imus["trunk"]
    return np.asarray(imu.acc, np.float32), np.asarray(imu.gyr, np.float32)


def wearer_signal(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` consecutive samples of an upper-back IMU: acc (n, 3) m/s^2, gyr (n, 3) rad/s.

    A slice of the simulated wearer's day (``nape.sim.simulate_day(0).imus["trunk"]``,
    sensor errors and 16 g / 2000 dps quantisation included) starting at an offset set by
    ``seed``. Without nape.sim, a synthetic signal: trunk sway (pitch +-17 deg at 0.3 Hz,
    roll +-9 deg at 0.5 Hz) tilting gravity, a 1.8 Hz gait bounce of 2 m/s^2, a 0.8 rad/s
    yaw oscillation and white noise, at 500 Hz.
    """
    day = _sim_trunk()
    if day is not None and len(day[0]) > n:
        start = (seed * 7919 + 1000) % (len(day[0]) - n)
        return day[0][start : start + n].copy(), day[1][start : start + n].copy()
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 500.0
    pitch = 0.3 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
    roll = 0.15 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6))
    acc = G * np.stack([np.sin(pitch), -np.sin(roll) * np.cos(pitch), np.cos(roll) * np.cos(pitch)], axis=1)
    acc[:, 2] += 2.0 * np.sin(2 * np.pi * 1.8 * t)
    acc += rng.normal(0, 0.05, acc.shape)
    gyr = np.stack([np.gradient(roll, t), np.gradient(pitch, t), 0.8 * np.sin(2 * np.pi * 0.4 * t)], axis=1)
    gyr += rng.normal(0, 0.01, gyr.shape)
    return acc.astype(np.float32), gyr.astype(np.float32)


def to_stdin(acc: np.ndarray, gyr: np.ndarray) -> bytes:
    rec = np.concatenate([acc, gyr], axis=1).astype("<f4")
    return rec.tobytes()


def expected_counts(x: np.ndarray, lsb_per_si: float) -> np.ndarray:
    """Counts a chip outputs for physical values x: round half away from zero, int16 clamp."""
    c = np.asarray(x, np.float64) * lsb_per_si
    c = np.where(c >= 0, np.floor(c + 0.5), -np.floor(-c + 0.5))
    return np.clip(c, -32768, 32767).astype(int)


def acc_lsb_si(g: int) -> float:
    return ACC_LSB_PER_G[g] / G  # counts per m/s^2


def gyr_lsb_si(dps: int) -> float:
    return GYR_LSB_PER_DPS[dps] * 57.29577951308232  # counts per rad/s


# ---- identity ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_chip_id_raises_imu_error(kind):
    res = mpy(
        kind,
        """
        bus = fake_i2c.FakeI2C()
        chip = bus.add(0x68, FAKE["@KIND@"](0x5A))
        try:
            DRV["@KIND@"](bus, 0x68)
            out(raised=None)
        except ImuError as e:
            out(raised=str(e), addr=e.addr, pwr=chip.regs[0x6B], accel_cfg=chip.regs[0x1C])
        # A good chip that is swapped for another one later: check_id counts it.
        bus, chip, d = make("@KIND@")
        chip.who_am_i = chip.regs[0x75] = 0x11
        try:
            d.check_id()
            out(swapped=None)
        except ImuError as e:
            out(swapped=str(e), id_mismatch=d.id_mismatch, health=d.health()["id_mismatch"])
        """,
    )
    assert res[0]["raised"] is not None, "a wrong WHO_AM_I must raise ImuError"
    assert "0x5a" in res[0]["raised"] and "0x68" in res[0]["raised"]
    expected = {"mpu6050": "0x68 or 0x70", "mpu6500": "0x68 or 0x70", "icm42688": "0x47"}[kind]
    assert expected in res[0]["raised"]
    assert res[0]["addr"] == 0x68
    if kind.startswith("mpu"):
        # Nothing written to an unknown chip: still in its power-on state.
        assert res[0]["pwr"] == 0x40 and res[0]["accel_cfg"] == 0
    assert "0x11" in res[1]["swapped"] and res[1]["id_mismatch"] == 1 and res[1]["health"] == 1


def test_mpu_driver_rejects_icm_and_vice_versa():
    res = mpy(
        "",
        """
        for fake, drv in (("icm42688", "mpu6050"), ("mpu6050", "icm42688"), ("mpu6500", "icm42688")):
            bus = fake_i2c.FakeI2C()
            bus.add(0x68, FAKE[fake]())
            try:
                DRV[drv](bus, 0x68)
                out(ok=True)
            except ImuError as e:
                out(ok=False, msg=str(e))
        """,
    )
    assert [r["ok"] for r in res] == [False, False, False]
    assert "0x47" in res[0]["msg"] and "0x68" in res[1]["msg"] and "0x70" in res[2]["msg"]


def test_icm_constructor_selects_bank_0_first():
    """After an MCU-only reboot the ICM may be left in another bank, where 0x75 is not WHO_AM_I."""
    res = mpy(
        "icm42688",
        """
        bus = fake_i2c.FakeI2C()
        chip = bus.add(0x68, FAKE["icm42688"]())
        chip.bank = 3
        d = DRV["icm42688"](bus, 0x68)
        out(chip=d.chip, bank=chip.bank, pwr=chip.regs[0x4E], who=d.who_am_i)
        """,
    )[0]
    assert res == {"chip": "ICM-42688-P", "bank": 0, "pwr": 0x0F, "who": 0x47}


# ---- configuration and scaling -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_scaling_every_range_reads_back_input(kind):
    """Each accel range x each gyro range: read_one returns the input within half an LSB."""
    combos = [(g, d) for g in (2, 4, 8, 16) for d in (250, 500, 1000, 2000)]
    per = 12
    acc0, gyr0 = wearer_signal(per, seed=3)
    blocks_a, blocks_g = [], []
    for g, d in combos:
        # Same motion shape, scaled to peak at 90 % of each full scale (includes negatives).
        a = acc0 / np.abs(acc0).max() * 0.9 * g * G
        w = gyr0 / np.abs(gyr0).max() * 0.9 * math.radians(d)
        a[0], w[0] = 0.0, 0.0
        blocks_a.append(a.astype(np.float32))
        blocks_g.append(w.astype(np.float32))
    stdin = to_stdin(np.concatenate(blocks_a), np.concatenate(blocks_g))
    res = mpy(
        kind,
        """
        combos = %s
        bus, chip, d = make("@KIND@")
        src = samples()
        a3, g3 = f3(), f3()
        for g, dps in combos:
            d.configure(accel_g=g, gyro_dps=dps, odr_hz=100)
            acc, gyr = [], []
            for i in range(%d):
                pa, pg = next(src)
                chip.push(pa, pg)
                d.read_one(a3, g3)
                acc.append(list(a3)); gyr.append(list(g3))
            out(g=g, dps=dps, acc=acc, gyr=gyr, lsb_g=d.acc_lsb_per_g, lsb_dps=d.gyr_lsb_per_dps,
                acc_scale=d.acc_scale, gyr_scale=d.gyr_scale,
                regs=[chip.regs[r] for r in (0x1B, 0x1C, 0x4F, 0x50)], sat=d.saturations)
        """
        % (json.dumps(combos), per),
        stdin=stdin,
    )
    assert len(res) == len(combos)
    for r, a_in, w_in in zip(res, blocks_a, blocks_g):
        g, d = r["g"], r["dps"]
        assert r["lsb_g"] == ACC_LSB_PER_G[g] and r["lsb_dps"] == pytest.approx(GYR_LSB_PER_DPS[d])
        assert r["acc_scale"] == pytest.approx(G / ACC_LSB_PER_G[g], rel=1e-12)
        assert r["gyr_scale"] == pytest.approx(math.radians(1) / GYR_LSB_PER_DPS[d], rel=1e-12)
        if kind.startswith("mpu"):
            assert r["regs"][0] == MPU_FS[d] << 3 and r["regs"][1] == MPU_FS[g] << 3
        else:
            assert r["regs"][2] >> 5 == ICM_FS[d] and r["regs"][3] >> 5 == ICM_FS[g]
        half_a = 0.5 / acc_lsb_si(g) * (1 + 1e-6) + 1e-6
        half_w = 0.5 / gyr_lsb_si(d) * (1 + 1e-6) + 1e-7
        err_a = np.abs(np.array(r["acc"]) - a_in).max()
        err_w = np.abs(np.array(r["gyr"]) - w_in).max()
        assert err_a <= half_a, (g, err_a, half_a)
        assert err_w <= half_w, (d, err_w, half_w)
        assert r["sat"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_sample_rate_selection_and_registers(kind):
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@")
        for odr in (400, 100, 25, 1000, 10):
            d.configure(accel_g=16, gyro_dps=2000, odr_hz=odr)
            out(odr=odr, got=d.odr_hz, div=chip.regs[0x19], cfg=chip.regs[0x1A], a2=chip.regs[0x1D],
                g0=chip.regs[0x4F], a0=chip.regs[0x50])
        for bad in (0, -5, 9000):
            try:
                d.configure(odr_hz=bad)
                out(bad=bad, raised=False)
            except ValueError:
                out(bad=bad, raised=True)
        for kw in ({"accel_g": 3}, {"gyro_dps": 125}):
            try:
                d.configure(**kw)
                out(kw=kw, raised=False)
            except ValueError:
                out(kw=kw, raised=True)
        d.configure(accel_g=16, gyro_dps=2000, odr_hz=333)
        d.configure(gyro_dps=250)  # rate and accel range kept
        out(kept=[d.accel_g, d.gyro_dps, d.odr_hz])
        """,
    )
    rates = {r["odr"]: r for r in res if "odr" in r}
    if kind.startswith("mpu"):
        # 1 kHz / (1 + SMPLRT_DIV); DLPF_CFG bandwidth 188/98/42/20/10/5 Hz <= odr / 2.
        want = {400: (500.0, 1, 1), 100: (100.0, 9, 3), 25: (25.0, 39, 5), 1000: (1000.0, 0, 1), 10: (10.0, 99, 6)}
        for odr, (hz, div, dlpf) in want.items():
            r = rates[odr]
            assert r["got"] == pytest.approx(hz) and r["div"] == div and r["cfg"] & 7 == dlpf
            if kind == "mpu6500":
                assert r["cfg"] & 0x40 and r["a2"] == dlpf  # FIFO_MODE stop-when-full, A_DLPF_CFG
    else:
        # ODR codes: 500 Hz 0b1111, 100 Hz 0b1000, 25 Hz 0b1010, 1 kHz 0b0110, 12.5 Hz 0b1011.
        want = {400: (500.0, 15), 100: (100.0, 8), 25: (25.0, 10), 1000: (1000.0, 6), 10: (12.5, 11)}
        for odr, (hz, code) in want.items():
            r = rates[odr]
            assert r["got"] == pytest.approx(hz) and r["g0"] & 15 == code and r["a0"] & 15 == code
    bad = [r for r in res if "bad" in r or "kw" in r]
    assert len(bad) == 5 and all(r["raised"] for r in bad)
    assert res[-1]["kept"] == [16, 250, pytest.approx(1000 / 3 if kind.startswith("mpu") else 500.0)]


# ---- burst read -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_burst_read_is_one_transaction_big_endian(kind):
    _, _, reg, length, _ = CHIPS[kind]
    acc_vals = [0x1234, -292, -32767]
    gyr_vals = [0x0102, 0x7FFE, -256]
    gyr_reg = 0x43 if kind.startswith("mpu") else 0x25
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=16, gyro_dps=2000)
        for k, v in enumerate(%s):
            chip.set_i16(%d + 2 * k, v)
        for k, v in enumerate(%s):
            chip.set_i16(%d + 2 * k, v)
        ra, rg = array("h", [0, 0, 0]), array("h", [0, 0, 0])
        a3, g3 = f3(), f3()
        bus.trace = True
        bus.log = []
        d.read_raw(ra, rg)
        log_raw = bus.log
        bus.log = []
        d.read_one(a3, g3)
        out(raw_a=list(ra), raw_g=list(rg), a=list(a3), g=list(g3), log_raw=log_raw, log_one=bus.log,
            sat=d.saturations)
        """
        % (acc_vals, reg, gyr_vals, gyr_reg),
    )[0]
    assert res["raw_a"] == acc_vals and res["raw_g"] == gyr_vals
    assert res["log_raw"] == [["r", 0x68, reg, length]]
    assert res["log_one"] == [["r", 0x68, reg, length]]
    assert res["a"] == pytest.approx([v * G / 2048 for v in acc_vals], rel=1e-6)
    assert res["g"] == pytest.approx([math.radians(v / 16.4) for v in gyr_vals], rel=1e-6)
    assert res["sat"] == 0  # -32767 and 32766 are in range


# ---- FIFO ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_fifo_returns_samples_in_order(kind):
    cap, frame = CHIPS[kind][:2]
    n = min(50, cap // frame - 2)  # more than one 16-sample burst, less than a full FIFO
    acc, gyr = wearer_signal(n, seed=7)
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=8, gyro_dps=1000, odr_hz=400)
        for pa, pg in samples():
            chip.push(pa, pg)
        ra, rg = h(64), h(64)
        bus.trace = True
        n1 = d.read_fifo(ra, rg, 20)
        first = [list(ra[:3 * n1]), list(rg[:3 * n1]), d.gap]
        reads = [e for e in bus.log if e[2] == %d]
        n2 = d.read_fifo(ra, rg, 64)
        second = [list(ra[:3 * n2]), list(rg[:3 * n2]), d.gap]
        n3 = d.read_fifo(ra, rg, 64)
        out(n=[n1, n2, n3], first=first, second=second, fifo_reads=reads, left=chip.fifo.n,
            overflows=d.fifo_overflows, sat=d.saturations)
        """
        % CHIPS[kind][4],
        stdin=to_stdin(acc, gyr),
    )[0]
    assert res["n"] == [20, n - 20, 0]
    want_a = expected_counts(acc, acc_lsb_si(8))
    want_g = expected_counts(gyr, gyr_lsb_si(1000))
    got_a = np.array(res["first"][0] + res["second"][0]).reshape(-1, 3)
    got_g = np.array(res["first"][1] + res["second"][1]).reshape(-1, 3)
    np.testing.assert_array_equal(got_a, want_a)
    np.testing.assert_array_equal(got_g, want_g)
    assert res["first"][2] is True, "the first batch after start-up follows a FIFO reset"
    assert res["second"][2] is False, "the second batch continues the first"
    # 20 samples = one 16-sample burst + one 4-sample burst, all whole frames.
    assert [e[3] for e in res["fifo_reads"]] == [16 * frame, 4 * frame]
    clipped = (np.abs(want_a) >= 32767) | (np.abs(want_g) >= 32767)
    assert res["left"] == 0 and res["overflows"] == 0 and res["sat"] == int(clipped.any(axis=1).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_fifo_overflow_counted_reset_and_recovered(kind):
    cap, frame = CHIPS[kind][:2]
    frames = cap // frame
    n_over = frames + 15
    n_after = 7
    n_edge = frames - 1
    acc, gyr = wearer_signal(n_over + n_after + n_edge, seed=11)
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=16, gyro_dps=2000, odr_hz=500)
        src = samples()
        ra, rg = h(256), h(256)
        for i in range(%d):
            pa, pg = next(src)
            chip.push(pa, pg)
        n0 = d.read_fifo(ra, rg, 256)
        out(n=n0, gap=d.gap, overflows=d.fifo_overflows, left=chip.fifo.n, dropped=chip.dropped,
            frames=d.fifo_frames)
        for i in range(%d):
            pa, pg = next(src)
            chip.push(pa, pg)
        n1 = d.read_fifo(ra, rg, 256)
        out(n=n1, gap=d.gap, overflows=d.fifo_overflows, acc=list(ra[:3 * n1]))
        for i in range(%d):  # one sample short of a full FIFO: no overflow
            pa, pg = next(src)
            chip.push(pa, pg)
        n2 = d.read_fifo(ra, rg, 256)
        out(n=n2, gap=d.gap, overflows=d.fifo_overflows, acc=list(ra[:3 * n2]), health=d.health())
        """
        % (n_over, n_after, n_edge),
        stdin=to_stdin(acc, gyr),
    )
    over, after, edge = res
    assert over["frames"] == frames
    assert over["dropped"] > 0, "the fake must really have overflowed"
    assert over["n"] == 0 and over["gap"] is True and over["overflows"] == 1
    assert over["left"] == 0, "the FIFO must be reset after an overflow"
    want = expected_counts(acc, acc_lsb_si(16))
    assert after["n"] == n_after and after["gap"] is True and after["overflows"] == 1
    np.testing.assert_array_equal(np.array(after["acc"]).reshape(-1, 3), want[n_over : n_over + n_after])
    assert edge["n"] == n_edge and edge["gap"] is False and edge["overflows"] == 1
    np.testing.assert_array_equal(np.array(edge["acc"]).reshape(-1, 3), want[n_over + n_after :])
    assert edge["health"]["fifo_overflows"] == 1


def test_icm_fifo_bad_header_resyncs():
    """A packet whose header is not accel+gyro means lost alignment: reset, keep good ones."""
    acc, gyr = wearer_signal(9, seed=5)
    res = mpy(
        "icm42688",
        """
        bus, chip, d = make("@KIND@", accel_g=16, gyro_dps=2000)
        src = samples()
        ra, rg = h(16), h(16)
        pa, pg = next(src)
        chip.push(pa, pg)
        d.read_fifo(ra, rg, 16)  # start of stream (gap)
        for i in range(6):
            pa, pg = next(src)
            chip.push(pa, pg)
        f = chip.fifo
        f.buf[(f.head + 16 * 4) % f.capacity] = 0x80  # 5th packet: "FIFO empty" header
        n = d.read_fifo(ra, rg, 16)
        out(n=n, gap=d.gap, overflows=d.fifo_overflows, left=f.n, acc=list(ra[:3 * n]))
        for i in range(2):
            pa, pg = next(src)
            chip.push(pa, pg)
        n = d.read_fifo(ra, rg, 16)
        out(n=n, gap=d.gap, acc=list(ra[:3 * n]))
        """,
        stdin=to_stdin(acc, gyr),
    )
    bad, after = res
    assert bad["n"] == 4 and bad["gap"] is False and bad["overflows"] == 1 and bad["left"] == 0
    np.testing.assert_array_equal(np.array(bad["acc"]).reshape(-1, 3), expected_counts(acc[1:5], acc_lsb_si(16)))
    assert after["n"] == 2 and after["gap"] is True
    np.testing.assert_array_equal(np.array(after["acc"]).reshape(-1, 3), expected_counts(acc[7:], acc_lsb_si(16)))


# ---- bus errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_i2c_errors_retried_counted_then_raise(kind):
    acc, gyr = wearer_signal(3, seed=2)
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=16, gyro_dps=2000)
        src = samples()
        a3, g3 = f3(), f3()
        pa, pg = next(src)
        chip.push(pa, pg)
        bus.fail_next(1)
        d.read_one(a3, g3)
        out(step="one", acc=list(a3), errors=d.i2c_errors, retries=d.retries)
        bus.fail_next(2)
        d.read_one(a3, g3)
        out(step="two", acc=list(a3), errors=d.i2c_errors, retries=d.retries)
        bus.fail_next(1)
        d.configure(accel_g=16, gyro_dps=2000, odr_hz=200)
        out(step="write", errors=d.i2c_errors, retries=d.retries)
        bus.fail_always()
        t0 = bus.transactions
        try:
            d.read_one(a3, g3)
            out(step="always", raised=None)
        except ImuError as e:
            out(step="always", raised=str(e), tries=bus.transactions - t0, errors=d.i2c_errors,
                retries=d.retries, addr=e.addr)
        bus.heal()
        pa, pg = next(src)
        chip.push(pa, pg)
        d.read_one(a3, g3)
        out(step="healed", acc=list(a3), health=d.health())
        """,
        stdin=to_stdin(acc, gyr),
    )
    one, two, write, always, healed = res
    lsb = 1 / acc_lsb_si(16)
    assert np.abs(np.array(one["acc"]) - acc[0]).max() <= lsb
    assert (one["errors"], one["retries"]) == (1, 1)
    assert np.abs(np.array(two["acc"]) - acc[0]).max() <= lsb
    assert (two["errors"], two["retries"]) == (3, 3)
    assert (write["errors"], write["retries"]) == (4, 4)
    # Bounded: max_retries=2 -> 3 attempts, then ImuError.
    assert always["raised"] is not None and "failed 3 times" in always["raised"]
    assert always["tries"] == 3 and always["errors"] == 7 and always["retries"] == 6
    assert always["addr"] == 0x68
    assert np.abs(np.array(healed["acc"]) - acc[1]).max() <= lsb
    assert healed["health"]["i2c_errors"] == 7 and healed["health"]["retries"] == 6


@pytest.mark.parametrize("kind", KINDS)
def test_failed_fifo_read_is_not_retried_and_reports_gap(kind):
    acc, gyr = wearer_signal(25, seed=4)
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=16, gyro_dps=2000)
        src = samples()
        ra, rg = h(32), h(32)
        for i in range(5):
            pa, pg = next(src)
            chip.push(pa, pg)
        out(n=d.read_fifo(ra, rg, 32), gap=d.gap)
        for i in range(10):
            pa, pg = next(src)
            chip.push(pa, pg)
        bus.fail_reg(%d, 1)
        n = d.read_fifo(ra, rg, 32)
        out(n=n, gap=d.gap, errors=d.i2c_errors, retries=d.retries, left=chip.fifo.n)
        for i in range(10):
            pa, pg = next(src)
            chip.push(pa, pg)
        n = d.read_fifo(ra, rg, 32)
        out(n=n, gap=d.gap, acc=list(ra[:3 * n]))
        """
        % CHIPS[kind][4],
        stdin=to_stdin(acc, gyr),
    )
    first, failed, after = res
    assert first == {"n": 5, "gap": True}
    assert failed["n"] == 0 and failed["gap"] is True
    assert failed["errors"] == 1 and failed["retries"] == 0, "a FIFO data read must not be retried"
    assert failed["left"] == 0, "the FIFO is reset after a failed FIFO read"
    assert after["n"] == 10 and after["gap"] is True
    np.testing.assert_array_equal(np.array(after["acc"]).reshape(-1, 3), expected_counts(acc[15:], acc_lsb_si(16)))


# ---- saturation -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_saturation_counted(kind):
    acc = np.array(
        [[0, 0, G], [3 * G, 0, G], [0, -2.5 * G, 0], [0.5, 0.5, 0.5], [0, 0, G]], np.float32
    )  # 2 g range: samples 1 and 2 clip
    gyr = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 6.0, 0]], np.float32)  # 250 dps = 4.36 rad/s
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@", accel_g=2, gyro_dps=250)
        ra, rg = array("h", [0, 0, 0]), array("h", [0, 0, 0])
        one = []
        for pa, pg in samples():
            chip.push(pa, pg)
            sat = d.read_raw(ra, rg)
            one.append([list(ra), list(rg), sat])
        after_direct = d.saturations
        fa, fg = h(8), h(8)
        n = d.read_fifo(fa, fg, 8)
        out(one=one, after_direct=after_direct, n=n, total=d.saturations, health=d.health()["saturations"])
        """,
        stdin=to_stdin(acc, gyr),
    )[0]
    assert [s for _, _, s in res["one"]] == [False, True, True, False, True]
    assert res["one"][1][0][0] == 32767 and res["one"][2][0][1] == -32768 and res["one"][4][1][1] == 32767
    assert res["one"][0][0][2] == 16384  # 1 g on the 2 g range
    assert res["after_direct"] == 3
    assert res["n"] == 5 and res["total"] == 6 and res["health"] == 6


# ---- detection ---------------------------------------------------------------------------------


def test_detect_finds_one_or_two_imus():
    res = mpy(
        "",
        """
        def bus_with(*chips):
            bus = fake_i2c.FakeI2C()
            for addr, chip in chips:
                bus.add(addr, chip)
            return bus

        def found(bus):
            try:
                imus = imu_detect.find_imus(bus)
            except ImuError as e:
                return {"error": str(e)}
            return {k: (None if v is None else [v.chip, v.addr]) for k, v in imus.items()}

        icm_bank2 = fake_icm42688.FakeICM42688()
        icm_bank2.bank = 2  # left in another register bank by an earlier firmware run
        cases = {
            "trunk_only": bus_with((0x68, FAKE["mpu6050"]())),
            "both": bus_with((0x68, FAKE["mpu6050"]()), (0x69, FAKE["icm42688"]())),
            "icm_trunk_6500_head": bus_with((0x68, FAKE["icm42688"]()), (0x69, FAKE["mpu6500"]())),
            "head_only": bus_with((0x69, FAKE["mpu6050"]())),
            "empty": bus_with(),
            "wrong_head": bus_with((0x68, FAKE["icm42688"]()), (0x69, FAKE["mpu6050"](0x12))),
            "wrong_trunk": bus_with((0x68, FAKE["mpu6050"](0x12))),
            "icm_bank2": bus_with((0x68, icm_bank2)),
        }
        out(**{k: found(b) for k, b in cases.items()})

        class Broken(fake_mpu6050.FakeMPU6050):  # answers WHO_AM_I, every write fails
            def write(self, reg, data):
                raise OSError(5)

        imus = imu_detect.find_imus(bus_with((0x68, FAKE["icm42688"]()), (0x69, Broken())))
        out(head=imus["head"], trunk=imus["trunk"].chip, head_error=imu_detect.head_error)
        try:
            imu_detect.find_imus(bus_with((0x68, Broken())))
            out(broken_trunk=None)
        except ImuError as e:
            out(broken_trunk=str(e))
        b = bus_with((0x68, FAKE["mpu6050"]()))
        out(mpu_on_empty=imu_mpu6050.detect(b, 0x69) is None, icm_on_mpu=imu_icm42688.detect(b, 0x68) is None)
        """,
    )
    r = res[0]
    assert r["trunk_only"] == {"trunk": ["MPU-6050", 0x68], "head": None}
    assert r["both"] == {"trunk": ["MPU-6050", 0x68], "head": ["ICM-42688-P", 0x69]}
    assert r["icm_trunk_6500_head"] == {"trunk": ["ICM-42688-P", 0x68], "head": ["MPU-6500", 0x69]}
    assert "trunk IMU not found at 0x68" in r["head_only"]["error"]
    assert "trunk IMU not found" in r["empty"]["error"]
    assert r["wrong_head"] == {"trunk": ["ICM-42688-P", 0x68], "head": None}
    assert "trunk IMU not found" in r["wrong_trunk"]["error"]
    assert r["icm_bank2"] == {"trunk": ["ICM-42688-P", 0x68], "head": None}
    assert res[1]["head"] is None and res[1]["trunk"] == "ICM-42688-P"
    assert "MPU-6050 at 0x69" in res[1]["head_error"] and "failed 3 times" in res[1]["head_error"]
    assert "MPU-6050 at 0x68" in res[2]["broken_trunk"]
    assert res[3] == {"mpu_on_empty": True, "icm_on_mpu": True}


def test_two_imus_stream_independently():
    """Trunk and head on one bus: each FIFO delivers its own wearer signal."""
    acc, gyr = wearer_signal(30, seed=9)
    head_acc, head_gyr = acc[:, ::-1].copy(), -gyr
    # Record: trunk acc, head acc, trunk gyr, head gyr (12 float32).
    stdin = np.concatenate([acc, head_acc, gyr, head_gyr], axis=1).astype("<f4").tobytes()
    res = mpy(
        "",
        """
        bus = fake_i2c.FakeI2C()
        t = bus.add(0x68, FAKE["icm42688"]())
        hd = bus.add(0x69, FAKE["mpu6050"]())
        imus = imu_detect.find_imus(bus)
        for k in imus:
            imus[k].configure(accel_g=16, gyro_dps=2000, odr_hz=400)
        for r in fake_i2c.stdin_records(12):
            t.push(r[0:3], r[6:9])
            hd.push(r[3:6], r[9:12])
        ra, rg = h(32), h(32)
        res = {}
        for k in ("trunk", "head"):
            n = imus[k].read_fifo(ra, rg, 32)
            res[k] = [list(ra[:3 * n]), list(rg[:3 * n])]
        out(**res)
        """,
        stdin=stdin,
    )[0]
    for key, a, w in (("trunk", acc, gyr), ("head", head_acc, head_gyr)):
        np.testing.assert_array_equal(np.array(res[key][0]).reshape(-1, 3), expected_counts(a, acc_lsb_si(16)))
        np.testing.assert_array_equal(np.array(res[key][1]).reshape(-1, 3), expected_counts(w, gyr_lsb_si(2000)))


# ---- hot path and health ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_hot_path_does_not_allocate(kind):
    """read_raw, read_fifo and health() run with the heap locked (allocation would raise)."""
    acc, gyr = wearer_signal(40, seed=1)
    res = mpy(
        kind,
        """
        bus, chip, d = make("@KIND@")
        for pa, pg in samples():
            chip.push(pa, pg)
        ra, rg = h(64), h(64)
        r3, g3 = array("h", [0, 0, 0]), array("h", [0, 0, 0])
        d.health()
        micropython.heap_lock()
        try:
            d.read_raw(r3, g3)
            n = d.read_fifo(ra, rg, 64)
            hh = d.health()
            err = None
        except MemoryError as e:
            err = "allocated"
        micropython.heap_unlock()
        out(err=err, n=n if err is None else -1)
        """,
        stdin=to_stdin(acc, gyr),
    )[0]
    assert res == {"err": None, "n": 40}


def test_health_dict_has_all_counters():
    res = mpy(
        "mpu6050",
        """
        bus, chip, d = make("@KIND@")
        h1 = d.health()
        bus.fail_next(1)
        d.read_one(f3(), f3())
        h2 = d.health()
        out(same=h1 is h2, h=h2)
        """,
    )[0]
    assert res["same"] is True
    assert res["h"] == {
        "chip": "MPU-6050",
        "addr": 0x68,
        "i2c_errors": 1,
        "retries": 1,
        "fifo_overflows": 0,
        "saturations": 0,
        "id_mismatch": 0,
    }


def test_through_machine_shims_timer_driven_fifo_drain():
    """machine.I2C (shim) wraps the fake bus; a machine.Timer (shim, stepped by hand) drains
    the FIFO every 20 ms while samples arrive at 500 Hz: nothing lost, nothing repeated."""
    n = 100  # 200 ms at 500 Hz
    acc, gyr = wearer_signal(n, seed=12)
    res = mpy(
        "",
        """
        import machine
        bus = fake_i2c.FakeI2C()
        chip = bus.add(0x68, FAKE["icm42688"]())
        machine.I2C.attach(0, bus)
        i2c = machine.I2C(0, scl=machine.Pin(9), sda=machine.Pin(8), freq=400000)
        imus = imu_detect.find_imus(i2c)
        d = imus["trunk"]
        d.configure(accel_g=16, gyro_dps=2000, odr_hz=400)
        ra, rg = h(32), h(32)
        got = []
        gaps = []
        def drain(t):
            k = d.read_fifo(ra, rg, 32)
            got.extend(ra[:3 * k])
            gaps.append(d.gap)
        tim = machine.Timer(0)
        tim.init(mode=machine.Timer.PERIODIC, period=20, callback=drain)
        src = samples()
        for i in range(%d):
            pa, pg = next(src)
            chip.push(pa, pg)
            machine.Timer.step(2)  # one sample period
        tim.deinit()
        out(odr=d.odr_hz, head=imus["head"], acc=got, calls=len(gaps), gaps=gaps,
            untouched=machine.I2C(1).scan())
        """
        % n,
        stdin=to_stdin(acc, gyr),
    )[0]
    assert res["odr"] == 500.0 and res["head"] is None
    assert res["calls"] == 10 and res["gaps"] == [True] + [False] * 9
    np.testing.assert_array_equal(np.array(res["acc"]).reshape(-1, 3), expected_counts(acc, acc_lsb_si(16)))
    assert res["untouched"] == []  # another bus id has no devices
