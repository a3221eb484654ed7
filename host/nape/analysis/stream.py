"""Reading a recording block by block: packets → decoded samples with a continuous index.

Memory stays bounded: the file is read chunk by chunk, ``batch`` packets are decoded at a
time (:func:`nape.wire.decode_samples_many`), and only a short reorder window is held back.

Order: samples are put in sequence-number order, whatever order their packets were
written in. The ``BACKFILL`` flag (a sample re-sent from the device's offline buffer,
protocol/SPEC.md) is ignored here: a backfilled sample is a normal sample placed by its
``seq``. A sample arriving up to :data:`REORDER_S` (of sample time) behind the newest one
still lands in its place; one arriving later than that, after its place was passed on, is
dropped and counted in ``late`` (the analysis then sees it as a lost sample; so is a copy of
a sample already passed on). A sample whose ``seq`` is still held back is dropped as a
duplicate and counted in ``duplicates``. Packets are decoded ``BATCH_PACKETS`` at a time and
a batch is always put in order as a whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import wire

BATCH_PACKETS = 4000
REORDER_S = 60.0
_FIELDS = ("t_ms", "flags", "quat", "acc", "gyr", "period_us")


@dataclass
class Block:
    """Consecutive decoded samples of one imu_mask. Arrays are [sample, imu, axis]."""

    index: np.ndarray  # (n,) int64 sample index from the first sample (gaps skip indices)
    t_ms: np.ndarray  # (n,) device time, ms
    flags: np.ndarray
    quat: np.ndarray  # (n, k, 4) firmware orientation
    acc: np.ndarray  # (n, k, 3) m/s^2
    gyr: np.ndarray  # (n, k, 3) rad/s
    period_s: float


@dataclass
class _Unwrap:
    """32-bit sequence numbers (in arrival order) → continuous int64 sequence numbers.

    Each step between consecutive samples is taken as the signed difference modulo 2³²,
    so a wrap (…, 2³²−1, 0, …) continues upwards and a sample sent again or late (a smaller
    ``seq``) steps back instead of looking like a jump of almost 2³².
    """

    last_raw: int | None = None
    last: int = 0

    def __call__(self, seq: np.ndarray) -> np.ndarray:
        seq = seq.astype(np.int64)
        prev = np.concatenate([[seq[0] if self.last_raw is None else self.last_raw], seq[:-1]])
        step = ((seq - prev + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        base = int(seq[0]) if self.last_raw is None else self.last
        out = base + np.cumsum(step)
        self.last_raw, self.last = int(seq[-1]), int(out[-1])
        return out


class BlockReader:
    """Iterates a recording's SAMPLES as :class:`Block` s in ``seq`` order and collects EVENTs.

    ``malformed`` counts packets that failed decoding (SAMPLES and EVENT); ``events`` holds
    decoded EVENT packets (sparse: a few per jolt); ``late`` and ``duplicates`` count
    samples dropped by the ordering (module docstring).
    """

    def __init__(self, rec, mask: int, batch: int | None = None, reorder_s: float | None = None):
        self.rec = rec
        self.mask = mask
        self.batch = BATCH_PACKETS if batch is None else batch
        self.reorder_s = REORDER_S if reorder_s is None else reorder_s
        self.malformed = 0
        self.late = 0
        self.duplicates = 0
        self.events: list[wire.EventPacket] = []
        self._unwrap = _Unwrap()
        self._pending: dict[str, np.ndarray] | None = None  # held back, sorted by "seq"
        self._emitted: int | None = None  # highest continuous seq passed on
        self._first: int | None = None

    def _batches(self) -> Iterator[list[bytes]]:
        buf: list[bytes] = []
        for chunk in self.rec.chunks():
            if chunk.packets:
                buf += chunk.packets
                if len(buf) >= self.batch:
                    yield buf
                    buf = []
        if buf:
            yield buf

    def __iter__(self) -> Iterator[Block]:
        for batch in self._batches():
            arrays, errors = wire.decode_samples_many(batch, events=self.events)
            self.malformed += len(errors)
            a = arrays.get(self.mask)
            if a is None or len(a) == 0:
                continue
            yield from self._order(a)
        yield from self._order(None)

    def _order(self, a: wire.SampleArrays | None) -> list[Block]:
        """Merge new samples into the held-back window; return the blocks that are final
        (``a`` None: the end, everything is final)."""
        p = self._pending
        ready: list[dict] = []
        if a is not None:
            new = {"seq": self._unwrap(a.seq)} | {k: getattr(a, k) for k in _FIELDS}
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
                return self._blocks(ready)
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
        return self._blocks(ready)

    def _blocks(self, parts: list[dict]) -> list[Block]:
        out = []
        for part in parts:
            if not len(part["seq"]):
                continue
            self._emitted = int(part["seq"][-1])
            if self._first is None:
                self._first = int(part["seq"][0])
            out.append(Block(part["seq"] - self._first, part["t_ms"], part["flags"], part["quat"], part["acc"],
                             part["gyr"], float(part["period_us"][0]) / 1e6))
        return out
