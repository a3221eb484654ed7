"""Vibration motor patterns, non-blocking, MicroPython.

The motor (coin ERM through a transistor, ``config.PIN_MOTOR_PWM``) is driven with PWM so
its average voltage suits a 3 V part on a 4.2 V cell (``config.MOTOR_DUTY_PCT``). A
pattern is a sequence of ``(on_ms, off_ms)`` pulses; ``play`` starts one and the main
loop calls ``tick(now_ms)`` as often as it likes: the buzzer never sleeps or blocks.
Phase ends are scheduled from the pattern start (not from the tick that noticed them),
so a late tick shortens the phase it ends but does not shift the rest of the pattern;
a tick so late that it skips whole phases applies only the final state.

Usage::

    buz = Buzzer.on_pin()                     # or Buzzer(machine.PWM(...)) / a fake
    if alert.update(now, q_trunk, q_head, hour):
        buz.play(now)
    buz.tick(now)                             # every loop iteration
    alert_flag = buz.playing                  # ALERT flag in the stream

On the board ``feedback.Feedback`` does this after each fusion.
"""

import time

import config

# Default alert: ALERT_PULSES pulses of ALERT_PULSE_MS with ALERT_GAP_MS between.
ALERT_PATTERN = ((config.ALERT_PULSE_MS, config.ALERT_GAP_MS),) * config.ALERT_PULSES


class Buzzer:
    """Plays vibration patterns on a PWM output.

    Args:
        pwm: a ``machine.PWM`` (or anything with ``duty_u16(v)``, 0..65535, as on the
            ESP32 port; objects with only the older ``duty(v)``, 0..1023, work too).
        duty_pct: motor drive while on, percent of full duty (default
            ``config.MOTOR_DUTY_PCT``).
        pattern: default pattern for ``play`` (default ``ALERT_PATTERN``).

    Raises:
        ValueError: duty_pct outside 0..100.

    Attributes: ``playing`` (a pattern is running), ``on`` (motor driven now),
    ``played`` (patterns started).
    """

    def __init__(self, pwm, duty_pct=config.MOTOR_DUTY_PCT, pattern=ALERT_PATTERN):
        if not 0 <= duty_pct <= 100:
            raise ValueError("duty_pct must be 0..100")
        self._pwm = pwm
        self._u16 = hasattr(pwm, "duty_u16")
        self._on_duty = (duty_pct * 65535 // 100) if self._u16 else (duty_pct * 1023 // 100)
        self.pattern = pattern
        self._pat = pattern
        self._i = 0
        self._phase_on = False
        self._start = 0  # ticks_ms at play()
        self._end = 0  # end of the current phase, ms after _start
        self.playing = False
        self.on = False
        self.played = 0
        self._drive(False)

    @classmethod
    def on_pin(cls, pin=config.PIN_MOTOR_PWM, freq_hz=config.MOTOR_PWM_FREQ_HZ,
               duty_pct=config.MOTOR_DUTY_PCT, pattern=ALERT_PATTERN):
        """A Buzzer on a ``machine.PWM`` at ``pin`` (GPIO number), starting off."""
        import machine

        pwm = machine.PWM(machine.Pin(pin, machine.Pin.OUT), freq=freq_hz, duty_u16=0)
        return cls(pwm, duty_pct, pattern)

    def _drive(self, on):
        v = self._on_duty if on else 0
        if self._u16:
            self._pwm.duty_u16(v)
        else:
            self._pwm.duty(v)
        self.on = on

    def play(self, now_ms, pattern=None):
        """Start ``pattern`` (default: the buzzer's pattern) at ``now_ms`` (ticks_ms).

        A pattern already playing is replaced. An empty pattern does nothing.
        """
        p = self.pattern if pattern is None else pattern
        self.played += 1
        if not p:
            self.stop()
            return
        self._pat = p
        self._i = 0
        self._phase_on = True
        self._start = now_ms
        self._end = p[0][0]
        self.playing = True
        self.tick(now_ms)

    def stop(self):
        """Stop at once, motor off."""
        self.playing = False
        if self.on:
            self._drive(False)

    def tick(self, now_ms):
        """Advance the pattern to ``now_ms``; returns ``playing``. Never blocks."""
        if not self.playing:
            return False
        pat = self._pat
        el = time.ticks_diff(now_ms, self._start)  # ms since the pattern started
        while el >= self._end:
            if self._phase_on:
                self._phase_on = False
                self._end += pat[self._i][1]
            else:
                i = self._i + 1
                if i >= len(pat):
                    self.playing = False
                    break
                self._i = i
                self._phase_on = True
                self._end += pat[i][0]
        want = self.playing and self._phase_on
        if want != self.on:
            self._drive(want)
        return self.playing
