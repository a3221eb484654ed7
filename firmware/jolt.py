"""Jolt screen at the full raw IMU rate (>= 400 Hz), MicroPython.

Jolts (a vehicle braking or hitting a pothole, a bump, a fall, a whiplash-type head
movement) last 50-150 ms: the 100 Hz fused stream keeps their size but not their shape.
The screen watches every raw IMU sample, and when one looks like a jolt it keeps a
window of raw samples around it (``pre_s`` before, ``post_s`` after) that the board
sends as EVENT packets (protocol/SPEC.md, type 2). The host decides what the jolt was
(nape.analysis); the screen only has to be cheap and not miss one.

Units. ``push`` takes integer sequences already in WIRE UNITS: acceleration (specific
force, sensor frame) in mg (1 LSB = 0.001 g = 0.00980665 m/s^2) and angular rate in
0.1 deg/s, int16 range. The ring buffer stores exactly these int16 values in the EVENT
sample layout (per sample, trunk then head: acc x, y, z, gyr x, y, z), so the EVENT body
is a plain copy. The IMU drivers deliver raw counts (``read_fifo``); ``acc_ratio``,
``gyr_ratio`` and ``scale_counts`` convert counts to wire units with integers only.

Trigger. Any IMU, any one of:

* linear acceleration: ``|a - g_est| > trigger_mg`` where ``a`` is the measured specific
  force and ``g_est`` a per-IMU estimate of gravity in the sensor frame. ``g_est`` is
  rotated with the gyroscope every sample (``dg/dt = g x w``) and pulled towards ``a``
  by a slow low-pass (``gravity_tau_s``) that removes gyro drift. Rotating it matters:
  bending forward turns gravity in the sensor frame by up to 1 g, which a plain
  high-pass would call a jolt, and a trigger on the magnitude alone (``|a|`` vs 1 g)
  is nearly blind to horizontal jolts: braking at 0.35 g changes ``|a|`` by only
  sqrt(1 + 0.35^2) - 1 = 0.06 g.
* angular rate: ``|w| > trigger_dps``.

Everything is integer arithmetic on small ints (gravity in 1/4096 mg fixed point,
squared magnitudes compared with squared thresholds in mg^2 and (0.1 dps)^2, no sqrt,
no floats), so a push allocates nothing. The per-sample work is native code
(``@micropython.viper`` ``_push`` / ``_imu``: no heap frame; the sampling loop calls
``_push`` straight from its own viper loop); Python runs only on a trigger or when a
window completes (``JoltScreen.event``). Viper integers are machine words (32 bit on
the ESP32), so the results equal the Python integer arithmetic.
Every intermediate stays below 2**30, the small-int limit of 32-bit ports (bounds in
the comments of ``_imu``).

Defaults and sources:

* ``trigger_mg = 350``: harsh braking starts at 0.35 g in naturalistic driving studies
  (routine braking ~0.25 g; Bagdadi & Varhelyi 2011, Accid Anal Prev 43; Fambro et al.
  1997, NCHRP Report 400). Same value as the host's ``jolt_trigger_g`` (nape.settings),
  so every jolt the host grades has a raw window. Walking (trunk vertical ~+-0.25 g at
  ~2 Hz) stays below it.
* ``trigger_dps = 500``: above the 200-400 deg/s of quick voluntary looks (the host's
  ``head_turn_dps`` note), so looks rarely trigger; a rotational jolt (head whip) that
  moves the sensor little linearly still does. 0 disables the rate trigger.
* ``pre_s = 0.25``, ``post_s = 0.5``: the lead-in and the jolt plus the body's rebound
  (Nape defaults; 301 samples at 400 Hz).
* ``refractory_s = 1.0``: after a trigger no new trigger for this long, so one jolt and
  its rebound give one window (the host merges crossings closer than 0.5 s anyway).
* ``gravity_tau_s = 1.0``: time constant of the gravity low-pass, rounded to a power of
  two samples (1.28 s at 400 Hz). Long enough that a 150 ms jolt barely moves it;
  short enough to absorb a few deg/s of gyro bias (error ~ bias x tau x 1 g).

Window rules:

* window = ``pre`` samples before the trigger sample, the trigger sample, ``post``
  samples after: ``total = pre + 1 + post``. ``pre`` is shorter only when fewer samples
  had been pushed since start or ``reset`` (the header's ``pre_trigger`` says so).
* A trigger during a capture extends nothing: the window stays centred on the first
  trigger (the jolt's later samples are in it anyway); triggers are not even checked
  until the capture and the refractory period are over.
* A trigger while a complete window still waits to be taken (``ready()``) is counted in
  ``triggers`` and ``windows_dropped`` and captures nothing; ``push`` returns False
  for it (the JOLT flag promises an EVENT). It still uses up an ``event_id`` (the host
  sees the gap) and starts a refractory period.
* ``event_id`` increments per counted trigger (mod 2**16).

Usage in the raw-rate loop::

    scr = JoltScreen(2, 400)
    if scr.push(t_ms, acc_t, gyr_t, acc_h, gyr_h):
        hit = True                    # JOLT flag (step(..., jolt=hit)) on the next fused sample
    if scr.ready():                   # when the link has room
        for pkt in scr.event_packets(max_value_len):
            outbox.extend(fragmenter.split(pkt))
"""

