"""Reading a recording block by block: packets → decoded samples on one timeline.

Memory stays bounded: the file is read chunk by chunk, ``batch`` packets are decoded at
a time (:func:`nape.wire.decode_samples_many`), and only a short reorder window is held back.

Boots. Sequence numbers and device time (``t_ms``) restart at 0 when the board reboots
(protocol/SPEC.md, "Boots"); the recorder marks each new boot with a NOTE
``{"event": "boot", "boot_id": ...}`` before the new boot's packets (protocol/RECORDING.md).
Each boot is read as its own sequence space: ordering, duplicates and lost samples are
worked out within a boot only, and at a boot note everything held back of the old boot is
passed on first. Boots are placed on the recording's timeline in file order: a boot's
*epoch* (the host time at which its device time was 0) is estimated from the host receive
times as the smallest ``host_time_s − t_ms/1000`` over its recent PACKETS chunks (each
chunk's newest sample; transmission delay only ever adds, so the smallest is the closest;
the last one to two :data:`EPOCH_WINDOW_S` of host time, so clock drift does not add up), for
a new boot over the chunks of its first decoded batch together with the boot note's own
host time (the host learns of a boot after it happened). The new boot's device time 0 lies
``epoch_new − epoch_old`` seconds after the old boot's device time 0 on the timeline, and
never before the old boot's last sample. The time in between is a gap with reason
"device reboot".

Order: within a boot, samples are put in sequence-number order, whatever order their
packets were written in. The ``BACKFILL`` flag (a sample re-sent from the device's offline
buffer, protocol/SPEC.md) is ignored here: a backfilled sample is a normal sample placed by
its ``seq``. A sample arriving up to :data:`REORDER_S` (of sample time) behind the newest
one still lands in its place; one arriving later than that, after its place was passed on,
is dropped and counted in ``late`` (the analysis then sees it as a lost sample; so is a copy
of a sample already passed on). A sample whose ``seq`` is still held back is dropped as a
duplicate and counted in ``duplicates``. Packets are decoded ``BATCH_PACKETS`` at a time
and a batch is always put in order as a whole. A sequence-number step that the device clock
contradicts (:class:`_Unwrap`: a jump while ``t_ms`` runs on normally) is corruption, not a
gap: replaced by the clock's step and counted in ``contradicted``.

Timing and rate. The analysis runs at one fixed rate (the *grid*, period
``grid_period_us``: the first sample's ``period_us``, or the header's ``sample_rate_hz``
when that is faster by at most 2×, the power saver's ratio; :meth:`BlockReader.header_rate_words`
says when the header matches none of the packets' rates). Each sample's time is its packet's
``t_ms`` plus ``i × period_us`` of that packet (the firmware's power saver switches 100 → 50 Hz and back mid-stream). Within
a run of samples of one ``period_us`` the positions follow the sequence numbers (so a lost
sample keeps its place); a run starts where ``period_us`` changes, at its first sample's
``t_ms``. Samples at the grid rate map one to one onto grid points (no copy); samples of
another rate are resampled onto the grid by linear interpolation (quaternions component-
wise with signs aligned, then normalised), never across a gap. ``Block.index`` is the grid
index (time = index × grid period from the first sample); ``Block.samples`` counts the
recorded samples behind a block. Gaps (sequence numbers missing within a boot, and the
time between boots) are collected in ``gaps`` with their reason from the recorder's
``gap`` notes: "lost in transmission", "on-board buffer overflow", "device reboot",
"on-board log full: oldest posture data dropped" (the board's LOG_DROPPED marks, taken
from the MARKS packets wherever they are in the file).

Mixed rates: the offline day log. LOG packets (wire type 3: both IMUs' orientation only, at
a reduced rate, 10 Hz; sequence numbers in the SAMPLES sequence space) are ordered,
deduplicated and placed with the SAMPLES exactly like them, but they are never resampled
onto the grid and never interpolated with a neighbouring full-rate sample: each LOG sample
lands on its nearest grid point in a :class:`Block` with ``reduced`` True (its ``acc`` and
``gyr`` NaN, ``flags`` 0). MARKS packets (type 4) are collected in ``marks`` (deduplicated
by ``mark_id`` within a boot; :meth:`BlockReader.mark_times` puts them on the timeline).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import wire, wire_marks
from ..wire_log import LogPacket

BATCH_PACKETS = 4000
REORDER_S = 60.0
#: Host seconds over which a boot's epoch is the smallest estimate (module docstring).
EPOCH_WINDOW_S = 60.0
_FIELDS = ("t_ms", "flags", "quat", "acc", "gyr", "period_us", "log")
_VALUES = ("flags", "quat", "acc", "gyr")
_HDR = struct.Struct("<BBBBIIH")  # SAMPLES header (protocol/SPEC.md)

REASON_TRANSMISSION = "lost in transmission"
REASON_OVERFLOW = "on-board buffer overflow"
REASON_REBOOT = "device reboot"
REASON_DAMAGE = "damaged file"  # the samples were in a part of the file that could not be read
REASON_LOG_FULL = "on-board log full: oldest posture data dropped"  # a LOG_DROPPED mark (recorder's twin)


@dataclass
class Block:
    """Consecutive samples of one imu_mask on the analysis grid. Arrays are [sample, imu, axis]."""

    index: np.ndarray  # (n,) int64 grid index from the first sample (gaps skip indices)
    t_ms: np.ndarray  # (n,) device time of the boot, ms (interpolated for resampled points)
    flags: np.ndarray
    quat: np.ndarray  # (n, k, 4) firmware orientation
    acc: np.ndarray  # (n, k, 3) m/s^2
    gyr: np.ndarray  # (n, k, 3) rad/s
    period_s: float  # grid period, s
    samples: int = -1  # recorded samples behind this block (-1: len(index))
    reduced: bool = False  # the offline day log (LOG): orientation only, at ``source_period_s``
    source_period_s: float | None = None  # period of the samples as recorded (reduced blocks)

    def __post_init__(self):
        if self.samples < 0:
            self.samples = len(self.index)


@dataclass
class Gap:
    """Missing data on the timeline: grid positions ``start`` (first missing point, may be
    fractional) to ``end`` (next sample), ``missing_samples`` recorded samples (None: unknown)."""

    start: float
    end: float
    missing_samples: int | None
    reason: str
    boot: int  # 1-based boot number in the file
    from_seq: int | None = None  # first missing sequence number (u32), when known


@dataclass
class _Unwrap:
    """32-bit sequence numbers (in arrival order) → continuous int64 sequence numbers.

    Each step between consecutive samples is taken as the signed difference modulo 2³²,
    so a wrap (…, 2³²−1, 0, …) continues upwards and a sample sent again or late (a smaller
    ``seq``) steps back instead of looking like a jump of almost 2³².

    The device clock is the witness of a step: a sequence number that jumps while ``t_ms``
    runs on normally (forward by more than the clock allows, or back by more than
    ``back_limit`` samples while the clock goes forward) is corruption or an unannounced
    reboot, not hours of lost samples. Such a step is replaced by the one the clock shows
    (at least 1), so the samples on both sides are kept on the clock's time and no gap is
    made up; ``contradicted`` counts them.
    """

    last_raw: int | None = None
    last: int = 0
    last_t_ms: float | None = None
    last_period_us: int | None = None
    back_limit: int = 1 << 30
    contradicted: int = 0

    def __call__(self, seq: np.ndarray, t_ms: np.ndarray | None = None,
                 period_us: np.ndarray | None = None, log: np.ndarray | None = None) -> np.ndarray:
        seq = seq.astype(np.int64)
        prev = np.concatenate([[seq[0] if self.last_raw is None else self.last_raw], seq[:-1]])
        step = ((seq - prev + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        if t_ms is not None and period_us is not None:
            step = self._witness(step, np.asarray(t_ms, float), np.asarray(period_us, np.int64),
                                 np.zeros(len(seq), bool) if log is None else np.asarray(log, bool))
        base = int(seq[0]) if self.last_raw is None else self.last
        out = base + np.cumsum(step)
        self.last_raw, self.last = int(seq[-1]), int(out[-1])
        return out

    def _witness(self, step: np.ndarray, t_ms: np.ndarray, per: np.ndarray, log: np.ndarray) -> np.ndarray:
        """``step`` with the steps the device clock contradicts replaced by the clock's own.
        Only steps between two full-rate samples are judged: the day log's samples (``log``)
        count one sequence number per 100 ms and come after the batch's full-rate ones."""
        t_prev = np.concatenate([[t_ms[0] if self.last_t_ms is None else self.last_t_ms], t_ms[:-1]])
        p_prev = np.concatenate([[per[0] if self.last_period_us is None else self.last_period_us], per[:-1]])
        judged = ~log & ~np.concatenate([[self.last_t_ms is None], log[:-1]])
        self.last_t_ms, self.last_period_us = (None, None) if log[-1] else (float(t_ms[-1]), int(per[-1]))
        dt_ms = t_ms - t_prev
        dt_ms = np.where(dt_ms < -(2.0 ** 31), dt_ms + 2.0 ** 32, dt_ms)  # the u32 ms clock wrapped
        dt_us = dt_ms * 1000.0
        lo = dt_us / np.maximum(np.maximum(per, p_prev), 1)  # samples the clock allows, slowest rate
        hi = dt_us / np.maximum(np.minimum(per, p_prev), 1)  # … fastest rate
        # ms resolution and the power saver's rate change: a generous margin either way
        fwd = (step > 1) & (step > 2 * hi + 8)
        back = (step < -self.back_limit) & (dt_us >= 0)
        bad = (fwd | back) & judged
        if not bad.any():
            return step
        self.contradicted += int(bad.sum())
        step = step.copy()
        step[bad] = np.maximum(1, np.rint(lo[bad])).astype(np.int64)
        return step


