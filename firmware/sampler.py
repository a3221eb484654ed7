"""Fixed-rate sampling loop: IMU FIFOs -> scaled samples -> jolt screen (raw rate) -> the
sink's fusion (100 Hz). The sampler only acquires: calibration, the posture alert and the
buzzer run after fusion (``feedback.Feedback``, called by ``pipeline.Pipeline``).

MicroPython. One ``Sampler.poll(now_ms)`` drains the FIFO of each IMU (raw ODR, 500 Hz
from the drivers), and for every raw sample:

1. converts the raw counts of each IMU to WIRE UNITS (mg, 0.1 deg/s) with the integer
   ratios of ``jolt.acc_ratio`` / ``jolt.gyr_ratio``, rounding half away from zero like
   ``jolt.scale_counts``, applying the board's axis map (chip axes -> device axes,
   ``config.TRUNK_AXIS_MAP`` / ``HEAD_AXIS_MAP``, hardware/MOUNTING.md), and pushes them
   through the ``jolt.JoltScreen``;
2. adds the raw counts (device axes) to a boxcar of ``D = raw_odr / fused_hz`` samples
   (5 at 500 -> 100 Hz). Every D-th sample closes the block: the block MEAN, converted to
   floats in m/s^2 and rad/s, goes to ``sink.step_wire(t_ms, acc0, gyr0, acc1, gyr1, w,
   jolt)`` (or ``sink.step(t_ms, acc0, gyr0, acc1, gyr1, jolt)``).

Decimation. The boxcar mean of D consecutive samples, taken once per D samples, is an
integer FIR anti-alias filter with zeros at every multiple of the fused rate (100, 200 Hz
at 500 Hz raw): exactly the frequencies that would alias onto 0 Hz. Its response is
-3.9 dB at the fused Nyquist (50 Hz), so content between 50 and 100 Hz is attenuated,
not removed; the IMU's own digital low-pass (MPU DLPF 188 Hz; ICM anti-alias filter) and
the body's slow posture signals (< 10 Hz) make that harmless for orientation. Sums are
integers (5 x 32768 is a small int); only the 6 (12) means per fused sample are floats.
The fused sample's time is the block's centre (group delay (D - 1) / 2 raw samples,
4 ms at 500 Hz), so fused timestamps are exactly 1000 / fused_hz ms apart.

Timestamps come from sample counts at the nominal ODR, not from when a poll ran: raw
sample ``c`` after the anchor is at ``anchor + c * 1000 / odr`` ms (integer; the anchor
advances 1000 ms per ``odr`` samples so nothing grows). The anchor is set when a stream
starts or a driver reports ``gap`` (FIFO overflow/reset, failed read): the newest sample
just drained is taken to be ``now_ms``. A real chip's ODR differs from nominal by up to
~1-2 %; when the newest sample's count-based time strays more than ``DRIFT_MS`` from
``now_ms`` after a poll that emptied the FIFOs, the anchor is slewed by 1 ms per poll
(``slews``), keeping timestamps monotonic and evenly spaced within a packet.

Two IMUs. Their FIFOs are drained one after the other and their clocks are independent,
so the counts per poll differ by a sample or so and drift apart slowly. Samples are
paired oldest-first; up to ``_MAX_CARRY`` unpaired samples of one IMU wait for the next
poll. The trunk is the time master: if the head falls more than ``_MAX_CARRY`` samples
behind, its last sample is repeated for the trunk's surplus; if it runs ahead, its
oldest surplus samples are dropped (both counted in ``slips``; the pairing skew stays
under ``_MAX_CARRY`` raw samples, 8 ms at 500 Hz). After a gap on either IMU both
streams are re-aligned newest-to-newest, the jolt screen is reset (history and gravity
estimate), the sink's partial SAMPLES packet is flushed (its samples are evenly spaced,
a time jump must start a new packet) and the decimation block restarts. When the head's
bus fails (``ImuError`` from its driver, counted in ``imu_errors``) the trunk goes on
alone with the head's last sample repeated, and the streams are re-aligned when the
head answers again (both events count as gaps). A trunk bus failure raises out of
``poll`` (the scheduled wrapper counts it in ``errors``); its samples wait in the FIFO.

Jolt flag and EVENTs. When the screen triggers, the ``jolt`` argument of the next fused
sample handed to the sink (the one whose block holds the trigger) is true.
When the screen's window is complete, its EVENT packets (``JoltScreen.event_packets``,
sized for the link's current value length, ``sink.pipeline.fragmenter.max_value_len``)
go to ``sink.send_event(packets)`` if the sink has that method, else they are queued as
one list per window on ``sampler.events`` (oldest first, at most ``max_events`` windows;
older ones are dropped and counted in ``events_dropped``).

Posture and buzzer are not the sampler's business: the sink's pipeline runs them after
fusion (``Pipeline.feedback``, feedback.py), so data flows one way.

Scheduling. On the board a ``machine.Timer`` every ``poll_ms`` calls ``timer_cb``, which
defers ``poll`` with ``micropython.schedule`` (the poll does I2C and allocates floats,
which an interrupt handler must not). Calling ``poll`` from the main loop at least every
``poll_ms`` works too. ``sink.step`` must only queue (Pipeline/BleApp do): the loop never
waits for the radio.

Overruns. ``late_polls``: a poll came more than twice ``poll_ms`` after the previous one.
``fifo_overflows``: the drivers found a FIFO full (samples lost; ``gaps`` follows).
``skipped``: a timer tick found the previous poll still pending. ``overruns`` is their
sum. ``health()`` merges these with the drivers' health and the jolt screen's counters.

Implementation and cost. The per-sample integer work (steps 1 and 2) is one
``@micropython.viper`` loop (``_run``) that calls the jolt screen's viper ``_push`` per
sample and ``_emit`` per fused sample; it allocates nothing. At the end of a block it also
computes the block mean in wire units (integers, exact rounding) for the packet, so the
sink's ``step_wire`` (``BleApp``, ``LocalSink``, ``Pipeline``) encodes without floats.
Allocation per fused sample: the 6 (one IMU) or 12 (two IMUs) floats of the means for the
fusion, handed to the sink in reused lists; once per jolt, the EVENT packets. The whole loop's cost (FIFO reads,
screening, fusion, packets, BLE sending) is measured by ``python -m bench.firmware_cost``.
The board sets ``gc.threshold`` (main.py, ``config.GC_THRESHOLD_BYTES``, measured there).

Rates. ``set_rates(fused_hz, odr_hz)`` switches both at run time (the power saver: 50 Hz
fused and ODR, no screening below 200 Hz raw; back to 100 / 500 Hz on connect).
"""