import struct
import sys
from array import array

import micropython
from micropython import const

import wire

# Gravity estimate fixed point: 1 mg = 4096 units.
_GF = const(12)
# Gravity estimate clamp: +-2 g per axis (a larger "gravity" is not gravity).
_G_MAX_MG = const(2000)
_G_MAX = const(8192000)  # _G_MAX_MG << _GF
# Gyro rotation of the estimate: ((cross >> _XS) * km) >> _KS.
_XS = const(9)
_KS = const(7)
_SMALL_MAX = const(0x3FFFFFFF)  # largest small int on 32-bit ports (2**30 - 1)
# Largest trigger whose squared 3-axis sum stays a small int: 3 * 18918**2 < 2**30.
_MAX_TRIGGER = const(18918)

TRIGGER_MG = const(350)
TRIGGER_DPS = const(500)
PRE_S = 0.25
POST_S = 0.5
REFRACTORY_S = 1.0
GRAVITY_TAU_S = 1.0

_EVENT_FMT = "<BBBBHHHHHI"
_LITTLE = sys.byteorder == "little"


def event_per_packet(imu_mask, max_value_len):
    """EVENT samples per packet so a packet fits one notification of ``max_value_len``.

    Never below 1 (at the 20-byte default value length even one sample does not fit:
    the Fragmenter then splits each packet) and never above what a 512-byte packet or
    the u8 ``count`` allows.
    """
    size = 12 * wire.imu_count(imu_mask)
    n = (max_value_len - 1 - wire.EVENT_HEADER) // size
    top = (wire.MAX_PACKET - wire.EVENT_HEADER) // size
    if n > top:
        n = top
    if n > 255:
        n = 255
    return n if n >= 1 else 1


def encode_event_i16(imu_mask, event_id, first_index, total, pre_trigger, rate_hz,
                     trigger_t_ms, data, start, count):
    """One EVENT packet from int16 wire-unit samples; byte-identical to ``wire.encode_event``.

    ``data`` is an ``array('h')`` (or any int sequence) in EVENT sample layout: per
    sample, per IMU present (trunk first) acc x, y, z in mg then gyr x, y, z in 0.1 deg/s
    (6 values per IMU). Samples ``start .. start + count - 1`` go into the packet.
    Values must already be in int16 range.
    """
    n6 = 6 * wire.imu_count(imu_mask)
    hdr = struct.pack(
        _EVENT_FMT, wire.VERSION, wire.TYPE_EVENT, imu_mask, count, event_id & 0xFFFF,
        first_index, total, pre_trigger, rate_hz, trigger_t_ms & 0xFFFFFFFF,
    )
    a = start * n6
    b = a + count * n6
    if _LITTLE and isinstance(data, array):
        return hdr + bytes(memoryview(data)[a:b])
    body = bytearray(2 * (b - a))
    off = 0
    for i in range(a, b):
        struct.pack_into("<h", body, off, data[i])
        off += 2
    return hdr + body


