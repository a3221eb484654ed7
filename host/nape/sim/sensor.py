"""MEMS IMU error model: turn-on bias, bias drift, scale error, white noise, 16-bit ADC.

The clean specific force / angular rate at the output rate goes through, per axis::

    y = clip(quantise((1 + s) * x + b0 + b_drift(t) + n(t)))

* ``s`` — scale-factor error, one draw per axis, ~ N(0, (tol/3)^2) with the datasheet's
  ± initial tolerance read as a 3-sigma bound.
* ``b0`` — turn-on bias, ~ N(0, (tol/3)^2) likewise.
* ``b_drift`` — slow bias wander, a first-order Gauss–Markov process (standard deviation
  ``*_bias_instability``, correlation time ``bias_time_constant_s``). Neither datasheet
  specifies in-run bias instability, so these two figures are assumptions typical of
  consumer MEMS parts (a few deg/h for the ICM-42688-P class, tens of deg/h for the older
  MPU-6050); they are marked as such below.
* ``n`` — white noise whose standard deviation is ``density * sqrt(bandwidth)`` with the
  noise bandwidth taken as the Nyquist band ``rate_hz / 2`` (the sensor's digital filter is
  assumed to limit noise to the output band; :meth:`SensorModel.noise_std` gives the value).
* ``quantise`` — rounding to the 16-bit LSB of the chosen full-scale range
  (``LSB = range / 32768``; e.g. 2048 LSB/g at ±16 g, 16.4 LSB/(°/s) at ±2000 °/s), then
  ``clip`` to the two's-complement limits ``[-32768, 32767] * LSB``.

Datasheet figures (25 °C, typical):

* TDK InvenSense ICM-42688-P, DS-000347: accelerometer noise spectral density
  70 µg/√Hz (low-noise mode), gyroscope rate noise spectral density 0.0028 °/s/√Hz;
  accelerometer zero-g initial tolerance ±20 mg, gyroscope initial ZRO tolerance
  ±0.5 °/s (board level); sensitivity initial tolerance ±0.5 % (both sensors).
* TDK InvenSense MPU-6000/MPU-6050, PS-MPU-6000A-00 rev 3.4, §6.1–6.2: accelerometer
  power spectral density 400 µg/√Hz, gyroscope rate noise spectral density 0.005 °/s/√Hz;
  zero-g initial calibration tolerance ±50 mg (X, Y) / ±80 mg (Z); initial ZRO tolerance
  ±20 °/s; sensitivity tolerance ±3 % (both sensors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

G = 9.80665  # standard gravity, m/s^2


@dataclass(frozen=True)
class SensorModel:
    """Error figures of one 6-axis IMU part. Build with :meth:`icm42688`, :meth:`mpu6050`, :meth:`ideal`.

    Attributes:
        name: part name, for reports.
        acc_noise_density_ug: accelerometer white-noise density, µg/√Hz.
        gyr_noise_density_dps: gyroscope white-noise density, (°/s)/√Hz.
        acc_bias_tolerance_mg: ± initial zero-g offset per axis (x, y, z), mg (3-sigma).
        gyr_bias_tolerance_dps: ± initial zero-rate offset, °/s (3-sigma).
        acc_scale_tolerance: ± initial sensitivity error, fraction (3-sigma).
        gyr_scale_tolerance: ± initial sensitivity error, fraction (3-sigma).
        acc_bias_instability_ug: standard deviation of the in-run accelerometer bias wander, µg.
        gyr_bias_instability_dps: standard deviation of the in-run gyroscope bias wander, °/s.
        bias_time_constant_s: correlation time of the bias wander, s.
        adc_bits: ADC word length; ``0`` disables quantisation (ranges still clip).
    """

    name: str
    acc_noise_density_ug: float
    gyr_noise_density_dps: float
    acc_bias_tolerance_mg: tuple[float, float, float]
    gyr_bias_tolerance_dps: float
    acc_scale_tolerance: float
    gyr_scale_tolerance: float
    acc_bias_instability_ug: float
    gyr_bias_instability_dps: float
    bias_time_constant_s: float = 300.0
    adc_bits: int = 16

    @classmethod
    def icm42688(cls) -> SensorModel:
        """TDK InvenSense ICM-42688-P (DS-000347), low-noise mode."""
        return cls(
            name="ICM-42688-P",
            acc_noise_density_ug=70.0,  # DS-000347 Table 2: 70 µg/√Hz
            gyr_noise_density_dps=0.0028,  # DS-000347 Table 1: 0.0028 °/s/√Hz
            acc_bias_tolerance_mg=(20.0, 20.0, 20.0),  # Table 2: zero-g initial tolerance ±20 mg
            gyr_bias_tolerance_dps=0.5,  # Table 1: initial ZRO tolerance ±0.5 °/s
            acc_scale_tolerance=0.005,  # Table 2: sensitivity initial tolerance ±0.5 %
            gyr_scale_tolerance=0.005,  # Table 1: sensitivity scale factor tolerance ±0.5 %
            acc_bias_instability_ug=40.0,  # assumption (not in datasheet)
            gyr_bias_instability_dps=0.002,  # assumption (~7 °/h; not in datasheet)
        )

    @classmethod
    def mpu6050(cls) -> SensorModel:
        """TDK InvenSense MPU-6050 (PS-MPU-6000A-00 rev 3.4)."""
        return cls(
            name="MPU-6050",
            acc_noise_density_ug=400.0,  # §6.2: power spectral density 400 µg/√Hz
            gyr_noise_density_dps=0.005,  # §6.1: rate noise spectral density 0.005 °/s/√Hz
            acc_bias_tolerance_mg=(50.0, 50.0, 80.0),  # §6.2: ±50 mg X/Y, ±80 mg Z
            gyr_bias_tolerance_dps=20.0,  # §6.1: initial ZRO tolerance ±20 °/s
            acc_scale_tolerance=0.03,  # §6.2: initial calibration tolerance ±3 %
            gyr_scale_tolerance=0.03,  # §6.1: sensitivity scale factor tolerance ±3 %
            acc_bias_instability_ug=100.0,  # assumption (not in datasheet)
            gyr_bias_instability_dps=0.01,  # assumption (~36 °/h; not in datasheet)
        )

    @classmethod
    def ideal(cls) -> SensorModel:
        """No noise, bias or scale error and no quantisation; range clipping still applies."""
        return cls("ideal", 0.0, 0.0, (0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0, adc_bits=0)

    def noise_std(self, rate_hz: float) -> tuple[float, float]:
        """White-noise standard deviation at ``rate_hz`` (noise band = Nyquist).

        Returns:
            ``(acc m/s^2, gyr rad/s)`` = density × sqrt(rate_hz / 2), before quantisation.
        """
        root_bw = np.sqrt(rate_hz / 2.0)
        return (
            self.acc_noise_density_ug * 1e-6 * G * root_bw,
            np.deg2rad(self.gyr_noise_density_dps) * root_bw,
        )

    @staticmethod
    def lsb(full_scale: float, adc_bits: int = 16) -> float:
        """Size of one ADC step for a ± ``full_scale`` range (same unit as ``full_scale``)."""
        return full_scale / 2.0 ** (adc_bits - 1)


def _gauss_markov(rng: np.random.Generator, n: int, rate_hz: float, sigma: float, tau_s: float) -> np.ndarray:
    """Stationary first-order Gauss–Markov noise, (n, 3), standard deviation ``sigma``."""
    if sigma == 0.0:
        return np.zeros((n, 3))
    a = np.exp(-1.0 / (rate_hz * tau_s))
    w = rng.normal(scale=sigma * np.sqrt(1 - a * a), size=(n, 3))
    x0 = rng.normal(scale=sigma, size=(1, 3))
    y, _ = signal.lfilter([1.0], [1.0, -a], w, axis=0, zi=a * x0)
    return y


def _digitise(x: np.ndarray, full_scale: float, adc_bits: int) -> np.ndarray:
    """Quantise to the ADC step (if ``adc_bits``) and clip to the two's-complement range.

    ``x`` and ``full_scale`` share one unit (m/s^2 or rad/s); the result keeps it.
    """
    if adc_bits:
        lsb = SensorModel.lsb(full_scale, adc_bits)
        top = 2 ** (adc_bits - 1)
        return np.clip(np.round(x / lsb), -top, top - 1) * lsb
    return np.clip(x, -full_scale, full_scale)


def apply_sensor_errors(
    acc: np.ndarray,
    gyr: np.ndarray,
    model: SensorModel,
    rate_hz: float,
    acc_range_g: float,
    gyr_range_dps: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn clean signals into what the part would report.

    Args:
        acc: clean specific force, (N, 3) m/s^2, sensor frame.
        gyr: clean angular rate, (N, 3) rad/s, sensor frame.
        model: error figures of the part.
        rate_hz: output data rate, Hz.
        acc_range_g: accelerometer full-scale range, ± g.
        gyr_range_dps: gyroscope full-scale range, ± °/s.
        rng: random generator owned by this sensor (seeded by the caller).

    Returns:
        ``(acc, gyr)`` in m/s^2 and rad/s with all errors applied.
    """
    n = len(acc)
    acc_std, gyr_std = model.noise_std(rate_hz)
    acc_b0 = rng.normal(size=3) * np.asarray(model.acc_bias_tolerance_mg) * 1e-3 * G / 3
    gyr_b0 = rng.normal(size=3) * np.deg2rad(model.gyr_bias_tolerance_dps) / 3
    acc_s = rng.normal(size=3) * model.acc_scale_tolerance / 3
    gyr_s = rng.normal(size=3) * model.gyr_scale_tolerance / 3
    tau = model.bias_time_constant_s
    acc_drift = _gauss_markov(rng, n, rate_hz, model.acc_bias_instability_ug * 1e-6 * G, tau)
    gyr_drift = _gauss_markov(rng, n, rate_hz, np.deg2rad(model.gyr_bias_instability_dps), tau)
    acc_out = (1 + acc_s) * acc + acc_b0 + acc_drift + rng.normal(scale=acc_std, size=(n, 3))
    gyr_out = (1 + gyr_s) * gyr + gyr_b0 + gyr_drift + rng.normal(scale=gyr_std, size=(n, 3))
    acc_out = _digitise(acc_out, acc_range_g * G, model.adc_bits)
    gyr_out = _digitise(gyr_out, np.deg2rad(gyr_range_dps), model.adc_bits)
    return acc_out, gyr_out
