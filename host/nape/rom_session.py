"""The clock of a live guided range-of-motion test (``nape rom`` with a device).

The test clock starts at the first live sample. It is the sample clock (samples received
or lost since then ÷ sample rate: the clock of the analysis) or the wall clock since that
sample, whichever is ahead — so prompts keep coming while the link is briefly lost. The
recording stops when the sample clock reaches the end of the protocol, or
``LIVE_GRACE_S`` after it by the wall clock if samples stopped arriving (the analysis
then reports them as lost).
"""

from __future__ import annotations

#: Seconds (wall clock) past the end of the protocol after which a live recording stops
#: even if the link lost samples that have not come back.
LIVE_GRACE_S = 15.0


def mmss(t: float) -> str:
    """Seconds as ``m:ss``."""
    return f"{int(t) // 60}:{int(t) % 60:02d}"


class LiveTestClock:
    """Where a live guided test stands: the test clock, the prompts due and whether it is over.

    ``stats`` (the recorder's RecordStats), ``rate_hz`` (the device's sample rate, Hz) and
    ``t0`` (monotonic time of the first sample, s) are set by the caller as the stream comes in.
    """

    def __init__(self, protocol, transport, virtual: bool) -> None:
        self.protocol = protocol
        self.total_s = float(protocol.total_s)
        self.prompts = protocol.prompts()
        self.transport = transport
        self.virtual = virtual
        self.stats = None
        self.rate_hz = 0.0
        self.t0: float | None = None  # monotonic time of the first sample
        self.shown = 0

    def sample_clock_s(self) -> float:
        """Seconds of the test covered by samples received or counted lost."""
        s = self.stats
        if s is None or not self.rate_hz:
            return 0.0
        return (s.samples + s.lost_samples) / self.rate_hz

    def clock_s(self, now: float) -> float:
        """Test time, s: the sample clock or the wall clock since the first sample, whichever is ahead."""
        if self.t0 is None:
            return 0.0
        return max(self.sample_clock_s(), now - self.t0)

    def due(self, now: float) -> list[tuple[float, str, str]]:
        """Prompts reached since the last call."""
        t = self.clock_s(now)
        out = []
        while self.t0 is not None and self.shown < len(self.prompts) and self.prompts[self.shown][0] <= t:
            out.append(self.prompts[self.shown])
            self.shown += 1
        return out

    def done(self, now: float) -> bool:
        """The protocol is fully recorded (sample clock), or samples stopped coming for too long."""
        if self.t0 is None:
            return False
        return self.sample_clock_s() >= self.total_s or now - self.t0 >= self.total_s + LIVE_GRACE_S