@dataclass
class _Boot:
    """One boot's sequence space and its place on the timeline."""

    number: int
    boot_id: str | None
    note_time_s: float | None = None  # host time of its boot note
    epoch_s: float = float("inf")  # host time of device time 0 (smallest estimate, recent chunks)
    _window: tuple[float, float] = (float("-inf"), float("inf"))  # (start host time, min) of the current window
    ref: tuple[float, float] | None = None  # (grid position, device t_ms) of one instant
    run: tuple[float, int, int] | None = None  # current run: (grid position, seq, period_us) of its first sample
    last: dict | None = None  # the last sample passed on (seq, u, period_us, t_ms and values)
    reboot_note: dict | None = None
    first_t_ms: float | None = None
    last_u: float | None = None
    samples: int = 0


class BlockReader:
    """Iterates a recording's SAMPLES as :class:`Block` s on the analysis grid and collects EVENTs.

    ``malformed`` counts packets that failed decoding (SAMPLES and EVENT); ``events`` holds
    decoded EVENT packets (sparse: a few per jolt); ``late`` and ``duplicates`` count
    samples dropped by the ordering, ``samples`` the recorded samples passed on, ``gaps``
    the :class:`Gap` s found and ``boots`` the boots read (module docstring).
    """

    def __init__(self, rec, mask: int, batch: int | None = None, reorder_s: float | None = None):
        self.rec = rec
        self.mask = mask
        self.batch = BATCH_PACKETS if batch is None else batch
        self.reorder_s = REORDER_S if reorder_s is None else reorder_s
        self.malformed = 0
        self.late = 0
        self.duplicates = 0
        self.samples = 0
        self.events: list[wire.EventPacket] = []
        self.marks: list[tuple[_Boot, wire_marks.Mark]] = []  # MARKS of the offline day log, in file order
        self._mark_ids: set[tuple[int, int]] = set()  # (boot number, mark_id) seen
        self.log_samples = 0  # reduced-rate (LOG) samples passed on
        self.gaps: list[Gap] = []
        self.boots: list[_Boot] = [_Boot(1, None)]
        self.grid_period_us: int | None = None
        meta_rate = (getattr(rec, "metadata", None) or {}).get("sample_rate_hz")
        self.meta_rate_hz = float(meta_rate) if isinstance(meta_rate, int | float) and not isinstance(
            meta_rate, bool) else None
        self.periods_seen: set[int] = set()  # period_us of the full-rate (SAMPLES) samples
        self._meta_period_us = (int(round(1e6 / meta_rate)) if isinstance(meta_rate, int | float)
                                and not isinstance(meta_rate, bool) and 0 < meta_rate < 1e5 else None)
        self._gap_notes: dict[tuple[str | None, int], str] = {}
        self._damage_seqs: set[int] = set()  # first seq (u32) of the packets read right after file damage
        self._issues_seen = 0
        self._reboot_notes: dict[str | None, dict] = {}
        self._last_k: int | None = None  # last grid index passed on
        self._carry = 0  # samples that fell between grid points, not yet in a block's count
        self._reset_order()

    # ------------------------------------------------------------ reading

    @property
    def boot(self) -> _Boot:
        return self.boots[-1]

    @property
    def contradicted(self) -> int:
        """Sequence-number jumps the device clock contradicted (corruption, :class:`_Unwrap`)."""
        return self._contradicted + self._unwrap.contradicted

    def _reset_order(self) -> None:
        self._contradicted = getattr(self, "_contradicted", 0) + (self._unwrap.contradicted
                                                                   if hasattr(self, "_unwrap") else 0)
        hold = int(round(self.reorder_s * 1e6 / (self._meta_period_us or 10000)))
        self._unwrap = _Unwrap(back_limit=max(hold, 1))
        self._pending: dict[str, np.ndarray] | None = None  # held back, sorted by "seq"
        self._emitted: int | None = None  # highest continuous seq passed on

    def _epoch(self, chunk) -> float | None:
        """host time − device time of the chunk's newest sample (an upper bound of the epoch)."""
        if chunk.host_time_s is None:
            return None
        for p in reversed(chunk.packets):
            if len(p) >= _HDR.size and p[1] == wire.TYPE_SAMPLES and p[2] == self.mask:
                _v, _t, _m, count, _seq, t_ms, period = _HDR.unpack_from(p)
                return chunk.host_time_s - (t_ms + (count - 1) * period / 1000.0) / 1000.0
        return None

    def _items(self) -> Iterator[tuple[str, object]]:
        """("packets", batch) and ("boot", None) in file order; notes are taken in on the way."""
        buf: list[bytes] = []
        seen = False  # SAMPLES packets read since the last boot started
        for chunk in self.rec.chunks():
            if chunk.packets:
                self._note_damage(chunk.packets)
                seen = True
                buf += chunk.packets
                e = self._epoch(chunk)
                if e is not None:
                    self._take_epoch(self._pending_boot if self._pending_boot is not None else self.boot,
                                     chunk.host_time_s, e)
                if len(buf) >= self.batch:
                    yield "packets", buf
                    buf = []
            elif chunk.note is not None:
                nb = self._note(chunk, seen)
                if nb is not None:  # a new boot: the old boot's packets first
                    if buf:
                        yield "packets", buf
                        buf = []
                    self._pending_boot = nb
                    seen = False
                    yield "boot", None
        if buf:
            yield "packets", buf

    def _note_damage(self, packets: list[bytes]) -> None:
        """When file damage was skipped since the last PACKETS chunk, the first sample after it
        ends a gap whose reason is the damage, not the radio."""
        issues = len(getattr(self.rec, "issues", ()) or ())
        if issues > self._issues_seen:
            for p in packets:
                if len(p) >= _HDR.size and p[1] == wire.TYPE_SAMPLES and p[2] == self.mask:
                    self._damage_seqs.add(_HDR.unpack_from(p)[4])
                    break
        self._issues_seen = issues

    @staticmethod
    def _take_epoch(b: _Boot, host_s: float, e: float) -> None:
        """Smallest estimate over the last one to two :data:`EPOCH_WINDOW_S` of host time, so
        that a device clock running slightly fast or slow does not shift a later boot."""
        start, low = b._window
        if host_s - start > EPOCH_WINDOW_S:  # a new window; the previous one's minimum still counts
            b.epoch_s = min(low, e) if np.isfinite(low) else min(b.epoch_s, e)
            b._window = (host_s, e)
        else:
            b._window = (start, min(low, e))
            b.epoch_s = min(b.epoch_s, e)

    def _note(self, chunk, seen: bool) -> _Boot | None:
        """Take in a gap / reboot / boot note; returns the new boot a boot note starts."""
        n = chunk.note
        ev = n.get("event")
        if ev == "gap" and isinstance(n.get("from_seq"), int) and isinstance(n.get("reason"), str):
            self._gap_notes[(n.get("boot_id"), n["from_seq"] & 0xFFFFFFFF)] = n["reason"]
        elif ev == "reboot":
            self._reboot_notes[n.get("boot_id")] = n
        elif ev == "boot":
            bid = n.get("boot_id") if isinstance(n.get("boot_id"), str) else None
            cur = self._pending_boot or self.boot
            e = n.get("epoch_unix_s")  # the transport knew its device time 0 (board clock, uptime)
            e = float(e) if isinstance(e, int | float) and not isinstance(e, bool) and np.isfinite(e) else None
            if not seen:  # no samples of the current boot yet: the note names it
                cur.boot_id, cur.note_time_s = bid, chunk.host_time_s
                if chunk.host_time_s is not None and cur is self._pending_boot:
                    cur.epoch_s = min(cur.epoch_s, chunk.host_time_s)
                if e is not None:
                    cur.epoch_s = min(cur.epoch_s, e)
                return None
            if bid is not None and bid == cur.boot_id:
                return None  # the same boot again (a repeated note)
            nb = _Boot(len(self.boots) + 1, bid, chunk.host_time_s)
            if chunk.host_time_s is not None:
                nb.epoch_s = chunk.host_time_s  # the host learns of a boot after it happened
            if e is not None:
                nb.epoch_s = min(nb.epoch_s, e)
            return nb
        return None

    def __iter__(self) -> Iterator[Block]:
        self._pending_boot: _Boot | None = None
        marks: list[tuple[int, _Boot]] = []  # (first event index, boot) for event times
        for kind, batch in self._items():
            if kind == "boot":
                yield from self._order(None)  # everything of the old boot is final
                self._reset_order()
                continue
            if self._pending_boot is not None:
                self.boots.append(self._pending_boot)  # its first batch read: epoch estimated over it
                self._pending_boot = None
                self._start_boot()
            if not marks or marks[-1][1] is not self.boot:
                marks.append((len(self.events), self.boot))
            offline: list = []
            arrays, errors = wire.decode_samples_many(batch, events=self.events, offline=offline)
            self.malformed += len(errors)
            a = self._with_log(arrays.get(self.mask), offline)
            if a is None or len(a["seq"]) == 0:
                continue
            yield from self._order(a)
        yield from self._order(None)
        self._event_times(marks)
        self._log_full_reasons()

    def _with_log(self, a: wire.SampleArrays | None, offline: list) -> dict | None:
        """The batch's samples as one dict of arrays (``seq`` still 32-bit), LOG samples of
        this imu_mask after the SAMPLES (ordering sorts them); MARKS taken in on the way."""
        parts = []
        if a is not None and len(a):
            parts.append({"seq": a.seq} | {k: getattr(a, k) for k in _FIELDS if k != "log"}
                         | {"log": np.zeros(len(a), bool)})
        for _i, p in offline:
            if isinstance(p, LogPacket):
                if p.imu_mask != self.mask:
                    continue
                n, k = p.count, p.quat.shape[1]
                i = np.arange(n)
                parts.append({"seq": (p.seq + i) & 0xFFFFFFFF, "t_ms": p.t_ms + i * float(p.period_ms),
                              "flags": np.zeros(n, np.uint8), "quat": p.quat,
                              "acc": np.full((n, k, 3), np.nan), "gyr": np.full((n, k, 3), np.nan),
                              "period_us": np.full(n, int(p.period_ms) * 1000, np.int64), "log": np.ones(n, bool)})
            else:
                for m in p.marks:
                    key = (self.boot.number, m.mark_id)
                    if key not in self._mark_ids:
                        self._mark_ids.add(key)
                        self.marks.append((self.boot, m))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def _log_full_reasons(self) -> None:
        """Gaps that LOG_DROPPED marks of their boot cover: the board's log was full."""
        dropped: dict[int, list[tuple[int, int]]] = {}
        for b, m in self.marks:
            if m.kind == wire_marks.LOG_DROPPED and m.b > 0:
                dropped.setdefault(b.number, []).append((m.c, m.b))
        for g in self.gaps:
            if g.from_seq is None or g.boot not in dropped or g.reason == REASON_REBOOT:
                continue
            miss = g.missing_samples or 1
            if any(((c - g.from_seq) & 0xFFFFFFFF) < miss or ((g.from_seq - c) & 0xFFFFFFFF) < n
                   for c, n in dropped[g.boot]):
                g.reason = REASON_LOG_FULL

    def mark_times(self) -> list[dict]:
        """The MARKS on the recording's timeline: ``t_s`` (seconds from the first sample, like
        ``Block.index`` × grid period; None when their boot has no samples to place it),
        ``kind`` (name), ``a``, ``b``, ``c``, ``mark_id`` and ``boot`` (number), in time order."""
        g = self.grid_period_us
        out = []
        for b, m in self.marks:
            t_s = None
            if g and b.ref is not None:
                t_s = (b.ref[0] + (m.t_ms - b.ref[1]) * 1000.0 / g) * g / 1e6
            out.append({"t_s": t_s, "kind": m.name, "a": m.a, "b": m.b, "c": m.c, "mark_id": m.mark_id,
                        "boot": b.number})
        return sorted(out, key=lambda d: (d["t_s"] is None, d["t_s"] or 0.0))

    def header_rate_words(self) -> str | None:
        """Plain words when the header's ``sample_rate_hz`` matches none of the packets' rates
        (within 2 %), else None. The packets' own times and rate are what the analysis uses."""
        h = self.meta_rate_hz
        if h is None or not self.periods_seen:
            return None
        rates = sorted({1e6 / p for p in self.periods_seen if p > 0}, reverse=True)
        if not rates or any(abs(r - h) <= 0.02 * max(abs(h), 1e-9) for r in rates):
            return None
        shown = " and ".join(f"{r:.4g}" for r in rates[:3]) + (" …" if len(rates) > 3 else "")
        grid = 1e6 / self.grid_period_us if self.grid_period_us else rates[0]
        used = ("the packets' own times and rate were used" if any(abs(r - grid) <= 0.02 * grid for r in rates)
                else f"the packets' own times were used, resampled to {grid:.4g} Hz (the board's power saver "
                "halves its rate)")
        return f"The recording's header gives a sample rate of {h:.4g} Hz, but its packets show {shown} Hz: {used}."

    @property
    def t0_ms(self) -> float | None:
        """Device time (ms, of the first boot with samples) of the recording's first sample."""
        b = next((b for b in self.boots if b.ref is not None), None)
        return None if b is None else b.first_t_ms

    def _zero(self, b: _Boot) -> float:
        """Grid position of boot ``b``'s device time 0."""
        return b.ref[0] - b.ref[1] * 1000.0 / self.grid_period_us

    def _event_times(self, marks: list[tuple[int, _Boot]]) -> None:
        """EVENT trigger times of later boots → device time of the first boot, so that
        ``(trigger_t_ms − t0_ms) / 1000`` is the time on the recording's timeline."""
        first = next((b for b in self.boots if b.ref is not None), None)
        if first is None:
            return
        bounds = [m[0] for m in marks[1:]] + [len(self.events)]
        for (i0, b), i1 in zip(marks, bounds):
            if b is first or b.ref is None:
                continue
            shift_ms = (self._zero(b) - self._zero(first)) * self.grid_period_us / 1000.0
            for e in self.events[i0:i1]:
                e.trigger_t_ms = int(round(e.trigger_t_ms + shift_ms))

    def _start_boot(self) -> None:
        """Place the boot now starting: its device time 0 on the grid."""
        b = self.boot
        b.reboot_note = self._reboot_notes.get(b.boot_id)
        prev = next((p for p in reversed(self.boots[:-1]) if p.ref is not None), None)
        if prev is None or self.grid_period_us is None:
            return  # nothing before it on the timeline: its first sample is time 0
        # epoch difference (host clock) → position of the new boot's device time 0
        prev_zero = self._zero(prev)
        if np.isfinite(b.epoch_s) and np.isfinite(prev.epoch_s):
            zero = prev_zero + (b.epoch_s - prev.epoch_s) * 1e6 / self.grid_period_us
        else:
            zero = prev.last_u + 1.0
        if prev.last_u is not None:  # never before the old boot's last sample
            zero = max(zero, prev.last_u + 1.0)
        b.ref = (float(zero), 0.0)

    # ------------------------------------------------------------ ordering (one boot)

    def _order(self, a: dict | None) -> list[Block]:
        """Merge new samples into the held-back window; return the blocks that are final
        (``a`` None: the end of the boot, everything is final)."""
        p = self._pending
        ready: list[dict] = []
        if a is not None:
            new = {"seq": self._unwrap(a["seq"], a["t_ms"], a["period_us"], a["log"])} | {k: a[k] for k in _FIELDS}
            if self._emitted is not None:  # too late: their place was already passed on
                late = new["seq"] <= self._emitted
                if late.any():
                    self.late += int(late.sum())
                    new = {k: v[~late] for k, v in new.items()}
            seq = new["seq"]
            hold = int(round(self.reorder_s * 1e6 / float(new["period_us"][0]))) if len(seq) else 0
            in_order = len(seq) > 0 and bool((np.diff(seq) > 0).all())
            if in_order and (p is None or not len(p["seq"]) or p["seq"][-1] <= min(seq[0] - 1, seq[-1] - hold)):
                # the usual case: nothing to sort, no copies — the held-back samples, now
                # further than the window behind the newest, go out as they are and the new
                # ones follow as views
                cut = int(np.searchsorted(seq, seq[-1] - hold, side="right"))
                if p is not None and len(p["seq"]):
                    ready.append(p)
                ready.append({k: v[:cut] for k, v in new.items()})
                self._pending = {k: v[cut:] for k, v in new.items()}
                return self._place_all(ready)
            if p is None or not len(p["seq"]):
                p = new
            else:
                p = {k: np.concatenate([p[k], new[k]]) for k in p}
            seq = p["seq"]
            if len(seq) > 1 and not (np.diff(seq) > 0).all():
                order = np.argsort(seq, kind="stable")  # stable: the first copy of a seq comes first
                seq = seq[order]
                dup = np.concatenate([[False], seq[1:] == seq[:-1]])
                self.duplicates += int(dup.sum())
                order = order[~dup]
                p = {k: v[order] for k, v in p.items()}
        if p is None or not len(p["seq"]):
            self._pending = p
            return []
        if a is None:
            cut = len(p["seq"])
        else:
            hold = int(round(self.reorder_s * 1e6 / float(p["period_us"][0])))
            cut = int(np.searchsorted(p["seq"], p["seq"][-1] - hold, side="right"))
        ready.append({k: v[:cut] for k, v in p.items()})
        self._pending = {k: v[cut:] for k, v in p.items()}
        return self._place_all(ready)

    # ------------------------------------------------------------ timing (one boot)

    def _place_all(self, parts: list[dict]) -> list[Block]:
        out = []
        for part in parts:
            if len(part["seq"]):
                self._emitted = int(part["seq"][-1])
                out += self._place(part)
        return out

    def _place(self, part: dict) -> list[Block]:
        """Positions on the grid for ordered samples of the current boot, gaps noted;
        resampled onto the grid where their rate is not the grid's."""
        b = self.boot
        seq, per, t_ms = part["seq"], part["period_us"], part["t_ms"]
        if self.grid_period_us is None:
            p0 = int(per[0])
            if part["log"][0]:  # a recording that starts in the offline day log: the full rate is the
                # header's (else the firmware's 100 Hz), so that later SAMPLES land one to one
                p0 = min(p0, self._meta_period_us or 10000)
            meta = self._meta_period_us
            # the header's rate only when at most twice the packets' (the power saver's 100 → 50 Hz):
            # a header that disagrees further is not believed, the packets' own rate is used
            self.grid_period_us = p0 if meta is None or 2 * meta < p0 else min(p0, meta)
        g = self.grid_period_us
        if b.ref is None:  # the recording's first sample is time 0
            b.ref = (0.0, float(t_ms[0]))
        if b.first_t_ms is None:
            b.first_t_ms = float(t_ms[0])
        n = len(seq)
        b.samples += n
        self.samples += n
        full = per[~part["log"]]
        if len(full):
            self.periods_seen.update(int(x) for x in np.unique(full))
        # runs of one period_us: positions follow seq; a run starts at its first t_ms
        starts = list(np.flatnonzero(per[1:] != per[:-1]) + 1)
        if b.run is None or int(per[0]) != b.run[2]:
            starts = [0] + starts
        u = np.empty(n)
        stop = starts[0] if starts else n
        if stop:  # continuing the current run
            u[:stop] = b.run[0] + (seq[:stop] - b.run[1]) * (b.run[2] / g)
        for i0, i1 in zip(starts, starts[1:] + [n]):
            p = int(per[i0])
            u0 = b.ref[0] + (float(t_ms[i0]) - b.ref[1]) * 1000.0 / g
            if i0 > 0:
                before = (float(u[i0 - 1]), int(seq[i0 - 1]), int(per[i0 - 1]))
            elif b.last is not None:
                before = (b.last["u"], b.last["seq"], b.last["period_us"])
            elif self._last_k is not None:  # a new boot: after the old boot's last sample
                before = (float(self._last_k), -1, p)
            else:
                before = None
            floor_before = self._last_k
            if before is not None:  # never before the previous sample
                u0 = max(u0, before[0] + (int(seq[i0]) - before[1]) * min(before[2], p) / g)
                fb = int(np.floor(before[0]))
                floor_before = fb if floor_before is None else max(floor_before, fb)
            if p == g:  # grid-rate runs sit on grid points
                u0 = float(np.ceil(u0 - 0.5))
                if floor_before is not None and u0 <= floor_before:
                    u0 = floor_before + 1.0
            b.run = (u0, int(seq[i0]), p)
            u[i0:i1] = u0 + (seq[i0:i1] - seq[i0]) * (p / g)
        self._gaps(b, seq, u, per)
        b.last_u = float(u[-1])
        log = part["log"]
        last = {"seq": int(seq[-1]), "u": float(u[-1]), "period_us": int(per[-1]), "t_ms": float(t_ms[-1]),
                "log": bool(log[-1])} | {k: part[k][-1] for k in _VALUES}
        prev, b.last = b.last, last
        if not log.any():
            return self._place_full(part, seq, u, per, prev, n)
        self.log_samples += int(log.sum())
        out = []
        cuts = [0] + list(np.flatnonzero(log[1:] != log[:-1]) + 1) + [n]
        for i0, i1 in zip(cuts[:-1], cuts[1:]):
            sub = {k: v[i0:i1] for k, v in part.items()}
            if log[i0]:
                out += self._place_log(sub, u[i0:i1])
            else:  # never interpolated with the LOG sample before it
                before = prev if i0 == 0 else {"log": True}
                out += self._place_full(sub, seq[i0:i1], u[i0:i1], per[i0:i1], before, i1 - i0)
        return out

    def _place_full(self, part: dict, seq, u, per, prev: dict | None, n: int) -> list[Block]:
        """Full-rate samples at their grid positions ``u``: one to one at the grid rate, else resampled."""
        g = self.grid_period_us
        if prev is not None and prev.get("log"):
            prev = None  # a rate change from the day log: no interpolation across it
        fast = bool((per == g).all()) and (prev is None or prev["period_us"] == g)
        if fast:
            idx = np.rint(u).astype(np.int64)
            if self._last_k is not None and idx[0] <= self._last_k:  # right after a LOG sample's point
                keep = idx > self._last_k
                self._carry += int((~keep).sum())
                n -= int((~keep).sum())
                if not keep.any():
                    return []
                idx, part = idx[keep], {k: v[keep] for k, v in part.items()}
            self._last_k = int(idx[-1])
            n, self._carry = n + self._carry, 0
            return [Block(idx, part["t_ms"], part["flags"], part["quat"], part["acc"], part["gyr"], g / 1e6, n)]
        return self._resample(part, seq, u, prev, n)

    def _place_log(self, part: dict, u: np.ndarray) -> list[Block]:
        """Reduced-rate (LOG) samples: each on its nearest grid point after the last one passed
        on, orientation as recorded (no resampling, no interpolation)."""
        n = len(u)
        idx = np.rint(u).astype(np.int64)
        keep = np.ones(n, bool)
        if self._last_k is not None:
            keep &= idx > self._last_k
        keep[1:] &= np.diff(idx) > 0
        if not keep.any():
            self._carry += n
            return []
        idx = idx[keep]
        self._last_k = int(idx[-1])
        samples, self._carry = n + self._carry, 0
        k = part["quat"].shape[1]
        m = len(idx)
        return [Block(idx, part["t_ms"][keep], np.zeros(m, np.uint8), part["quat"][keep],
                      np.full((m, k, 3), np.nan), np.full((m, k, 3), np.nan), self.grid_period_us / 1e6, samples,
                      reduced=True, source_period_s=float(part["period_us"][0]) / 1e6)]

    def _gaps(self, b: _Boot, seq: np.ndarray, u: np.ndarray, per: np.ndarray) -> None:
        """Note the sequence numbers missing before and among ``seq`` (grid positions ``u``)."""
        g = self.grid_period_us
        if b.last is None:
            prev = next((p for p in reversed(self.boots[:-1]) if p.last is not None), None)
            if prev is not None:
                # the reboot: from after the old boot's last sample to where the new boot's seq 0 sits
                zero = float(u[0]) - float(seq[0]) * int(per[0]) / g
                start = prev.last["u"] + prev.last["period_us"] / g
                lost = (b.reboot_note or {}).get("lost_samples_at_least")
                self.gaps.append(Gap(start, max(zero, start), lost if isinstance(lost, int) else None,
                                     REASON_REBOOT, b.number))
                if seq[0] > 0:  # a boot that starts during the recording starts at seq 0
                    self.gaps.append(Gap(max(zero, start), float(u[0]), int(seq[0]), self._reason(b, 0), b.number, 0))
            s_prev, u_prev, p_prev, u_next = seq[:-1], u[:-1], per[:-1], u[1:]
        else:
            s_prev = np.concatenate([[b.last["seq"]], seq[:-1]])
            u_prev = np.concatenate([[b.last["u"]], u[:-1]])
            p_prev = np.concatenate([[b.last["period_us"]], per[:-1]])
            u_next = u
        d = np.diff(seq) if b.last is None else seq - s_prev
        for i in np.flatnonzero(d > 1):
            self.gaps.append(Gap(float(u_prev[i] + p_prev[i] / g), float(u_next[i]), int(d[i] - 1),
                                 self._reason(b, int(s_prev[i]) + 1, int(s_prev[i] + d[i])), b.number,
                                 (int(s_prev[i]) + 1) & 0xFFFFFFFF))

    def _reason(self, b: _Boot, from_seq: int, to_seq: int | None = None) -> str:
        """The recorder's reason for the gap, else file damage when the gap ends right after a
        damaged part of the file, else the radio."""
        noted = self._gap_notes.get((b.boot_id, from_seq & 0xFFFFFFFF))
        if noted is not None:
            return noted
        if to_seq is not None and (to_seq & 0xFFFFFFFF) in self._damage_seqs:
            return REASON_DAMAGE
        return REASON_TRANSMISSION

    def _resample(self, part: dict, seq: np.ndarray, u: np.ndarray, prev: dict | None, n: int) -> list[Block]:
        """Linear interpolation onto the grid points after the last one passed on, within
        stretches of consecutive ``seq`` (the previous sample included when it adjoins)."""
        vals = {k: part[k] for k in ("t_ms",) + _VALUES}
        if prev is not None and seq[0] == prev["seq"] + 1:
            seq = np.concatenate([[prev["seq"]], seq])
            u = np.concatenate([[prev["u"]], u])
            vals = {k: np.concatenate([np.asarray(prev[k])[None], v]) for k, v in vals.items()}
        q = vals["quat"].astype(float)
        # quaternion signs: q and −q are one orientation; align each to the one before
        sign = np.where((q[1:] * q[:-1]).sum(axis=-1) < 0, -1.0, 1.0)
        q = q * np.concatenate([np.ones((1,) + sign.shape[1:]), np.cumprod(sign, axis=0)])[..., None]
        cuts = list(np.flatnonzero(np.diff(seq) > 1) + 1)
        out = []
        for j0, j1 in zip([0] + cuts, cuts + [len(seq)]):
            uu = u[j0:j1]
            lo = int(np.ceil(uu[0] - 1e-9))
            if self._last_k is not None:
                lo = max(lo, self._last_k + 1)
            hi = int(np.floor(uu[-1] + 1e-9))
            if hi < lo:
                near = int(round(uu[0]))
                if j1 - j0 > 1 or (self._last_k is not None and near <= self._last_k):
                    continue
                lo = hi = near  # a lone sample between grid points: its nearest point
            k = np.arange(lo, hi + 1)
            pos = np.clip(np.searchsorted(uu, k, side="right") - 1, 0, j1 - j0 - 1)

            def lerp(x, k=k, uu=uu):
                x = np.asarray(x, float)
                flat = x.reshape(len(x), -1)
                cols = [np.interp(k, uu, flat[:, c]) for c in range(flat.shape[1])]
                return np.stack(cols, axis=1).reshape((len(k),) + x.shape[1:])

            qq = lerp(q[j0:j1])
            qq /= np.linalg.norm(qq, axis=-1, keepdims=True)
            self._last_k = int(k[-1])
            out.append(Block(k.astype(np.int64), lerp(vals["t_ms"][j0:j1]), vals["flags"][j0:j1][pos], qq,
                             lerp(vals["acc"][j0:j1]), lerp(vals["gyr"][j0:j1]), self.grid_period_us / 1e6, 0))
        if not out:  # nothing new on the grid: counted with the next block (and in ``samples``)
            self._carry += n
            return out
        out[-1].samples = n + self._carry
        self._carry = 0
        return out