import time
from array import array

import micropython
from micropython import const

import config
import jolt
from imu_base import ImuError

_BATCH = const(32)  # samples moved per read_fifo call and IMU (64 ms at 500 Hz)
_MAX_CARRY = const(4)  # unpaired samples of one IMU kept for the next poll
_MAX_ROUNDS = const(8)  # read rounds per poll when the FIFOs hold more than _BATCH
DRIFT_MS = const(5)  # |count time - now| beyond this slews the anchor 1 ms per poll

# Layout of the int32 parameter/state array shared with the viper loop ``_run``.
_C_SG = const(0)  # word 0x80000000: sign-extends 32-bit loads on 64-bit hosts (see fusion.py)
_C_TWO = const(1)  # IMUs: 1 or 2
_C_DEC = const(2)  # raw samples per fused sample
_C_ODR = const(3)  # raw rate, Hz
_C_CNT = const(4)  # raw samples since the time anchor (0 .. odr - 1)
_C_NB = const(5)  # samples in the current decimation block
_C_HIT = const(6)  # the screen triggered in the current block
_C_TI = const(7)  # call: first trunk sample
_C_N = const(8)  # call: samples to process
_C_HI = const(9)  # call: first head sample
_C_HSTEP = const(10)  # call: head sample step (1, or 0 to repeat one sample)
_C_IMU = const(11)  # per IMU (trunk, then head at +_C_IMU_LEN): axis offsets[3],
_C_IMU_LEN = const(11)  # acc multipliers[3], gyr multipliers[3], acc den, gyr den
_C_SUM = const(33)  # block sums (raw counts, device axes): trunk acc, gyr, head acc, gyr
_C_SCR = const(45)  # 1: push raw samples through the jolt screen (raw ODR >= 200 Hz)
_C_LEN = const(46)
MAX_DEC = const(16)  # raw samples per fused sample: |block sum * 2000| < 2**31


def _axes(m):
    """Validate an axis map; returns (offsets, signs) tuples.

    Raises:
        ValueError: not a signed permutation of 1, 2, 3.
    """
    if len(m) != 3 or sorted([abs(k) for k in m]) != [1, 2, 3]:
        raise ValueError("axis map must be a signed permutation of (1, 2, 3)")
    return tuple([abs(k) - 1 for k in m]), tuple([1 if k > 0 else -1 for k in m])


