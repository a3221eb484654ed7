"""Smooth time profiles and seeded random processes the wearer's motion is built from.

* Posture changes use the minimum-jerk ramp ``s(u) = 10u^3 - 15u^4 + 6u^5`` (Flash & Hogan
  1985, J Neurosci 5:1688), whose velocity and acceleration are zero at both ends, so
  positions stay twice differentiable and accelerations continuous.
* Transient bumps (trunk lean while standing up) use ``64 u^3 (1-u)^3``, also C2 at its ends.
* Vehicle acceleration pulses are raised-cosine trapezoids (jerk-limited braking / pulling
  away) or a Hann pulse (the short seat-back push of a rear impact); potholes are a Gaussian
  dip of the seat, whose second derivative is a "Mexican hat" with an upward peak of
  exactly ``depth / sigma^2`` and two downward side lobes (the drop into the hole).
* Random processes (sway, head micro-movements, road vibration) are Gaussian processes
  drawn as sums of sinusoids on a frequency grid fixed by the run length
  (:class:`NoiseBank`), so the same seed gives the same motion at every output rate.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft


def min_jerk(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk progress 0 -> 1 for ``u`` in [0, 1] (clipped outside)."""
    u = np.clip(u, 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u * u)


def bump(u: np.ndarray) -> np.ndarray:
    """Smooth bump 0 -> 1 (at u = 0.5) -> 0 for ``u`` in [0, 1], zero outside."""
    u = np.clip(u, 0.0, 1.0)
    return 64.0 * u**3 * (1 - u) ** 3


def raised_cosine_step(t: np.ndarray, t0: float, rise_s: float) -> np.ndarray:
    """0 before ``t0``, 1 after ``t0 + rise_s``, half-cosine in between (C1)."""
    if rise_s <= 0:
        return (t >= t0).astype(float)
    u = np.clip((t - t0) / rise_s, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def trapezoid_pulse(t: np.ndarray, t0: float, rise_s: float, hold_s: float) -> np.ndarray:
    """Unit plateau pulse with raised-cosine edges: rise, hold, fall (fall = rise).

    Its integral is ``rise_s + hold_s``.
    """
    up = raised_cosine_step(t, t0, rise_s)
    down = raised_cosine_step(t, t0 + rise_s + hold_s, rise_s)
    return up - down


def hann_pulse(t: np.ndarray, t0: float, width_s: float) -> np.ndarray:
    """Unit-peak Hann pulse starting at ``t0`` lasting ``width_s``; integral ``width_s / 2``."""
    u = (t - t0) / width_s
    inside = (u >= 0) & (u <= 1)
    return np.where(inside, 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(u, 0, 1)), 0.0)


def gaussian_dip(t: np.ndarray, t_mid: float, sigma_s: float, depth_m: float) -> np.ndarray:
    """Seat displacement ``-depth * exp(-(t-t_mid)^2 / 2 sigma^2)``, m; peak upward acc = depth/sigma^2."""
    return -depth_m * np.exp(-0.5 * ((t - t_mid) / sigma_s) ** 2)


class NoiseBank:
    """Seeded Gaussian random processes as sums of sinusoids on a fixed frequency grid.

    A process is ``x(t) = sum_k a_k cos(2 pi f_k (t - t0)) + b_k sin(2 pi f_k (t - t0))`` with
    ``f_k = k / span_s`` up to ``f_max``, ``a_k, b_k ~ N(0, shape(f_k)^2)``, rescaled so that the
    RMS of its ``deriv``-th derivative equals ``rms``. It is evaluated on any uniform grid
    starting at ``t0`` (spanning ``span_s`` in ``n`` samples) with an inverse real FFT, which is band-limited (smooth) interpolation,
    so the same seed gives the same continuous signal at every sample rate.
    """

    def __init__(self, rng: np.random.Generator, span_s: float, n: int):
        self.rng = rng
        self.span_s = span_s
        self.n = n  # samples of the evaluation grid covering [t0, t0 + span_s)

    def process(self, shape, rms: float, f_max: float, deriv: int = 0) -> np.ndarray:
        """Draw one process and return its (n,) samples.

        Args:
            shape: callable, amplitude gain at frequencies (Hz, array).
            rms: target RMS of the ``deriv``-th time derivative.
            f_max: highest frequency drawn, Hz (kept below the grid's Nyquist frequency).
            deriv: 0 for the signal itself, 2 to set the RMS of its second derivative.
        """
        return self.mix([(shape, rms, f_max)], deriv)

    def mix(self, parts, deriv: int = 0) -> np.ndarray:
        """Sum of independent processes ``[(shape, rms, f_max), ...]`` in one inverse FFT."""
        half = self.n // 2
        spec = np.zeros(half + 1, dtype=complex)
        for shape, rms, f_max in parts:
            k_max = int(f_max * self.span_s)
            k = np.arange(1, k_max + 1)
            f = k / self.span_s
            coef = self.rng.normal(size=(2, k_max)) * shape(f)
            keep = k < half
            power = np.sum(coef[:, keep] ** 2 * (2 * np.pi * f[keep]) ** (2 * deriv)) / 2
            coef *= rms / np.sqrt(power) if power > 0 else 0.0
            spec[k[keep]] += (self.n / 2) * (coef[0, keep] - 1j * coef[1, keep])
        return np.asarray(sp_fft.irfft(spec, self.n))


def lowpass_shape(fc_hz: float, order: int = 2):
    """Butterworth-like amplitude response ``1 / sqrt(1 + (f/fc)^(2 order))``."""
    return lambda f: 1.0 / np.sqrt(1.0 + (f / fc_hz) ** (2 * order))


def road_displacement_shape(f_lo_hz: float = 1.0, f_hi_hz: float = 20.0):
    """Displacement spectrum whose *acceleration* is band-limited to [f_lo, f_hi].

    Acceleration amplitude: 4th-order high-pass at ``f_lo`` times 4th-order low-pass at
    ``f_hi``; displacement = acceleration / (2 pi f)^2 (so low frequencies do not drift).
    """

    def shape(f):
        fs = np.maximum(f, 1e-6)
        hp = (fs / f_lo_hz) ** 4 / np.sqrt(1.0 + (fs / f_lo_hz) ** 8)
        lp = 1.0 / np.sqrt(1.0 + (fs / f_hi_hz) ** 8)
        return hp * lp / (2 * np.pi * fs) ** 2

    return shape