def acc_ratio(acc_lsb_per_g):
    """``(num, den)`` for ``scale_counts``: accelerometer counts -> mg = counts * 1000 / lsb.

    ``acc_lsb_per_g`` is the driver's ``acc_lsb_per_g`` (16384, 8192, 4096 or 2048).
    """
    den = int(acc_lsb_per_g + 0.5)
    if den <= 0:
        raise ValueError("acc_lsb_per_g must be > 0")
    return 1000, den


def gyr_ratio(gyr_lsb_per_dps):
    """``(num, den)`` for ``scale_counts``: gyroscope counts -> 0.1 deg/s = counts * 10 / lsb.

    ``gyr_lsb_per_dps`` is the driver's ``gyr_lsb_per_dps`` (131, 65.5, 32.8, 16.4, ...;
    one decimal is kept, which is exact for the MPU-6050/6500 and ICM-42688-P ranges).
    """
    den = int(gyr_lsb_per_dps * 10 + 0.5)
    if den <= 0:
        raise ValueError("gyr_lsb_per_dps must be > 0")
    return 100, den


def scale_counts(raw, i, num, den, out):
    """``out[0..2]`` = sample ``i`` of ``raw`` (x, y, z interleaved, as ``read_fifo``
    fills it) times ``num / den``, rounded half away from zero like the wire encoder.

    Integers only (|raw * num * 2| <= 6.6e7, a small int), no allocation.
    """
    j = 3 * i
    d2 = 2 * den
    for k in range(3):
        v = 2 * raw[j + k] * num
        out[k] = (v + den) // d2 if v >= 0 else -((den - v) // d2)


# Per-sample state of a JoltScreen (array('i'), shared with the viper code below).
_S_SG = const(0)  # word 0x80000000: sign-extends 32-bit loads on 64-bit hosts (fusion.py)
_S_W = const(1)  # ring slot of the next sample
_S_SEEN = const(2)  # samples in the ring since start/reset (capped at cap)
_S_FRESH = const(3)  # 1: gravity estimate not initialised yet
_S_REFR = const(4)  # samples left in the refractory period
_S_LEFT = const(5)  # samples still to capture (0: not capturing)
_S_PEND = const(6)  # 1: a complete window waits in _win
_S_CAP = const(7)  # ring capacity, samples
_S_STRIDE = const(8)  # int16 values per sample (6 per IMU)
_S_T = const(9)  # trigger_mg << _GF
_S_T2 = const(10)  # trigger_mg ** 2
_S_TW = const(11)  # rate trigger, 0.1 deg/s (0: off)
_S_TW2 = const(12)
_S_SHIFT = const(13)  # gravity low-pass shift
_S_KM = const(14)  # gyro rotation multiplier
_S_REFRN = const(15)  # refractory period, samples
_S_PRE = const(16)
_S_POST = const(17)
_S_TWO = const(18)  # 1: two IMUs
_S_CSLOT = const(19)  # capture: slot of the trigger sample
_S_CPRE = const(20)  # capture: samples before the trigger
_S_CT = const(21)  # capture: trigger time, ms ticks
_S_LEN = const(22)

# push() result bits (see _push)
R_TRIGGER = const(1)  # a trigger was counted (uses an event_id)
R_CAPTURE = const(2)  # ... and starts a capture (push returns True)
R_DROPPED = const(4)  # ... but a window still waits: counted in windows_dropped
R_COMPLETE = const(8)  # a capture completed: copy the window out (JoltScreen._complete)
S_CT = const(_S_CT)  # state slot of the trigger time: the sampler fills it on R_CAPTURE