def _coefficients(t, h, dec, odr):
    c = array("i", bytearray(4 * _C_LEN))
    c[_C_SG] = -0x80000000
    c[_C_TWO] = 2 if h is not None else 1
    c[_C_DEC] = dec
    c[_C_ODR] = odr
    c[_C_SCR] = 1 if odr >= 200 else 0
    for imu, base in ((t, _C_IMU), (h, _C_IMU + _C_IMU_LEN)):
        if imu is None:
            continue
        for k in range(3):
            c[base + k] = imu.off[k]
            c[base + 3 + k] = imu.ma[k]
            c[base + 6 + k] = imu.mg[k]
        c[base + 9] = imu.ad
        c[base + 10] = imu.gd
    return c


@micropython.viper
def _run(c, bufs, t0, scr, smp):
    """The raw-rate loop: per sample and IMU, counts -> wire units (axis map, rounding
    half away from zero: ``jolt.scale_counts``) and block sums; the jolt screen
    (``jolt._push``, viper: no heap frame; ``scr.event`` only on a trigger or a completed
    window); at the end of a block of ``dec`` samples the block mean in wire units (into
    ``bufs[8]``) and ``smp._emit(t_ms, hit)``. Parameters and state in ``c`` (``_C_*``),
    buffers in ``bufs`` (trunk acc, gyr, head acc, gyr raw counts; trunk and head
    wire-unit acc, gyr; fused wire sample; the screen's state, ring and gravity arrays).
    Returns the (advanced) time anchor t0.

    Native integers: |raw * 2 * 1000| <= 6.6e7 and block sums <= 512 * 32768 stay far
    inside 32 bits; divisions only see non-negative operands. Methods are called as
    ``obj.method(...)``, not through bound-method objects: a bound method called with
    more than 4 arguments allocates (and frees) a temporary argument array per call.
    """
    C = ptr32(c)
    sg = int(C[_C_SG])
    ni = int(C[_C_TWO])
    dec = int(C[_C_DEC])
    odr = int(C[_C_ODR])
    cnt = int(C[_C_CNT])
    nb = int(C[_C_NB])
    hit = int(C[_C_HIT])
    j = 3 * int(C[_C_TI])
    n = int(C[_C_N])
    hj = 3 * int(C[_C_HI])
    hs = 3 * int(C[_C_HSTEP])
    ta = ptr16(bufs[0])
    tg = ptr16(bufs[1])
    ha = ptr16(bufs[2])
    hg = ptr16(bufs[3])
    owa = bufs[4]
    owg = bufs[5]
    ohwa = bufs[6]
    ohwg = bufs[7]
    fw = ptr16(bufs[8])
    scr_on = int(C[_C_SCR])
    jst = bufs[9]  # the jolt screen's state, ring and gravity arrays (jolt._push)
    jring = bufs[10]
    jgrav = bufs[11]
    pushv = jolt._push
    twa = ptr16(owa)
    twg = ptr16(owg)
    hwa = ptr16(ohwa)
    hwg = ptr16(ohwg)
    tadd = time.ticks_add
    for _ in range(n):
        m = 0
        while m < ni:
            ra = ta
            rg = tg
            wa = twa
            wg = twg
            r = j
            cb = _C_IMU
            sb = _C_SUM
            if m:
                ra = ha
                rg = hg
                wa = hwa
                wg = hwg
                r = hj
                cb = _C_IMU + _C_IMU_LEN
                sb = _C_SUM + 6
            da = int(C[cb + 9])
            dg = int(C[cb + 10])
            for k in range(3):
                o = int(C[cb + k])
                x = int(ra[r + o])
                x = (x ^ 0x8000) - 0x8000
                C[sb + k] = ((int(C[sb + k]) ^ sg) - sg) + x
                v = x * ((int(C[cb + 3 + k]) ^ sg) - sg)
                if v >= 0:
                    wa[k] = (v + da) // (2 * da)
                else:
                    wa[k] = 0 - (da - v) // (2 * da)
                x = int(rg[r + o])
                x = (x ^ 0x8000) - 0x8000
                C[sb + 3 + k] = ((int(C[sb + 3 + k]) ^ sg) - sg) + x
                v = x * ((int(C[cb + 6 + k]) ^ sg) - sg)
                if v >= 0:
                    wg[k] = (v + dg) // (2 * dg)
                else:
                    wg[k] = 0 - (dg - v) // (2 * dg)
            m += 1
        j += 3
        hj += hs
        if scr_on:
            r = int(pushv(jst, jring, jgrav, owa, owg, ohwa, ohwg, 0))
            if r:  # a trigger or a completed window (rare): the screen's bookkeeping
                if r & int(jolt.R_CAPTURE):  # the trigger time, computed only when one fires
                    JS = ptr32(jst)
                    JS[int(jolt.S_CT)] = int(tadd(t0, (cnt * 1000) // odr))
                if scr.event(r):
                    hit = 1
        nb += 1
        if nb == dec:
            # block mean in wire units (exact: round half away from zero of sum * m / (2 d dec))
            m = 0
            while m < ni:
                cb = _C_IMU + m * _C_IMU_LEN
                sb = _C_SUM + 6 * m
                for k in range(6):
                    d = int(C[cb + 9 + k // 3]) * dec
                    v = ((int(C[sb + k]) ^ sg) - sg) * ((int(C[cb + 3 + k]) ^ sg) - sg)
                    if v >= 0:
                        fw[6 * m + k] = (v + d) // (2 * d)
                    else:
                        fw[6 * m + k] = 0 - (d - v) // (2 * d)
                m += 1
            # block centre: samples cnt - dec + 1 .. cnt
            smp._emit(tadd(t0, ((2 * cnt - dec + 1) * 1000) // (2 * odr)), hit)
            hit = 0
            nb = 0
            for k in range(12):
                C[_C_SUM + k] = 0
        cnt += 1
        if cnt == odr:
            cnt = 0
            t0 = tadd(t0, 1000)
    C[_C_CNT] = cnt
    C[_C_NB] = nb
    C[_C_HIT] = hit
    return t0


def _means(imu, c, o):
    """Block sums ``c[o .. o + 5]`` -> ``imu.sa`` (m/s^2), ``imu.sg`` (rad/s): 6 floats."""
    a = imu.sa
    f = imu.fa
    a[0] = c[o] * f[0]
    a[1] = c[o + 1] * f[1]
    a[2] = c[o + 2] * f[2]
    a = imu.sg
    f = imu.fg
    a[0] = c[o + 3] * f[0]
    a[1] = c[o + 4] * f[1]
    a[2] = c[o + 5] * f[2]


class _Imu:
    """Per-IMU staging buffers, wire-unit conversion constants and last wire sample."""

    def __init__(self, drv, axes, dec):
        self.drv = drv
        cap = _MAX_CARRY + _BATCH
        self.a = array("h", bytearray(6 * cap))  # raw counts, chip axes, x y z interleaved
        self.g = array("h", bytearray(6 * cap))
        ma = memoryview(self.a)
        mg = memoryview(self.g)
        # Views made once (a slice on the hot path would allocate): read into offset j.
        self.av = [ma[3 * j : 3 * (j + _BATCH)] for j in range(_MAX_CARRY + 1)]
        self.gv = [mg[3 * j : 3 * (j + _BATCH)] for j in range(_MAX_CARRY + 1)]
        self.n = 0  # samples staged (not yet screened / decimated)
        self.gap = False  # samples were lost before the ones this read returned
        self.err = False  # the last read failed on the bus
        self.wa = array("h", bytearray(6))  # last sample in wire units (mg), device axes
        self.wg = array("h", bytearray(6))  # (0.1 deg/s)
        self.la = array("h", bytearray(6))  # last paired raw sample (for slips)
        self.lg = array("h", bytearray(6))
        off, sg = _axes(axes)
        self.off = off
        an, ad = jolt.acc_ratio(drv.acc_lsb_per_g)
        gn, gd = jolt.gyr_ratio(drv.gyr_lsb_per_dps)
        # v = raw * m; wire = round_half_away(v / (2 d)): m = 2 * sign * num
        self.ma = tuple([2 * s * an for s in sg])
        self.mg = tuple([2 * s * gn for s in sg])
        self.ad = ad
        self.gd = gd
        self._sg = sg
        self.set_dec(dec)
        self.sa = [0.0, 0.0, 0.0]  # fused sample handed to the sink (m/s^2), reused
        self.sg = [0.0, 0.0, 0.0]  # (rad/s)
        self.ovf = drv.fifo_overflows

    def set_dec(self, dec):
        """Block sum (device axes, raw counts) -> mean in SI, sign of the axis map included."""
        sg = self._sg
        drv = self.drv
        self.fa = tuple([s * drv.acc_scale / dec for s in sg])
        self.fg = tuple([s * drv.gyr_scale / dec for s in sg])

    def read(self):
        """Append up to _BATCH samples from the FIFO; returns how many. ``gap`` is True
        when they do not follow on from the samples read before."""
        n0 = self.n
        k = self.drv.read_fifo(self.av[n0], self.gv[n0], _BATCH)
        # also on an empty read: the driver then reports samples lost since the last one
        # (FIFO overflow reset), so staged samples must not be paired across the loss
        self.gap = self.drv.gap
        self.n = n0 + k
        return k

    def drop(self, k):
        """Forget the ``k`` oldest staged samples (keep the rest, oldest first)."""
        keep = self.n - k
        if keep > 0 and k > 0:
            a = self.a
            g = self.g
            s = 3 * k
            for j in range(3 * keep):
                a[j] = a[s + j]
                g[j] = g[s + j]
        self.n = keep if keep > 0 else 0

    def keep_last(self, i):
        """Remember staged sample ``i`` as the last paired one."""
        j = 3 * i
        a = self.a
        g = self.g
        la = self.la
        lg = self.lg
        for k in range(3):
            la[k] = a[j + k]
            lg[k] = g[j + k]


class Sampler:
    """Drains one or two IMUs at a fixed rate and feeds the jolt screen and the sink.

    Args:
        trunk: trunk IMU driver (imu_base interface; required).
        head: head IMU driver, or None (one-IMU mode, wire ``imu_mask`` 1).
        sink: has ``step(t_ms, acc0, gyr0, acc1, gyr1, jolt)`` (fused sample, m/s^2 and
            rad/s in device axes, 3-element lists that are reused: copy to keep; ``jolt``
            true when the screen triggered in the sample's block), or ``step_wire(t_ms,
            acc0, gyr0, acc1, gyr1, w, jolt)`` with the wire-unit ints too (preferred);
            optionally a ``pipeline`` (``pipeline.Pipeline``: its ``fragmenter`` sizes
            EVENT packets, its ``flush`` closes a packet at a gap), ``send_event(packets)``
            and ``flush()``.
        fused_hz: fused rate, Hz; must divide the raw ODR (default 100).
        poll_ms: expected interval between polls, ms (late-poll detection; default 20).
        screen: a ``jolt.JoltScreen`` for the IMU count and raw rate (default: one with
            the jolt module's defaults).
        max_value_len: EVENT packet sizing when the sink's pipeline has no fragmenter.
        max_events: EVENT windows kept on ``events`` when the sink has no ``send_event``
            (default 4; a two-IMU window at 500 Hz is ~10 kB of packets).
        trunk_axes, head_axes: axis maps chip -> device (default from config).
        clock: ``() -> ms`` used by ``timer_cb`` polls (default ``time.ticks_ms``).

    Raises:
        ValueError: IMUs at different or non-integer ODRs, ``fused_hz`` not dividing the
            ODR, or a bad axis map.

    Attributes: ``raw_samples``, ``fused_samples``, ``polls``, ``events``, the counters
    listed in the module docstring.
    """

    def __init__(self, trunk, head, sink, fused_hz=100, poll_ms=20, screen=None,
                 max_value_len=244, max_events=4,
                 trunk_axes=config.TRUNK_AXIS_MAP, head_axes=config.HEAD_AXIS_MAP, clock=None):
        odr = int(trunk.odr_hz + 0.5)
        if abs(trunk.odr_hz - odr) > 0.001 or odr <= 0:
            raise ValueError("raw ODR must be a whole number of Hz, got %r" % trunk.odr_hz)
        if head is not None and abs(head.odr_hz - odr) > 0.001:
            raise ValueError("trunk and head IMUs must run at the same ODR")
        fused_hz = int(fused_hz)
        if fused_hz <= 0 or odr % fused_hz:
            raise ValueError("fused_hz must divide the raw ODR (%d Hz)" % odr)
        if odr // fused_hz > MAX_DEC:
            raise ValueError("at most %d raw samples per fused sample" % MAX_DEC)
        self.rate_changes = 0
        self.odr_hz = odr
        self.fused_hz = fused_hz
        self.dec = odr // fused_hz
        self.poll_ms = poll_ms
        self.two = head is not None
        self.trunk = trunk
        self.head = head
        self._t = _Imu(trunk, trunk_axes, self.dec)
        self._h = _Imu(head, head_axes, self.dec) if head is not None else None
        self._imus = [self._t]
        if self._h is not None:
            self._imus.append(self._h)
        self._h2 = self._h if self._h is not None else self._t  # head in two-IMU code
        self.sink = sink
        self._wire = hasattr(sink, "step_wire")  # the sink takes wire-unit ints too
        self._pipe = getattr(sink, "pipeline", None)
        self._send_event = getattr(sink, "send_event", None)
        self._flush = getattr(sink, "flush", None)
        if screen is None and odr >= 200:
            screen = jolt.JoltScreen(2 if self.two else 1, odr)
        if screen is not None and (screen.imu_count != (2 if self.two else 1)
                                   or screen.rate_hz != odr):
            raise ValueError("jolt screen must match the IMU count and raw ODR")
        self.screen = screen  # None: no screening (raw ODR below 200 Hz)
        self.max_value_len = max_value_len
        self.max_events = max_events
        self.events = []
        self._clock = clock if clock is not None else time.ticks_ms
        self._sched_cb = self._scheduled  # bound method made once: timer_cb allocates nothing
        self._pending = False
        self._busy = False
        # time base
        self._t0 = time.ticks_ms()  # ticks of raw sample count 0 (set by _resync)
        self._c = _coefficients(self._t, self._h, self.dec, odr)
        t = self._t
        h = self._h if self._h is not None else t  # one IMU: head slots unused
        self._fw = array("h", bytearray(24))  # fused sample in wire units (mg, 0.1 deg/s)
        self._bufs = [t.a, t.g, h.a, h.g, t.wa, t.wg, h.wa, h.wg, self._fw, None, None, None]
        self._screen_bufs()
        self._started = False
        self._head_down = False  # the head's last read failed on the bus
        self._last_poll = None
        # counters
        self.raw_samples = 0
        self.fused_samples = 0
        self.polls = 0
        self.late_polls = 0
        self.fifo_overflows = 0
        self.skipped = 0
        self.gaps = 0
        self.slips = 0
        self.slews = 0
        self.imu_errors = 0
        self.errors = 0
        self.last_error = None
        self.events_dropped = 0
        self.poll_us_last = 0
        self.poll_us_max = 0
        self._health = {}

    # ---- scheduling ---------------------------------------------------------------

    def timer_cb(self, _timer=None):
        """``machine.Timer`` callback: defer one ``poll`` (allocation-free, IRQ-safe)."""
        if self._pending:
            self.skipped += 1
            return
        try:
            micropython.schedule(self._sched_cb, 0)
            self._pending = True
        except RuntimeError:  # schedule queue full
            self.skipped += 1

    def _scheduled(self, _arg):
        self._pending = False
        try:
            self.poll(self._clock())
        except Exception as e:  # keep the timer alive; health() shows it
            self.errors += 1
            if self.last_error is None:
                print("sampler: poll failed:", repr(e))
            self.last_error = repr(e)

    # ---- the loop -----------------------------------------------------------------

    def poll(self, now_ms):
        """Drain the FIFOs and process every sample; call at least every ``poll_ms``.

        ``now_ms`` is ``time.ticks_ms()`` (or the test clock). Never blocks on BLE.
        Raises ``ImuError`` only for a trunk bus failure that persists across retries
        (counted in ``imu_errors`` first); head failures are counted and absorbed.
        """
        if self._busy:
            self.skipped += 1
            return
        self._busy = True
        try:
            self._poll(now_ms)
        finally:
            self._busy = False

    def _poll(self, now_ms):
        us0 = time.ticks_us()
        last = self._last_poll
        if last is not None and time.ticks_diff(now_ms, last) > 2 * self.poll_ms:
            self.late_polls += 1
        self._last_poll = now_ms
        rounds = 0
        more = True
        while more and rounds < _MAX_ROUNDS:
            more = self._drain(now_ms)
            rounds += 1
        if not more and self._started:
            self._check_drift(now_ms)
        ovf = 0
        for imu in self._imus:
            o = imu.drv.fifo_overflows
            ovf += o - imu.ovf
            imu.ovf = o
        self.fifo_overflows += ovf
        scr = self.screen
        if scr is not None and scr.ready():
            self._take_events()
        self.polls += 1
        us = time.ticks_diff(time.ticks_us(), us0)
        self.poll_us_last = us
        if us > self.poll_us_max:
            self.poll_us_max = us

    def _read(self, imu):
        imu.err = False
        try:
            return imu.read()
        except ImuError:
            self.imu_errors += 1
            imu.gap = False
            imu.err = True
            if imu is self._t:
                raise
            return 0

    def _drain(self, now_ms):
        """One read round: read both FIFOs, pair, process. True if more may be queued."""
        t = self._t
        h = self._h
        nt = self._read(t)
        more = nt == _BATCH
        gap = t.gap
        if gap:
            t.drop(t.n - nt)  # staged samples before a gap do not continue into the new ones
        if h is not None:
            nh = self._read(h)
            more = more or nh == _BATCH
            if h.gap:
                h.drop(h.n - nh)
                gap = True
            if h.err != self._head_down:
                # the head's bus failed (go on with the trunk alone, repeating the head's
                # last sample) or came back: either way the streams are re-aligned
                self._head_down = h.err
                h.n = 0 if h.err else nh
                gap = True
        if gap and self._started:
            self._started = False
            self.gaps += 1
            if self.fused_samples:
                # a packet's samples are evenly spaced: a time jump starts a new packet
                if self._flush is not None:
                    self._flush()
                elif self._pipe is not None:
                    self._pipe.flush()
        if not self._started and not self._resync(now_ms):
            return more
        if h is None:
            n = t.n
            if n:
                self._process(0, n, t.a, t.g, 0, 1)
                t.n = 0
            return more
        k = t.n if t.n < h.n else h.n
        if k:
            self._process(0, k, h.a, h.g, 0, 1)
            h.keep_last(k - 1)
        extra = t.n - k - (0 if self._head_down else _MAX_CARRY)
        if extra > 0:  # head behind (or down): repeat its last sample for the trunk's surplus
            self._process(k, extra, h.la, h.lg, 0, 0)
            if not self._head_down:
                self.slips += extra
            k += extra
        t.drop(k)
        h.drop(k if k < h.n else h.n)
        extra = h.n - _MAX_CARRY
        if extra > 0:  # head ahead: drop its oldest surplus
            h.drop(extra)
            self.slips += extra
        return more

    def _resync(self, now_ms):
        """Stream start or after a gap: align the streams newest-to-newest, re-anchor the
        time base, restart the decimation block and the jolt screen. False while an IMU
        has no samples yet (try again next round). While the head's bus is down the trunk
        starts alone (the head's last sample is repeated until it is back)."""
        t = self._t
        h = self._h
        n = t.n
        if h is not None and not self._head_down:
            if h.n < n:
                t.drop(n - h.n)
                n = h.n
            elif h.n > n:
                h.drop(h.n - n)
        if not n:
            for imu in self._imus:  # keep only what the next read round has room for
                if imu.n > _MAX_CARRY:
                    imu.drop(imu.n - _MAX_CARRY)
            return False
        # the newest staged sample was taken at about now_ms; sample 0 is n - 1 periods earlier
        self._t0 = time.ticks_add(now_ms, -(((n - 1) * 1000) // self.odr_hz))
        c = self._c
        c[_C_CNT] = 0
        c[_C_NB] = 0
        c[_C_HIT] = 0
        for i in range(12):
            c[_C_SUM + i] = 0
        if self.screen is not None:
            self.screen.reset()
        self._started = True
        return True

    def _check_drift(self, now_ms):
        """Slew the anchor 1 ms towards ``now_ms`` when count time strays > DRIFT_MS."""
        t0 = self._t0
        c = self._c[_C_CNT] + self._t.n - 1  # count of the newest staged trunk sample
        e = time.ticks_diff(now_ms, time.ticks_add(t0, (c * 1000) // self.odr_hz))
        if e > DRIFT_MS:
            self._t0 = time.ticks_add(t0, 1)
            self.slews += 1
        elif e < -DRIFT_MS:
            self._t0 = time.ticks_add(t0, -1)
            self.slews += 1

    def _screen_bufs(self):
        b = self._bufs
        scr = self.screen
        if scr is not None:
            b[9] = scr._st
            b[10] = scr._ring
            b[11] = scr._grav
        else:  # never read: screening is off (_C_SCR 0)
            b[9] = b[10] = b[11] = self._fw

    def _process(self, ti, n, ha, hg, hi, hstep):
        """Screen and decimate ``n`` samples: trunk samples ``ti ..`` of the staging
        buffers with head samples ``hi, hi + hstep, ..`` of ``ha``/``hg`` (the staging
        buffers, or the last head sample with ``hstep`` 0)."""
        c = self._c
        c[_C_TI] = ti
        c[_C_N] = n
        c[_C_HI] = hi
        c[_C_HSTEP] = hstep
        b = self._bufs
        b[2] = ha
        b[3] = hg
        self._t0 = _run(c, b, self._t0, self.screen, self)
        self.raw_samples += n

    # Per fused sample. Kept in small frames (<= 11 slots): MicroPython puts a larger
    # frame on the heap, and floats allocated while it lives make later allocations
    # rescan the garbage since the last collection (see posture.py).

    def _emit(self, t_ms, hit):
        """Called by ``_run`` per complete block: the fused sample (and its jolt flag
        ``hit``) to the sink."""
        if self.two:
            self._fused2(t_ms, hit)
        else:
            self._fused1(t_ms, hit)
        self.fused_samples += 1

    def _fused1(self, t_ms, hit):
        T = self._t
        _means(T, self._c, _C_SUM)
        if self._wire:
            self.sink.step_wire(t_ms, T.sa, T.sg, None, None, self._fw, hit)
        else:
            self.sink.step(t_ms, T.sa, T.sg, None, None, hit)

    def _fused2(self, t_ms, hit):
        T = self._t
        H = self._h2
        _means(T, self._c, _C_SUM)
        _means(H, self._c, _C_SUM + 6)
        if self._wire:
            self.sink.step_wire(t_ms, T.sa, T.sg, H.sa, H.sg, self._fw, hit)
        else:
            self.sink.step(t_ms, T.sa, T.sg, H.sa, H.sg, hit)

    def _take_events(self):
        p = self._pipe
        fr = getattr(p, "fragmenter", None) if p is not None else None
        mvl = fr.max_value_len if fr is not None else self.max_value_len
        scr = self.screen
        if scr is None:
            return
        pk = scr.event_packets(mvl)
        if self._send_event is not None:
            self._send_event(pk)
            return
        ev = self.events
        ev.append(pk)
        while len(ev) > self.max_events:
            ev.pop(0)
            self.events_dropped += 1

    # ---- commands and status --------------------------------------------------------

    def set_rates(self, fused_hz, odr_hz):
        """Switch the fused rate and the IMUs' output data rate (power saver and back).

        Reconfigures both drivers to ``odr_hz`` (their FIFOs restart), re-times the
        decimation (``odr / fused_hz`` raw samples per fused sample) and the sink's pipeline
        (``Pipeline.set_rate_hz``: fusion keeps orientation and bias; packets carry the
        new ``period_us``; its feedback's posture divider follows). Jolt screening runs
        only while the ODR is >= 200 Hz (the screen made at boot is kept and used again
        when the full rate returns). Staged samples are dropped and the time base re-anchors on the
        next poll, as after a gap. Not for interrupt context (allocates, does I2C).

        Raises:
            ValueError: a rate the drivers, the fusion or the loop cannot run (fused rate
                not dividing the actual ODR, posture rate not dividing the fused rate, more
                than ``MAX_DEC`` raw samples per fused sample); the old rates stay.
            ImuError: a driver could not be reconfigured.
        """
        fused_hz = int(fused_hz)
        if fused_hz == self.fused_hz and odr_hz == self.odr_hz:
            return
        old_odr = self.odr_hz
        drvs = [self.trunk] if self.head is None else [self.trunk, self.head]
        try:
            for d in drvs:
                d.configure(odr_hz=odr_hz)
            odr = int(self.trunk.odr_hz + 0.5)
            for d in drvs:
                if abs(d.odr_hz - odr) > 0.001:
                    raise ValueError("trunk and head IMUs must run at the same ODR")
            if fused_hz <= 0 or odr % fused_hz or odr // fused_hz > MAX_DEC:
                raise ValueError("fused_hz %d does not fit the ODR %d Hz" % (fused_hz, odr))
            p = self._pipe
            if p is not None and hasattr(p, "set_rate_hz"):
                p.set_rate_hz(fused_hz)
        except ValueError:
            for d in drvs:
                d.configure(odr_hz=old_odr)
            raise
        scr = self.screen
        if odr >= 200 and (scr is None or scr.rate_hz != odr):
            # event ids go on from the old screen's: one id per window per boot (SPEC)
            scr = jolt.JoltScreen(2 if self.two else 1, odr,
                                  event_id=scr._next_id if scr is not None else 0)
            self.screen = scr
            self._screen_bufs()
        self.odr_hz = odr
        self.fused_hz = fused_hz
        self.dec = odr // fused_hz
        for imu in self._imus:
            imu.set_dec(self.dec)
            imu.n = 0
            imu.ovf = imu.drv.fifo_overflows
        self._c = _coefficients(self._t, self._h, self.dec, odr)
        self._started = False  # re-anchor on the next poll
        self.rate_changes += 1

    def health(self):
        """Status dict (the same object, updated): drivers, jolt, loop counters.

        Keys: ``trunk``, ``head`` (driver ``health()`` or None), ``jolt`` (screen stats),
        ``raw_samples``, ``fused_samples``,
        ``polls``, ``overruns``, ``late_polls``, ``fifo_overflows``, ``skipped``, ``gaps``,
        ``slips``, ``slews``, ``imu_errors``, ``errors``, ``events_dropped``,
        ``poll_us_last``, ``poll_us_max``. Not for the hot path (allocates a little).
        """
        h = self._health
        h["trunk"] = self.trunk.health()
        h["head"] = self.head.health() if self.head is not None else None
        h["jolt"] = self.screen.stats() if self.screen is not None else None
        h["fused_hz"] = self.fused_hz
        h["odr_hz"] = self.odr_hz
        h["screening"] = bool(self._c[_C_SCR])
        h["rate_changes"] = self.rate_changes
        h["raw_samples"] = self.raw_samples
        h["fused_samples"] = self.fused_samples
        h["polls"] = self.polls
        h["overruns"] = self.late_polls + self.fifo_overflows + self.skipped
        h["late_polls"] = self.late_polls
        h["fifo_overflows"] = self.fifo_overflows
        h["skipped"] = self.skipped
        h["gaps"] = self.gaps
        h["slips"] = self.slips
        h["slews"] = self.slews
        h["imu_errors"] = self.imu_errors
        h["errors"] = self.errors
        h["events_dropped"] = self.events_dropped
        h["poll_us_last"] = self.poll_us_last
        h["poll_us_max"] = self.poll_us_max
        return h
