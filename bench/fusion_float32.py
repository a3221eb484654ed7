"""Single-precision (float32) check of the firmware fusion, as the ESP32 port computes it.

The ESP32 MicroPython port uses 32-bit floats, the unix port 64-bit ones. In
``firmware/fusion.py`` the per-sample update is fixed point (viper, 32-bit integers), so floats
enter only at four places:

1. the inputs: ``update()`` stores its six arguments into an ``array('f')`` (float32 on both
   ports) before converting them to fixed point from their IEEE-754 bits;
2. the outputs: ``q`` and ``bias`` are written as float32 bits on both ports;
3. the coefficients, computed once in Python by ``Fusion._set_coeffs`` (``math.sqrt``,
   divisions by ``rate_hz`` and the time constants, ...);
4. the alignment on the very first sample (``Fusion._align``: normalisation, square root).

(1) and (2) are identical on both ports (the bench feeds float32-rounded samples). (3) and (4)
are re-executed here in CPython from the firmware's own source text with every float
operation rounded to float32 (:class:`F32`: each ``+ - * / **`` result, every float literal and
``float()``/``math.sqrt``/``math.radians`` result is rounded to the nearest float32), which is
what the ESP32 computes (up to the last bit of ``math`` library functions). The resulting
integer coefficients and aligned state are then injected into the unmodified firmware under
the real MicroPython, which runs the whole trial; the inclination RMSE of that run is the
ESP32's. The same injection with the float64 values must reproduce the normal run bit for bit
(a check of the injection itself).

Not covered: ``Fusion.set_rate_hz`` (rescales states in float once per rate switch; the
relative error of a float32 rescale is < 1e-7 of the state).

Used by ``bench/firmware_accuracy.py`` (column "float32"); runnable alone:
``python -m bench.fusion_float32 [--data DIR]`` prints the coefficient differences.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def f32(v: float) -> float:
    """Round a Python float to the nearest float32 (returned as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", float(v)))[0]


class F32(float):
    """A float whose every arithmetic result is rounded to float32 (MicroPython on the ESP32).

    For + - * / the double result of two float32 operands rounded to float32 is the correctly
    rounded float32 result (IEEE-754 double has more than 2 * 24 + 2 significant bits).
    """

    def __new__(cls, v=0.0):
        return float.__new__(cls, f32(float(v)))

    def _op(self, o, fn):
        if isinstance(o, (int, float)):
            return F32(fn(float(self), float(F32(o))))
        return NotImplemented

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._op(o, lambda a, b: b + a)

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._op(o, lambda a, b: b - a)

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._op(o, lambda a, b: b * a)

    def __truediv__(self, o):
        return self._op(o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._op(o, lambda a, b: b / a)

    def __pow__(self, o):
        return self._op(o, lambda a, b: a**b)

    def __rpow__(self, o):
        return self._op(o, lambda a, b: b**a)

    def __neg__(self):
        return F32(-float(self))

    def __pos__(self):
        return self

    def __abs__(self):
        return F32(abs(float(self)))


class _Math32:
    """The few ``math`` functions fusion.py's Python code uses, with float32 results."""

    pi = F32(math.pi)

    @staticmethod
    def sqrt(x):
        return F32(math.sqrt(float(F32(x))))  # correctly rounded via double

    @staticmethod
    def radians(x):
        return F32(x) * F32(math.pi / 180.0)

    @staticmethod
    def degrees(x):
        return F32(x) * F32(180.0 / math.pi)


_FLOAT_LIT = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.])")


def firmware_namespace(float32: bool) -> dict:
    """fusion.py executed in CPython (viper kernels as plain Python on int lists).

    With ``float32`` the Python-level float arithmetic is rounded to float32 (see module doc).
    """
    from bench.firmware_accuracy import firmware_source_for_cpython

    src = firmware_source_for_cpython()
    ns: dict = {"const": lambda x: x, "__name__": "fusion_f32" if float32 else "fusion_f64"}
    ns["ptr32"] = lambda a: a
    ns["ptr8"] = lambda b: b
    if float32:
        head, sep, tail = src.partition("# ---- viper kernels")
        head = re.sub(r"^import math\n", "", head, flags=re.M)
        # float literals -> F32(...) outside the viper kernels (they use integers only)
        head = _FLOAT_LIT.sub(lambda m: "F32(%s)" % m.group(1), head)
        src = head + sep + tail
        ns["F32"] = F32
        ns["float"] = F32
        ns["math"] = _Math32
    exec(compile(src, ns["__name__"], "exec"), ns)  # noqa: S102 - our own firmware source
    return ns