@micropython.viper
def _imu(st, ring, grav, k: int, base: int, acc, gyr) -> int:
    """One IMU's sample into the ring at ``base``; gravity estimate (``grav[k..k+2]``)
    rotated with the gyro and low-passed; 1 if the sample exceeds a trigger. Integer
    arithmetic identical to the module docstring's (bounds < 2**30, see __init__)."""
    S = ptr32(st)
    R = ptr16(ring)
    G = ptr32(grav)
    A = ptr16(acc)
    Wv = ptr16(gyr)
    sg = int(S[_S_SG])
    ax = (int(A[0]) ^ 0x8000) - 0x8000
    ay = (int(A[1]) ^ 0x8000) - 0x8000
    az = (int(A[2]) ^ 0x8000) - 0x8000
    wx = (int(Wv[0]) ^ 0x8000) - 0x8000
    wy = (int(Wv[1]) ^ 0x8000) - 0x8000
    wz = (int(Wv[2]) ^ 0x8000) - 0x8000
    R[base] = ax
    R[base + 1] = ay
    R[base + 2] = az
    R[base + 3] = wx
    R[base + 4] = wy
    R[base + 5] = wz
    gx = (int(G[k]) ^ sg) - sg
    gy = (int(G[k + 1]) ^ sg) - sg
    gz = (int(G[k + 2]) ^ sg) - sg
    cx = gx >> _GF
    cy = gy >> _GF
    cz = gz >> _GF
    km = int(S[_S_KM])
    gx += (((cy * wz - cz * wy) >> _XS) * km) >> _KS
    gy += (((cz * wx - cx * wz) >> _XS) * km) >> _KS
    gz += (((cx * wy - cy * wx) >> _XS) * km) >> _KS
    ex = (ax << _GF) - gx
    ey = (ay << _GF) - gy
    ez = (az << _GF) - gz
    sh = int(S[_S_SHIFT])
    gx += ex >> sh
    gy += ey >> sh
    gz += ez >> sh
    if gx > _G_MAX:
        gx = _G_MAX
    elif gx < 0 - _G_MAX:
        gx = 0 - _G_MAX
    if gy > _G_MAX:
        gy = _G_MAX
    elif gy < 0 - _G_MAX:
        gy = 0 - _G_MAX
    if gz > _G_MAX:
        gz = _G_MAX
    elif gz < 0 - _G_MAX:
        gz = 0 - _G_MAX
    G[k] = gx
    G[k + 1] = gy
    G[k + 2] = gz
    t = int(S[_S_T])
    if ex > t or ex < 0 - t or ey > t or ey < 0 - t or ez > t or ez < 0 - t:
        return 1
    ex = ex >> _GF
    ey = ey >> _GF
    ez = ez >> _GF
    if ex * ex + ey * ey + ez * ez > int(S[_S_T2]):
        return 1
    t = int(S[_S_TW])
    if t:
        if wx > t or wx < 0 - t or wy > t or wy < 0 - t or wz > t or wz < 0 - t:
            return 1
        if wx * wx + wy * wy + wz * wz > int(S[_S_TW2]):
            return 1
    return 0


@micropython.viper
def _init_gravity(grav, k: int, acc):
    G = ptr32(grav)
    A = ptr16(acc)
    for i in range(3):
        v = ((int(A[i]) ^ 0x8000) - 0x8000) << _GF
        if v > _G_MAX:
            v = _G_MAX
        elif v < 0 - _G_MAX:
            v = 0 - _G_MAX
        G[k + i] = v


