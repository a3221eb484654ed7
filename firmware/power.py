"""Power-saver policy: a small state machine, MicroPython.

Inputs, once per loop or on any BLE event: ``update(now_ms, central_connected,
wearer_still)``. ``now_ms`` is ``time.ticks_ms()`` (wrapping; compared with
``time.ticks_diff``). Outputs are attributes the sampling loop and the BLE module apply:

- ``mode``: ``"active"`` or ``"saver"``
- ``sample_rate_hz``: fused sample rate the loop should run at
- ``raw_odr_hz``: IMU output data rate (jolt screening needs >= 200 Hz: 500 Hz active,
  ``SAVER_RAW_ODR_HZ`` = 200 Hz in saver, so jolt windows are kept offline too)
- ``adv_interval_us``: advertising interval to use whenever advertising (in saver with
  light sleep: the interval inside the advertising windows)
- ``sleep``: True when the saver light-sleeps between FIFO batches (``sleep_ms``)
- ``cpu_freq_hz``: value for ``machine.freq()``
- ``head_low_power``: always False: the head IMU keeps 6-axis fusion in saver (an
  accelerometer-only head mode is not implemented; hardware/POWER.md budgets for that)

Rules (settings in ``config.py``, budget in ``hardware/POWER.md``):

1. A connected central always means ``active`` (full stream rate, fast advertising
   kept for reconnection), and the saver is left at once when a central connects.
2. Without a central for ``SAVER_AFTER_S`` (counted from boot or from the moment the
   last central left) the policy enters ``saver`` (offline logging): ``SAVER_RATE_HZ``
   fused (50 Hz) from ``SAVER_RAW_ODR_HZ`` raw (200 Hz, jolt screening on), the saver CPU
   clock (``machine.freq``: ``SAVER_CPU_FREQ_HZ``, or ``OFFLINE_CPU_FREQ_HZ`` with light
   sleep: there the fastest clock costs least). Posture alerts keep working from these samples;
   ``main.Device`` applies the rates to the sampler and restores the full rates when a
   central connects.
5. Light sleep (``SLEEP_ENABLED``; ``sleep_ms``): in saver, with no central connected
   and no motor pulse playing, the board light-sleeps (``machine.lightsleep``) between
   FIFO batches, at most ``fifo_wake_ms`` (the smallest IMU FIFO at most
   ``SLEEP_FIFO_FILL_PCT`` full) at a time. Stock MicroPython's forced light sleep stops
   the BLE controller, so advertising is duty-cycled: every ``OFFLINE_ADV_EVERY_S``
   (counted from entering saver, the first window at once) the board stays awake for
   ``OFFLINE_ADV_WINDOW_MS`` and advertises every ``OFFLINE_ADV_INTERVAL_US``
   (``adv_window`` True); a scanning central connects within ``OFFLINE_ADV_EVERY_S``.
3. In ``saver``, once the wearer has been still for ``SAVER_STILL_AFTER_S`` the rate
   drops to ``SAVER_STILL_RATE_HZ``; any motion restores ``SAVER_RATE_HZ`` at once.
   Stillness has no effect while ``active``.
4. ``POWER_SAVER_ENABLED = 0`` keeps the policy ``active`` forever.
"""

import time

import config

MODE_ACTIVE = "active"
MODE_SAVER = "saver"


