"""Inclination accuracy of the firmware fusion (firmware/fusion.py) on BROAD trials.

For each BROAD trial ``.mat`` in ``--data`` the script

1. runs ``firmware/fusion.py`` under the real MicroPython unix port: the samples are piped
   in as float32 on stdin and the quaternions come back as float32 on stdout;
2. runs the ``vqf`` package's real-time 6D filter (``vqf.VQF(Ts).updateBatch``, no
   magnetometer, its default parameters) on the same samples;
3. computes the inclination RMSE (deg) over the samples flagged ``movement`` (and with a valid
   optical reference), where the inclination error is the angle between the estimated and the
   true vertical axis expressed in the sensor frame (BROAD paper: D. Laidig et al., Data 6(7):72,
   2021; the unknown heading offset between the reference frames does not enter it);
4. checks the ESP32 arithmetic: the firmware update does no float math (fixed point on 32-bit
   words, see the module docstring of firmware/fusion.py), so the only way the ESP32 could differ
   from the 64-bit unix port is an intermediate that does not fit 32 bits. The viper kernels are
   re-executed in CPython as plain Python, over a window of the trial around the fastest
   rotation / largest shock, with every integer operation checked to stay within int32; the
   quaternions must be bit-identical to MicroPython's;
5. checks single precision (the ESP32 port's floats are float32, the unix port's float64):
   floats enter only in the one-time coefficient computation and the first-sample alignment.
   ``bench/fusion_float32.py`` recomputes both from the firmware source with every float
   operation rounded to float32, injects the resulting words into the unchanged firmware under
   MicroPython and re-runs the whole trial; the table shows that run's RMSE ("float32") and its
   difference from the float64 run; the float32 ratio must meet the target too.

Prints a table; ``--json`` prints one JSON object instead. Target: firmware/vqf <= 1.0 on
every trial. Exit status 1 when a target fails.

Usage: python -m bench.firmware_accuracy [--data DIR] [--json] [--audit-samples N] [--no-float32]
       [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fusion_float32 import check_trial as check_float32  # noqa: E402
from tests.mpy import run_mpy  # noqa: E402  (the project's MicroPython harness)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "broad"
TARGET_RATIO = 1.0

# MicroPython driver: float32 samples (gx gy gz ax ay az) on stdin -> float32 q on stdout.
_DRIVER = """
import sys
from array import array
from fusion import Fusion, FusionSettings
f = Fusion(FusionSettings(rate_hz=%(rate)r%(extra)s))
%(inject)s
chunks = []
while True:
    d = sys.stdin.buffer.read(65536)
    if not d:
        break
    chunks.append(d)
inb = array('f', b''.join(chunks))
chunks = None
n = len(inb) // 6
outb = array('f', bytes(16 * n))
upd = f.update
q = f.q
o = 0
p = 0
for j in range(n):
    upd(inb[o], inb[o + 1], inb[o + 2], inb[o + 3], inb[o + 4], inb[o + 5])
    outb[p] = q[0]
    outb[p + 1] = q[1]
    outb[p + 2] = q[2]
    outb[p + 3] = q[3]
    o += 6
    p += 4
sys.stdout.buffer.write(outb)
"""


def load_trial(path: Path) -> dict:
    """Load a BROAD trial: gyr (rad/s), acc (m/s^2), reference quat (w,x,y,z), movement, rate."""
    from scipy.io import loadmat

    d = loadmat(str(path))
    return {
        "gyr": np.ascontiguousarray(d["imu_gyr"], dtype=float),
        "acc": np.ascontiguousarray(d["imu_acc"], dtype=float),
        "quat": np.asarray(d["opt_quat"], dtype=float),
        "movement": np.asarray(d["movement"]).ravel().astype(bool),
        "rate": float(np.asarray(d["sampling_rate"]).ravel()[0]),
    }


def vertical_in_sensor(q: np.ndarray) -> np.ndarray:
    """World z axis expressed in the sensor frame for sensor-to-world quaternions (N, 4)."""
    w, x, y, z = q.T
    v = np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z], axis=1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def inclination_rmse_deg(q_est: np.ndarray, trial: dict) -> float:
    """RMSE (deg) of the angle between estimated and true vertical, movement samples only."""
    a = vertical_in_sensor(np.asarray(q_est, dtype=float))
    b = vertical_in_sensor(trial["quat"])
    mask = trial["movement"] & np.isfinite(b).all(axis=1) & np.isfinite(a).all(axis=1)
    err = np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0)))[mask]
    return float(np.sqrt(np.mean(err**2)))


def samples_f32(trial: dict) -> np.ndarray:
    """(N, 6) float32 samples gx gy gz ax ay az, as the firmware receives them."""
    return np.hstack([trial["gyr"], trial["acc"]]).astype("<f4")


def run_firmware(trial: dict, overrides: dict | None = None, inject: str = "") -> np.ndarray:
    """Run firmware/fusion.py under MicroPython on the trial; returns (N, 4) float32 quats.

    ``overrides``: FusionSettings fields to change from their defaults (name -> float).
    ``inject``: MicroPython code run after ``f = Fusion(...)`` (used by the float32 check).
    """
    x = samples_f32(trial)
    n = len(x)
    extra = "".join(", %s=%r" % (k, float(v)) for k, v in sorted((overrides or {}).items()))
    code = _DRIVER % {"rate": trial["rate"], "extra": extra, "inject": inject}
    out = run_mpy(code, stdin=x.tobytes(), timeout=1800.0)
    q = np.frombuffer(out, dtype="<f4")
    if q.size != 4 * n:
        raise RuntimeError("firmware returned %d floats, expected %d" % (q.size, 4 * n))
    return q.reshape(n, 4)


def run_vqf(trial: dict) -> np.ndarray:
    """Reference: the vqf package's real-time VQF, 6D (no magnetometer), default parameters."""
    import vqf

    f = vqf.VQF(1.0 / trial["rate"])
    return f.updateBatch(trial["gyr"], trial["acc"])["quat6D"]


