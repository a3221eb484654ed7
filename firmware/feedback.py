"""What the board does with the fused orientations: calibration, posture alert, buzzer.

MicroPython. The data path runs one way: the sampler acquires (FIFO -> scaled samples ->
jolt screen), the pipeline fuses, and after each fusion the pipeline hands the
orientations to ``Feedback.fused``; its answer (the buzzer is playing) is the sample's
ALERT flag. Nothing here reads or writes the sampler.

Per fused sample (``fused``):

* the buzzer advances to the sample's time (``Buzzer.tick``; only while it plays);
* every ``rate_hz / posture_hz`` samples (10 Hz): a pending calibration (``calibrate``:
  neutral posture ``delay_ms`` after the command, the wearer holding still) stores the
  neutral pitches, then the posture alert (``posture.PostureAlert``) is updated and, when
  it says so, the buzzer plays.

Times are the samples' ``t_ms`` (``time.ticks_ms`` domain, from the sampler's count-based
time base), so alert timing follows the data, not when a poll happened to run.

Cost: a method call and a counter per fused sample; the posture update's floats (posture.py)
at ``posture_hz``.
"""

import time

from posture import STATE_NAMES


class Feedback:
    """Calibration, posture alert and buzzer after fusion.

    Args:
        posture: a ``posture.PostureAlert`` or None (no alerts).
        buzzer: a ``buzzer.Buzzer`` or None.
        rate_hz: fused samples per second (``fused`` calls per second).
        posture_hz: posture updates per second; must divide ``rate_hz`` (default 10).

    Attributes: ``posture`` (replaceable: SET_POSTURE), ``buzzer``, ``hour_of_day`` (local
    hour for quiet hours, None = unknown; set by the main loop), ``calibrated``, ``alerting``
    (the ALERT flag of the last sample).

    Raises:
        ValueError: ``posture_hz`` not dividing ``rate_hz``.
    """

    def __init__(self, posture=None, buzzer=None, rate_hz=100, posture_hz=10):
        self.posture = posture
        self.buzzer = buzzer
        self.posture_hz = posture_hz
        self.hour_of_day = None
        self.calibrated = False
        self.alerting = False
        self._cal_due = None
        self._pc = 0
        self._pdiv = 1
        self.set_rate_hz(rate_hz)

    def set_rate_hz(self, rate_hz):
        """Follow a fused-rate change (power saver).

        Raises:
            ValueError: ``posture_hz`` does not divide ``rate_hz`` (nothing changed).
        """
        rate_hz = int(rate_hz)
        if self.posture_hz <= 0 or rate_hz <= 0 or rate_hz % self.posture_hz:
            raise ValueError("posture_hz must divide the fused rate")
        self._pdiv = rate_hz // self.posture_hz
        self._pc = 0

    def calibrate(self, now_ms, delay_ms=0):
        """Store the neutral posture from the fused orientations ``delay_ms`` from
        ``now_ms`` (ticks_ms; the wearer holds still, upright, looking ahead, meanwhile)."""
        self._cal_due = time.ticks_add(now_ms, delay_ms)

    def fused(self, t_ms, q0, q1):
        """One fused sample: orientations ``q0`` (trunk) and ``q1`` (head or None),
        (w, x, y, z). Returns the sample's ALERT flag (the buzzer is playing)."""
        buz = self.buzzer
        if buz is not None and buz.playing:
            buz.tick(t_ms)
        pc = self._pc + 1
        if pc >= self._pdiv:
            pc = 0
            if self.posture is not None or self._cal_due is not None:
                self._posture(t_ms, q0, q1)
        self._pc = pc
        a = buz is not None and buz.playing
        self.alerting = a
        return a

    def _posture(self, t_ms, q0, q1):
        cd = self._cal_due
        post = self.posture
        if cd is not None and time.ticks_diff(t_ms, cd) >= 0:
            self._cal_due = None
            if post is not None:
                post.calibrate(q0, q1)
            self.calibrated = True
        if post is not None and post.update(t_ms, q0, q1, self.hour_of_day):
            buz = self.buzzer
            if buz is not None:
                buz.play(t_ms)

    def health(self):
        """(posture state name or None, alerts so far)."""
        post = self.posture
        if post is None:
            return None, 0
        return STATE_NAMES[post.state], post.alerts