class PowerPolicy:
    """Power-saver state machine. All durations in seconds, times in ms ticks.

    Args:
        now_ms: current ``time.ticks_ms()``; boot counts as "no central since now".
        enabled, saver_after_s, ...: override ``config`` values (tests, bench).

    Raises:
        ValueError: a negative duration or a non-positive rate.
    """

    def __init__(
        self,
        now_ms,
        enabled=config.POWER_SAVER_ENABLED,
        saver_after_s=config.SAVER_AFTER_S,
        still_after_s=config.SAVER_STILL_AFTER_S,
        active_rate_hz=config.STREAM_RATE_HZ,
        active_raw_odr_hz=config.RAW_ODR_HZ,
        saver_rate_hz=config.SAVER_RATE_HZ,
        still_rate_hz=config.SAVER_STILL_RATE_HZ,
        active_adv_us=config.ADV_INTERVAL_US,
        saver_adv_us=config.SAVER_ADV_INTERVAL_US,
        active_cpu_hz=config.ACTIVE_CPU_FREQ_HZ,
        saver_cpu_hz=config.SAVER_CPU_FREQ_HZ,
        saver_raw_odr_hz=config.SAVER_RAW_ODR_HZ,
        sleep=config.SLEEP_ENABLED,
        adv_every_s=config.OFFLINE_ADV_EVERY_S,
        adv_window_ms=config.OFFLINE_ADV_WINDOW_MS,
        offline_adv_us=config.OFFLINE_ADV_INTERVAL_US,
        offline_cpu_hz=config.OFFLINE_CPU_FREQ_HZ,
    ):
        if saver_after_s < 0 or still_after_s < 0:
            raise ValueError("durations must be >= 0")
        for r in (active_rate_hz, active_raw_odr_hz, saver_rate_hz, still_rate_hz, saver_raw_odr_hz):
            if r <= 0:
                raise ValueError("rates must be > 0")
        if adv_every_s <= 0 or adv_window_ms < 0 or adv_window_ms >= adv_every_s * 1000:
            raise ValueError("advertising window must be >= 0 and shorter than its period")
        self.sleep = bool(sleep)
        self._saver_odr = saver_raw_odr_hz
        self._adv_every_ms = int(adv_every_s * 1000)
        self._adv_window_ms = int(adv_window_ms)
        self._offline_adv = offline_adv_us
        self._offline_cpu = offline_cpu_hz
        self._saver_since = None  # ticks when the saver began (advertising-window phase)
        self.adv_window = True  # False: light-sleep phase, advertising stopped
        self.enabled = bool(enabled)
        self._saver_after_ms = int(saver_after_s * 1000)
        self._still_after_ms = int(still_after_s * 1000)
        self._active_rate = active_rate_hz
        self._active_odr = active_raw_odr_hz
        self._saver_rate = saver_rate_hz
        self._still_rate = still_rate_hz
        self._active_adv = active_adv_us
        self._saver_adv = saver_adv_us
        self._active_cpu = active_cpu_hz
        self._saver_cpu = saver_cpu_hz
        self._no_central_since = now_ms  # None while a central is connected
        self._still_since = None  # None while the wearer moves
        self._still_long = False  # latched so a tick wrap cannot undo it
        self.mode = MODE_ACTIVE
        self.transitions = 0  # count of mode changes, for logs and tests
        self._apply()
        self.update(now_ms, False, False)

    def _apply(self):
        if self.mode == MODE_ACTIVE:
            self.sample_rate_hz = self._active_rate
            self.raw_odr_hz = self._active_odr
            self.adv_interval_us = self._active_adv
            self.cpu_freq_hz = self._active_cpu
            self.head_low_power = False
        else:
            rate = self._still_rate if self._still_long else self._saver_rate
            self.sample_rate_hz = rate
            odr = self._saver_odr
            self.raw_odr_hz = odr if odr >= rate else rate  # jolt screening at >= 200 Hz
            self.adv_interval_us = self._offline_adv if self.sleep else self._saver_adv
            self.cpu_freq_hz = self._offline_cpu if self.sleep else self._saver_cpu
            self.head_low_power = False

    def update(self, now_ms, central_connected, wearer_still):
        """Advance the state machine. Returns True when any output changed."""
        before = (self.mode, self.sample_rate_hz, self.adv_interval_us)

        if wearer_still:
            if self._still_since is None:
                self._still_since = now_ms
            if not self._still_long:
                if time.ticks_diff(now_ms, self._still_since) >= self._still_after_ms:
                    self._still_long = True
        else:
            self._still_since = None
            self._still_long = False

        if central_connected:
            self._no_central_since = None
            mode = MODE_ACTIVE
        else:
            if self._no_central_since is None:
                self._no_central_since = now_ms
            mode = self.mode
            if (
                mode == MODE_ACTIVE
                and self.enabled
                and time.ticks_diff(now_ms, self._no_central_since) >= self._saver_after_ms
            ):
                mode = MODE_SAVER
        if mode != self.mode:
            self.mode = mode
            self.transitions += 1
            self._saver_since = now_ms if mode == MODE_SAVER else None
        self._apply()
        return before != (self.mode, self.sample_rate_hz, self.adv_interval_us)

    def sleep_ms(self, now_ms, central_connected, wake_ms):
        """Milliseconds the board may light-sleep from ``now_ms`` (0: stay awake).

        0 unless the policy is in ``saver`` with ``sleep`` on and no central connected;
        0 inside an advertising window (``adv_window`` True: every ``adv_every_s`` from
        entering saver, ``adv_window_ms`` long); otherwise ``wake_ms`` (the FIFO bound,
        ``fifo_wake_ms``), cut so the sleep ends when the next window opens.
        """
        if self.mode != MODE_SAVER or not self.sleep or central_connected or wake_ms <= 0:
            self.adv_window = True
            return 0
        since = self._saver_since
        if since is None:
            since = self._saver_since = now_ms
        t = time.ticks_diff(now_ms, since) % self._adv_every_ms
        if t < self._adv_window_ms:
            self.adv_window = True
            return 0
        self.adv_window = False
        left = self._adv_every_ms - t
        return wake_ms if wake_ms < left else left

    def seconds_to_saver(self, now_ms):
        """Seconds until the saver engages if nothing changes; 0 in saver, -1 never."""
        if self.mode == MODE_SAVER:
            return 0
        if not self.enabled or self._no_central_since is None:
            return -1
        left = self._saver_after_ms - time.ticks_diff(now_ms, self._no_central_since)
        return left / 1000 if left > 0 else 0


def fifo_wake_ms(drivers, odr_hz, fill_pct=config.SLEEP_FIFO_FILL_PCT, most_ms=config.SLEEP_MAX_MS):
    """Longest time between FIFO drains (ms) at ``odr_hz`` so no driver's FIFO gets more
    than ``fill_pct`` % full: min over the drivers (None skipped) of ``fifo_frames`` /
    ``odr_hz``, times ``fill_pct`` / 100, at most ``most_ms``. ICM-42688-P at 200 Hz:
    128 frames -> 480 ms; MPU-6050: 85 -> 318 ms; MPU-6500: 42 -> 157 ms."""
    ms = most_ms
    for d in drivers:
        if d is not None:
            m = d.fifo_frames * 10 * fill_pct // odr_hz
            if m < ms:
                ms = m
    return ms if ms > 0 else 0