@micropython.viper
def _push(st, ring, grav, acc_t, gyr_t, acc_h, gyr_h, t_ms: int) -> int:
    """``JoltScreen.push`` without the Python bookkeeping of rare events: returns the
    ``R_*`` bits (0 on almost every sample). Inputs are ``array('h')`` of 3 (``acc_h``,
    ``gyr_h`` ignored with one IMU). Native code with its frame on the C stack: no heap
    frame, no allocation (the sampler calls it straight from its viper loop)."""
    S = ptr32(st)
    slot = int(S[_S_W])
    base = slot * int(S[_S_STRIDE])
    two = int(S[_S_TWO])
    if int(S[_S_FRESH]):
        S[_S_FRESH] = 0
        _init_gravity(grav, 0, acc_t)
        if two:
            _init_gravity(grav, 3, acc_h)
    hit = int(_imu(st, ring, grav, 0, base, acc_t, gyr_t))
    if two:
        if int(_imu(st, ring, grav, 3, base + 6, acc_h, gyr_h)):
            hit = 1
    cap = int(S[_S_CAP])
    nxt = slot + 1
    S[_S_W] = 0 if nxt == cap else nxt
    seen = int(S[_S_SEEN])
    if seen < cap:
        S[_S_SEEN] = seen + 1
    refr = int(S[_S_REFR])
    if refr:
        S[_S_REFR] = refr - 1
    left = int(S[_S_LEFT])
    if left:
        left -= 1
        S[_S_LEFT] = left
        if left == 0:
            return R_COMPLETE
        return 0
    if refr or not hit:
        return 0
    S[_S_REFR] = S[_S_REFRN]
    if int(S[_S_PEND]):
        return R_TRIGGER | R_DROPPED
    S[_S_CSLOT] = slot
    pre = int(S[_S_PRE])
    S[_S_CPRE] = seen if seen < pre else pre
    S[_S_CT] = t_ms
    post = int(S[_S_POST])
    if post:
        S[_S_LEFT] = post
        return R_TRIGGER | R_CAPTURE
    return R_TRIGGER | R_CAPTURE | R_COMPLETE