def _fusion(ns: dict, rate_hz: float, overrides: dict, float32: bool):
    conv = F32 if float32 else float
    kw = {k: conv(v) for k, v in overrides.items()}
    settings = ns["FusionSettings"](rate_hz=conv(rate_hz), **kw)
    fus = ns["Fusion"].__new__(ns["Fusion"])
    fus.settings = settings
    fus._c = [0] * ns["_NCOEF"]
    fus._s = [0] * ns["_NSTATE"]
    fus.q = [0.0] * 4
    fus.bias = [0.0] * 3
    fus.rest = False
    ns["Fusion"]._set_coeffs(fus)
    ns["Fusion"].reset(fus)
    return fus


def init_words(rate_hz: float, sample0: np.ndarray, overrides: dict | None, float32: bool) -> tuple[list, list]:
    """(coefficients, state after aligning on ``sample0``) as the firmware's int32 words.

    ``sample0``: the first sample (gx gy gz ax ay az) as float32.
    """
    ns = firmware_namespace(float32)
    fus = _fusion(ns, rate_hz, overrides or {}, float32)
    io = [struct.unpack("<i", struct.pack("<f", float(v)))[0] for v in np.asarray(sample0, dtype="<f4")]
    ns["_inputs"](fus._s, fus._c, io)
    ns["Fusion"]._align(fus)
    return list(fus._c), list(fus._s)


# MicroPython driver with injected coefficients and alignment (see run_injected)
_INJECT = """
COEF = %(coef)r
ST = %(state)r
c = f._c
for i in range(len(COEF)):
    c[i] = COEF[i]
def _al():
    s = f._s
    for i in range(len(ST)):
        s[i] = ST[i]
f._align = _al
"""


def run_injected(trial: dict, coef: list, state: list, overrides: dict | None = None) -> np.ndarray:
    """Run the firmware under MicroPython with the given coefficient words and aligned state."""
    from bench.firmware_accuracy import run_firmware

    return run_firmware(trial, overrides, inject=_INJECT % {"coef": coef, "state": state})


def check_trial(trial: dict, q_f64: np.ndarray, overrides: dict | None = None) -> dict:
    """float32 run of one trial; returns figures for the bench (see module doc)."""
    from bench.firmware_accuracy import inclination_rmse_deg, samples_f32

    x = samples_f32(trial)
    c64, s64 = init_words(trial["rate"], x[0], overrides, float32=False)
    c32, s32 = init_words(trial["rate"], x[0], overrides, float32=True)
    q_inj64 = run_injected(trial, c64, s64, overrides)
    q32 = run_injected(trial, c32, s32, overrides)
    e64 = inclination_rmse_deg(q_f64, trial)
    e32 = inclination_rmse_deg(q32, trial)
    return {
        "coef_words_differing": int(sum(a != b for a, b in zip(c32, c64))),
        "coef_max_rel_diff": float(max((abs(a - b) / max(abs(b), 1) for a, b in zip(c32, c64)), default=0.0)),
        "align_words_differing": int(sum(a != b for a, b in zip(s32, s64))),
        "injection_bit_exact": bool(np.array_equal(q_inj64.view("<i4"), q_f64.view("<i4"))),
        "float32_incl_rmse_deg": round(e32, 4),
        "rmse_diff_deg": float("%.2g" % (e32 - e64)),
        "max_quat_diff": float(np.max(np.abs(q32.astype(float) - q_f64.astype(float)))),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bench.firmware_accuracy import DEFAULT_DATA, load_trial, samples_f32

    ap = argparse.ArgumentParser(description="float32 vs float64 coefficients of firmware/fusion.py")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    ns32 = firmware_namespace(True)
    names = {v: k for k, v in ns32.items() if k.startswith("_C_") and isinstance(v, int)}
    for path in sorted(Path(args.data).glob("*.mat")):
        trial = load_trial(path)
        x = samples_f32(trial)
        c64, _ = init_words(trial["rate"], x[0], None, False)
        c32, _ = init_words(trial["rate"], x[0], None, True)
        diffs = ["%s %d->%d" % (names.get(i, i), a, b) for i, (a, b) in enumerate(zip(c64, c32)) if a != b]
        print("%s: %d coefficient words differ%s" % (path.stem, len(diffs), (": " + ", ".join(diffs)) if diffs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