# ------------------------------------------------------------------ int32 audit (CPython)
class Int32Overflow(ArithmeticError):
    """An integer operation in the firmware kernels left the int32 range."""


_LO, _HI = -(1 << 31), (1 << 31) - 1


def _chk(v: int) -> "I32":
    if v < _LO or v > _HI:
        raise Int32Overflow(v)
    return I32(v)


class I32(int):
    """int whose arithmetic results must stay within int32 (what the ESP32 computes)."""

    def __add__(self, o):
        return _chk(int(self) + int(o))

    __radd__ = __add__

    def __sub__(self, o):
        return _chk(int(self) - int(o))

    def __rsub__(self, o):
        return _chk(int(o) - int(self))

    def __mul__(self, o):
        return _chk(int(self) * int(o))

    __rmul__ = __mul__

    def __lshift__(self, o):
        if not 0 <= int(o) < 32:
            raise Int32Overflow("shift by %d" % int(o))
        return _chk(int(self) << int(o))

    def __rlshift__(self, o):
        return _chk(int(o) << int(self))

    def __floordiv__(self, o):
        return _chk(int(self) // int(o))

    def __rfloordiv__(self, o):
        return _chk(int(o) // int(self))

    def __rshift__(self, o):
        if not 0 <= int(o) < 32:
            raise Int32Overflow("shift by %d" % int(o))
        return I32(int(self) >> int(o))

    def __rrshift__(self, o):
        return I32(int(o) >> int(self))

    def __and__(self, o):
        return I32(int(self) & int(o))

    __rand__ = __and__

    def __or__(self, o):
        return _chk(int(self) | int(o))

    __ror__ = __or__

    def __xor__(self, o):
        return _chk(int(self) ^ int(o))

    __rxor__ = __xor__

    def __neg__(self):
        return _chk(-int(self))


class _Words:
    """A 32-bit word array as viper's ptr32 sees it on the ESP32: signed int32 loads."""

    def __init__(self, data: list[int]):
        self.d = data

    def __getitem__(self, i):
        return I32(self.d[int(i)])

    def __setitem__(self, i, v):
        v = int(v) & 0xFFFFFFFF  # a 32-bit store keeps the low word
        self.d[int(i)] = v - (1 << 32) if v & 0x80000000 else v


class _Bytes:
    def __init__(self, data: bytes):
        self.d = data

    def __getitem__(self, i):
        return I32(self.d[int(i)])


def firmware_source_for_cpython() -> str:
    """firmware/fusion.py's source text made executable by CPython (viper kernels as Python).

    Drops the viper decorators and the micropython imports, and writes the two 32-bit idioms
    as what they compute on a 32-bit machine (see below).
    """
    src = (ROOT / "firmware" / "fusion.py").read_text()
    src = re.sub(r"^[ \t]*@micropython\.viper\n", "", src, flags=re.M)
    # Two idioms rely on 32-bit wrap-around by design; on a 32-bit machine they are:
    # sign extension of a loaded word, (x ^ 0x80000000) - 0x80000000 == x, and the sign bit
    # of a float32, sign << 31 == sign * -2**31. Write them as such so the checker only flags
    # genuine overflows.
    src, n_sx = re.subn(r"\(([A-Z]\[[^\[\]]*\]) \^ SG\) - SG", r"\1", src)
    src = src.replace("(sign << 31)", "(sign * -2147483648)")
    if n_sx < 20 or re.search(r"\^ SG\) - SG", src.split('"""', 2)[2]):
        raise RuntimeError("audit transform out of date with firmware/fusion.py")
    src = re.sub(r"from micropython import const\n", "", src)
    src = re.sub(r"^import micropython\n", "", src, flags=re.M)
    return src


def _audit_namespace() -> dict:
    """Execute firmware/fusion.py's viper kernels as plain Python (int32-checked) in CPython.

    ``ptr32``/``ptr8`` become the checked word views above. This re-executes the exact source
    text (:func:`firmware_source_for_cpython`), it does not import it.
    """
    src = firmware_source_for_cpython()
    ns: dict = {"const": lambda x: x, "__name__": "fusion_audit"}
    ns["ptr32"] = lambda a: a if isinstance(a, _Words) else _Words(a)
    ns["ptr8"] = lambda b: _Bytes(b)
    ns["int"] = int
    exec(compile(src, "fusion_audit", "exec"), ns)  # noqa: S102 - audit of our own source
    return ns


def audit_int32(trial: dict, q_mpy: np.ndarray, n: int) -> dict:
    """Re-run n samples (window around the fastest rotation) with int32-checked arithmetic.

    The window starts from a fresh filter, so MicroPython is re-run on the same window too.
    Returns {"samples", "start", "overflow", "bit_exact", "max_abs_diff"}.
    """
    import struct

    x = samples_f32(trial)
    gyr = np.linalg.norm(trial["gyr"], axis=1)
    acc = np.abs(np.linalg.norm(trial["acc"], axis=1) - 9.81)
    stress = gyr / gyr.max() + acc / max(acc.max(), 1e-9)  # fastest rotation / largest shock
    start = int(max(0, min(len(x) - n, int(np.argmax(stress)) - n // 2)))
    xs = x[start : start + n]
    # MicroPython on the window
    sub = dict(trial)
    sub["gyr"] = trial["gyr"][start : start + n]
    sub["acc"] = trial["acc"][start : start + n]
    q_ref = run_firmware(sub)
    ns = _audit_namespace()
    settings = ns["FusionSettings"](rate_hz=trial["rate"])
    # Build coefficient and state arrays with the firmware's own Python-side code, but in plain
    # lists (CPython has no array('f') float32 store semantics we need: we do them by hand).
    fus = ns["Fusion"].__new__(ns["Fusion"])
    fus.settings = settings
    fus._c = [0] * ns["_NCOEF"]
    fus._s = [0] * ns["_NSTATE"]
    ns["Fusion"]._set_coeffs(fus)
    fus.q = [0.0] * 4
    fus.bias = [0.0] * 3
    ns["Fusion"].reset(fus)
    S = _Words(fus._s)
    C = _Words(fus._c)
    io = _Words([0] * 6)
    qw = _Words([0] * 4)
    bw = _Words([0] * 3)
    out = np.zeros((n, 4), dtype="<f4")
    overflow = None
    try:
        for i in range(n):
            for j in range(6):
                io[j] = struct.unpack("<i", struct.pack("<f", float(xs[i, j])))[0]
            ns["_inputs"](S, C, io)
            if fus._s[ns["_INIT"]] == 0:
                ns["Fusion"]._align(fus)
            ns["_gyro_step"](S, C)
            ns["_mat_from_quat"](S, C, ns["_QG"])
            ns["_mat_vec"](S, C, ns["_A"], ns["_AI"])
            ns["_lowpass"](S, C, ns["_AI"], ns["_ALP"], 3, ns["_C_ACC"])
            ns["_mat_from_quat"](S, C, ns["_QA"])
            ns["_mat_vec"](S, C, ns["_ALP"], ns["_AE"])
            ns["_incl_correction"](S, C)
            ns["_quat_mul"](S, C, ns["_Q"], ns["_QA"], ns["_QG"])
            ns["_mat_from_quat"](S, C, ns["_Q"])
            ns["_rest_and_bias"](S, C)
            ns["_outputs"](S, C, qw, bw)
            out[i] = np.array(qw.d, dtype="<i4").view("<f4")
    except Int32Overflow as e:  # report, don't crash the benchmark
        overflow = "sample %d: %s" % (i, e)
    diff = float(np.max(np.abs(out.astype(float) - q_ref.astype(float)))) if overflow is None else float("nan")
    return {
        "samples": n,
        "start": start,
        "overflow": overflow,
        "bit_exact": overflow is None and bool(np.array_equal(out.view("<i4"), q_ref.view("<i4"))),
        "max_abs_diff": diff,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of BROAD .mat trials")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--audit-samples",
        type=int,
        default=1500,
        help="samples per trial re-run with int32-checked arithmetic (0 = skip)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a FusionSettings default (for experiments; the table then says so)",
    )
    ap.add_argument(
        "--no-float32",
        action="store_true",
        help="skip the float32 (ESP32 single precision) re-run (bench/fusion_float32.py)",
    )
    args = ap.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        if not re.fullmatch(r"[a-z_0-9]+", k) or not v:
            ap.error("--set wants NAME=VALUE, got %r" % kv)
        overrides[k] = float(v)
    files = sorted(Path(args.data).glob("*.mat"))
    if not files:
        print("no .mat trials in %s" % args.data, file=sys.stderr)
        return 2
    rows = []
    for path in files:
        trial = load_trial(path)
        t0 = time.time()
        q_fw = run_firmware(trial, overrides)
        t_fw = time.time() - t0
        e_fw = inclination_rmse_deg(q_fw, trial)
        e_vqf = inclination_rmse_deg(run_vqf(trial), trial)
        row = {
            "trial": path.stem,
            "samples": len(trial["gyr"]),
            "rate_hz": trial["rate"],
            "firmware_incl_rmse_deg": round(e_fw, 4),
            "vqf_incl_rmse_deg": round(e_vqf, 4),
            "ratio": round(e_fw / e_vqf, 4),
            "target_ratio": TARGET_RATIO,
            "pass": e_fw / e_vqf <= TARGET_RATIO,
            "mpy_seconds": round(t_fw, 1),
        }
        if args.audit_samples > 0:
            row["int32_audit"] = audit_int32(trial, q_fw, args.audit_samples)
            row["pass"] = row["pass"] and row["int32_audit"]["bit_exact"]
        if not args.no_float32:
            f32 = check_float32(trial, q_fw, overrides)
            f32["ratio"] = round(f32["float32_incl_rmse_deg"] / e_vqf, 4)
            row["float32"] = f32
            row["pass"] = row["pass"] and f32["ratio"] <= TARGET_RATIO and f32["injection_bit_exact"]
        rows.append(row)
        if not args.json:
            print("done %s" % path.stem, file=sys.stderr)
    ok = all(r["pass"] for r in rows)
    result = {
        "benchmark": "firmware_accuracy",
        "metric": "inclination RMSE over movement samples, deg",
        "reference": "vqf %s VQF real-time 6D, default parameters" % _vqf_version(),
        "firmware": "firmware/fusion.py under MicroPython unix (%s)" % _mpy_version(),
        "target": "firmware/vqf <= %.1f on every trial, also in float32; int32 audit bit-exact" % TARGET_RATIO,
        "settings_overrides": overrides,
        "trials": rows,
        "mean_ratio": round(float(np.mean([r["ratio"] for r in rows])), 4),
        "pass": ok,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(_table(result))
    return 0 if ok else 1


def _vqf_version() -> str:
    try:
        from importlib.metadata import version

        return version("vqf")
    except Exception:  # pragma: no cover
        return "?"


def _mpy_version() -> str:
    out = run_mpy("import sys; print(sys.implementation.name, '%d.%d.%d' % sys.implementation.version[:3])")
    return out.decode().strip()


def _table(res: dict) -> str:
    lines = [
        "Inclination RMSE on movement samples (deg); firmware under %s; reference %s"
        % (res["firmware"].split("(")[-1].rstrip(")"), res["reference"]),
        "",
        "%-34s %9s %9s %7s %9s %8s  %-32s %s"
        % ("trial", "firmware", "vqf 6D", "ratio", "float32", "f32-f64", "ESP32 int32 audit", "pass"),
    ]
    for r in res["trials"]:
        a = r.get("int32_audit")
        if a is None:
            at = "skipped"
        elif a["overflow"]:
            at = "OVERFLOW " + a["overflow"]
        else:
            at = "%s on %d samples @%d" % ("bit-exact" if a["bit_exact"] else "DIFFERS", a["samples"], a["start"])
        f = r.get("float32")
        f32 = ("%9.3f %+8.0e" % (f["float32_incl_rmse_deg"], f["rmse_diff_deg"])) if f else "%9s %8s" % ("-", "-")
        lines.append(
            "%-34s %9.3f %9.3f %7.3f %s  %-32s %s"
            % (r["trial"], r["firmware_incl_rmse_deg"], r["vqf_incl_rmse_deg"], r["ratio"], f32, at, "ok" if r["pass"] else "FAIL")
        )
    lines.append("")
    lines.append(
        "float32: coefficients and first-sample alignment recomputed with float32 rounding "
        "(bench/fusion_float32.py) and injected into the same firmware; f32-f64 = RMSE difference, deg"
    )
    lines.append("mean ratio %.3f; target %s: %s" % (res["mean_ratio"], res["target"], "PASS" if res["pass"] else "FAIL"))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