class JoltScreen:
    """Raw-rate jolt trigger with a pre/post ring buffer that becomes EVENT packets.

    Args:
        imu_count: 1 (trunk; ``imu_mask`` 1) or 2 (trunk and head; ``imu_mask`` 3).
        rate_hz: raw sample rate, Hz, integer 200..65535 (400 on the board); one
            ``push`` per raw sample. Goes into the EVENT header.
        pre_s: seconds kept before the trigger sample (default 0.25).
        post_s: seconds captured after it (default 0.5).
        trigger_mg: linear-acceleration trigger, mg (default 350 = 0.35 g, harsh braking).
        trigger_dps: angular-rate trigger, deg/s (default 500; 0 disables it).
        refractory_s: no new trigger for this long after one, s (default 1.0).
        gravity_tau_s: gravity low-pass time constant, s (default 1.0; rounded to a
            power of two samples).
        event_id: ``event_id`` of the first trigger (default 0).

    Raises:
        ValueError: an IMU count other than 1 or 2, a rate outside 200..65535 Hz, a
            negative duration, a window over 65535 samples, or a trigger <= 0 mg or
            above 18918 mg / 1891.8 deg/s.

    Attributes: ``imu_mask``, ``rate_hz``, ``pre``, ``post`` (samples), counters
    ``triggers``, ``windows_sent``, ``windows_dropped``.
    """

    def __init__(self, imu_count, rate_hz, pre_s=PRE_S, post_s=POST_S, trigger_mg=TRIGGER_MG,
                 trigger_dps=TRIGGER_DPS, refractory_s=REFRACTORY_S, gravity_tau_s=GRAVITY_TAU_S,
                 event_id=0):
        if imu_count != 1 and imu_count != 2:
            raise ValueError("imu_count must be 1 or 2")
        rate = int(rate_hz + 0.5)
        if rate < 200 or rate > 65535:
            raise ValueError("rate_hz must be 200..65535")
        if pre_s < 0 or post_s < 0 or refractory_s < 0 or gravity_tau_s <= 0:
            raise ValueError("durations must be >= 0 (gravity_tau_s > 0)")
        t_mg = int(trigger_mg + 0.5)
        t_w = int(trigger_dps * 10 + 0.5)  # 0.1 deg/s
        if t_mg <= 0 or t_mg > _MAX_TRIGGER or t_w < 0 or t_w > _MAX_TRIGGER:
            raise ValueError("trigger_mg must be 1..18918, trigger_dps 0..1891.8")
        self.imu_count = imu_count
        self.imu_mask = 1 if imu_count == 1 else 3
        self.rate_hz = rate
        self.pre = int(pre_s * rate + 0.5)
        self.post = int(post_s * rate + 0.5)
        cap = self.pre + 1 + self.post
        if cap > 65535:
            raise ValueError("window longer than 65535 samples")
        self._cap = cap
        self._stride = 6 * imu_count
        self._ring = array("h", bytearray(2 * cap * self._stride))
        self._win = array("h", bytearray(2 * cap * self._stride))
        self._rmv = memoryview(self._ring)
        self._wmv = memoryview(self._win)
        self._grav = array("i", bytearray(4 * 3 * imu_count))
        self._t = t_mg << _GF
        self._t2 = t_mg * t_mg
        self._tw = t_w
        self._tw2 = t_w * t_w
        # Gravity low-pass: alpha = 2**-shift, shift = round(log2(tau * rate)).
        n = gravity_tau_s * rate
        sh = 0
        while (1 << (sh + 1)) <= n * 1.4142135623730951:
            sh += 1
        self._shift = sh if sh >= 1 else 1
        self.gravity_tau_s = (1 << self._shift) / rate  # effective time constant, s
        # Rotation: dG [mg/4096] = (g x w)[mg * 0.1 dps] * (pi / 1800 rad/s) / rate * 4096.
        km = int(4096 * 3.141592653589793 / (1800 * rate) * (1 << (_XS + _KS)) + 0.5)
        # |g| <= 2000 mg per axis (clamped), |w| <= 32768: |cross| <= 1.31e8.
        if ((2 * _G_MAX_MG * 32768) >> _XS) * km > _SMALL_MAX:
            raise ValueError("rate_hz too low for the integer gyro update")
        self._km = km
        self._refr_n = int(refractory_s * rate + 0.5)
        self._next_id = event_id & 0xFFFF
        self.triggers = 0
        self.windows_sent = 0
        self.windows_dropped = 0
        # per-sample state (viper, _S_*)
        st = array("i", bytearray(4 * _S_LEN))
        st[_S_SG] = -0x80000000
        st[_S_FRESH] = 1
        st[_S_CAP] = cap
        st[_S_STRIDE] = self._stride
        st[_S_T] = self._t
        st[_S_T2] = self._t2
        st[_S_TW] = self._tw
        st[_S_TW2] = self._tw2
        st[_S_SHIFT] = self._shift
        st[_S_KM] = km
        st[_S_REFRN] = self._refr_n
        st[_S_PRE] = self.pre
        st[_S_POST] = self.post
        st[_S_TWO] = 1 if imu_count == 2 else 0
        self._st = st
        self._cap_id = 0
        # complete window waiting in _win
        self._w_total = 0
        self._w_pre = 0
        self._w_t = 0
        self._w_id = 0

    def reset(self):
        """Forget history and the gravity estimate (call after a gap in the raw samples).

        A capture in progress is abandoned and counted in ``windows_dropped``; a complete
        window waiting to be taken is kept. Counters and ``event_id`` continue.
        """
        st = self._st
        if st[_S_LEFT]:
            self.windows_dropped += 1
        st[_S_LEFT] = 0
        st[_S_SEEN] = 0
        st[_S_FRESH] = 1
        st[_S_REFR] = 0

    def push(self, t_ms, acc_t, gyr_t, acc_h=None, gyr_h=None):
        """Add one raw sample; True on the sample that triggers a capture.

        Args:
            t_ms: device time of this sample, ms (``time.ticks_ms()``; only the trigger
                sample's time is kept, as the EVENT ``trigger_t_ms``).
            acc_t, gyr_t: trunk acc x, y, z (int, mg) and gyr x, y, z (int, 0.1 deg/s),
                ``array('h')`` of 3.
            acc_h, gyr_h: the same for the head IMU (required when ``imu_count`` is 2).

        Returns False for triggers that cannot capture (window still pending: counted
        in ``windows_dropped``). The per-sample work is the viper ``_push`` (no heap
        frame, no allocation); the sampling loop calls ``_push`` itself and ``event``
        with its result. Only the sample that completes a window allocates (the copy
        out of the ring makes 2-4 small memoryview objects).
        """
        if acc_h is None:
            acc_h = acc_t
            gyr_h = gyr_t
        r = _push(self._st, self._ring, self._grav, acc_t, gyr_t, acc_h, gyr_h, t_ms)
        if r:
            return self.event(r)
        return False

    def event(self, r):
        """Bookkeeping of a non-zero ``_push`` result (rare: triggers and completed
        windows); returns True when a capture started."""
        ok = False
        if r & R_TRIGGER:
            self.triggers += 1
            eid = self._next_id
            self._next_id = (eid + 1) & 0xFFFF
            if r & R_DROPPED:
                self.windows_dropped += 1
            if r & R_CAPTURE:
                self._cap_id = eid
                ok = True
        if r & R_COMPLETE:
            self._complete()
        return ok

    def _complete(self):
        """Copy the captured window out of the ring (the ring keeps running)."""
        sv = self._st
        cpre = sv[_S_CPRE]
        n = cpre + 1 + self.post
        cap = self._cap
        s = sv[_S_CSLOT] - cpre
        if s < 0:
            s += cap
        st = self._stride
        rm = self._rmv
        wm = self._wmv
        first = cap - s
        if first >= n:
            wm[0:n * st] = rm[s * st:(s + n) * st]
        else:
            wm[0:first * st] = rm[s * st:cap * st]
            wm[first * st:n * st] = rm[0:(n - first) * st]
        sv[_S_PEND] = 1
        self._w_total = n
        self._w_pre = cpre
        self._w_t = sv[_S_CT]
        self._w_id = self._cap_id

    def capturing(self):
        """True while samples after a trigger are still being captured."""
        return self._st[_S_LEFT] > 0

    def ready(self):
        """True when a complete window waits for ``event_packets``."""
        return self._st[_S_PEND] != 0

    def window(self):
        """The waiting window without releasing it, for inspection:
        ``(event_id, total, pre_trigger, trigger_t_ms, data)`` where ``data`` is a
        memoryview of ``total * 6 * imu_count`` int16 values (EVENT layout), valid until
        the next capture completes; None when no window waits."""
        if not self._st[_S_PEND]:
            return None
        n = self._w_total * self._stride
        return (self._w_id, self._w_total, self._w_pre, self._w_t, self._wmv[0:n])

    def event_packets(self, max_value_len):
        """EVENT packets (list of bytes) carrying the waiting window, then release it.

        Each packet holds ``event_per_packet(imu_mask, max_value_len)`` samples (the
        last one fewer), so at an MTU of 247 (244-byte values) every packet is one
        notification; pass each through the characteristic's ``wire.Fragmenter``.
        Returns [] when no window waits. Allocates the packets (not a hot path).
        """
        if not self._st[_S_PEND]:
            return []
        per = event_per_packet(self.imu_mask, max_value_len)
        total = self._w_total
        out = []
        i = 0
        while i < total:
            n = total - i
            if n > per:
                n = per
            out.append(encode_event_i16(self.imu_mask, self._w_id, i, total, self._w_pre,
                                        self.rate_hz, self._w_t, self._win, i, n))
            i += n
        self._st[_S_PEND] = 0
        self.windows_sent += 1
        return out

    def stats(self):
        """Counters as a dict (for the status characteristic)."""
        return {"triggers": self.triggers, "windows_sent": self.windows_sent,
                "windows_dropped": self.windows_dropped}
