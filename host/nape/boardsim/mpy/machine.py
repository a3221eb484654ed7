from umachine import *  # noqa: F401,F403  (this build: PinBase, Signal, idle, mem8/16/32, soft_reset, time_pulse_us)

# ``machine`` for the unix MicroPython in tests: the built-in module plus fakes.
#
# The unix port has no Pin, I2C, PWM, Timer or ADC; these stand-ins let firmware modules
# import and run. Test-only helpers (not in the real API) are marked "test helper".
#
# I2C wraps a bus object (e.g. ``fake_i2c.FakeI2C``) attached per bus id::
#
#     import machine, fake_i2c
#     bus = fake_i2c.FakeI2C()
#     machine.I2C.attach(0, bus)          # test helper
#     i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=400000)
#
# With nothing attached, the bus has no devices (every transfer raises OSError(19)).
#
# Timer is stepped by hand: ``machine.Timer.step(ms)`` (test helper) advances a virtual
# clock and runs the callbacks that fall due, in time order.

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_reset_cause = PWRON_RESET
_freq = 240000000
sleeps = []  # test helper: ("light"|"deep", ms) per call (the first 256 calls)
slept_ms = 0  # test helper: total ms in lightsleep (the bench's light-sleep fraction)
lightsleeps = 0  # test helper: lightsleep calls
sleep_hook = None  # test helper: called with ms before lightsleep returns (fill the FIFOs)


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    _freq = hz


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset_cause():
    return _reset_cause


def reset():
    raise SystemExit("machine.reset()")


def lightsleep(ms=0):
    """As on the ESP32: returns after ``ms``; the virtual clock (``Timer.now_ms``)
    advances by ``ms`` while every ``Timer`` stands still (the board's hardware timers
    are not clocked in light sleep: their due times move by ``ms``). ``sleep_hook(ms)``
    (test helper) lets the simulated world run meanwhile."""
    global slept_ms, lightsleeps
    if len(sleeps) < 256:
        sleeps.append(("light", ms))
    slept_ms += ms
    lightsleeps += 1
    if ms > 0:
        for t in Timer._active:
            t._due += ms
        Timer.now_ms += ms
    if sleep_hook is not None:
        sleep_hook(ms)


def deepsleep(ms=0):
    sleeps.append(("deep", ms))
    raise SystemExit("machine.deepsleep()")


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    _by_id = {}  # GPIO -> the newest Pin on it (drive_gpio)

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._handler = None
        self._trigger = 0
        if value is not None:
            self._value = 1 if value else 0
        Pin._by_id[id] = self

    @classmethod
    def drive_gpio(cls, id, level):
        """Test helper: an external signal (a button) sets the level of GPIO ``id``;
        False when the firmware has no Pin on it."""
        pin = cls._by_id.get(id)
        if pin is None:
            return False
        pin.drive(level)
        return True

    def init(self, mode=-1, pull=-1, value=None, **kw):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self._value = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0

    def irq(self, handler=None, trigger=3, **kw):
        self._handler = handler
        self._trigger = trigger
        return self

    def drive(self, level):
        """Test helper: an external signal sets the input level; edges fire the IRQ."""
        level = 1 if level else 0
        old = self._value
        self._value = level
        if self._handler is None or old == level:
            return
        if (level and self._trigger & Pin.IRQ_RISING) or (not level and self._trigger & Pin.IRQ_FALLING):
            self._handler(self)


class _NoBus:
    def _nodev(self, *a, **kw):
        raise OSError(19)

    readfrom_mem_into = readfrom_mem = writeto_mem = readfrom_into = writeto = _nodev

    def scan(self):
        return []


class I2C:
    _buses = {}

    @classmethod
    def attach(cls, id, bus):
        """Test helper: I2C(id) objects made from now on use ``bus``."""
        cls._buses[id] = bus

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq
        self.bus = I2C._buses.get(id) or _NoBus()

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.freq = freq

    def scan(self):
        return self.bus.scan()

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self.bus.readfrom_mem_into(addr, memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        return self.bus.readfrom_mem(addr, memaddr, nbytes)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self.bus.writeto_mem(addr, memaddr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        self.bus.readfrom_into(addr, buf, stop)

    def writeto(self, addr, buf, stop=True):
        return self.bus.writeto(addr, buf, stop)

    def deinit(self):
        pass


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, *, freq=400000, timeout=50000):
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)


class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        self.pin = dest
        self._freq = freq or 5000
        self._duty_u16 = 0
        self._duty_ns = None
        self.active = True
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns)

    def init(self, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        if freq is not None:
            self._freq = freq
        if duty_u16 is not None:
            self._duty_u16 = duty_u16
            self._duty_ns = None
        if duty_ns is not None:
            self._duty_ns = duty_ns
            self._duty_u16 = min(65535, int(duty_ns * self._freq * 65536 // 1000000000))
        self.active = True

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value

    def duty_u16(self, value=None):
        if value is None:
            return self._duty_u16
        self._duty_u16 = value
        self._duty_ns = None

    def duty_ns(self, value=None):
        if value is None:
            if self._duty_ns is not None:
                return self._duty_ns
            return self._duty_u16 * 1000000000 // (65536 * self._freq)
        self.init(duty_ns=value)

    def deinit(self):
        self.active = False
        self._duty_u16 = 0


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=None):
        self.pin = pin
        self._atten = atten
        self._u16 = 0
        self._uv = 0

    def set(self, u16=0, uv=None):
        """Test helper: what the next reads return (raw 0..65535, microvolts)."""
        self._u16 = u16
        self._uv = uv if uv is not None else u16 * 3300000 // 65535

    def atten(self, a):
        self._atten = a

    def width(self, w):
        pass

    def read_u16(self):
        return self._u16

    def read_uv(self):
        return self._uv

    def read(self):
        return self._u16 >> 4


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    now_ms = 0  # virtual clock of all timers, ms
    _active = []

    def __init__(self, id=-1, **kw):
        self.id = id
        self._callback = None
        self._period = 0
        self._mode = Timer.PERIODIC
        self._due = 0
        if kw:
            self.init(**kw)

    def init(self, *, mode=1, period=-1, freq=-1, callback=None, **kw):
        if freq > 0:
            period = 1000 / freq
        if period <= 0:
            raise ValueError("period or freq required")
        self._mode = mode
        self._period = period
        self._callback = callback
        self._due = Timer.now_ms + period
        if self not in Timer._active:
            Timer._active.append(self)

    def deinit(self):
        if self in Timer._active:
            Timer._active.remove(self)

    def value(self):
        return int(self._due - Timer.now_ms)

    @classmethod
    def step(cls, ms):
        """Test helper: advance the virtual clock by ``ms``, firing due callbacks in order.

        Returns the number of callbacks run.
        """
        end = cls.now_ms + ms
        fired = 0
        while True:
            nxt = None
            for t in cls._active:
                if t._due <= end and (nxt is None or t._due < nxt._due):
                    nxt = t
            if nxt is None:
                break
            cls.now_ms = nxt._due
            if nxt._mode == Timer.PERIODIC:
                nxt._due += nxt._period
            else:
                cls._active.remove(nxt)
            if nxt._callback is not None:
                nxt._callback(nxt)
            fired += 1
        cls.now_ms = end
        return fired

    @classmethod
    def reset_all(cls):
        """Test helper: drop every timer and restart the virtual clock at 0."""
        cls._active = []
        cls.now_ms = 0


def time_ms():
    """Test helper: the Timer virtual clock (ms); time.ticks_ms() stays the real one."""
    return Timer.now_ms

