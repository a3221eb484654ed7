"""Reading a recording block by block: packets → decoded samples with a continuous index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import wire

BATCH_PACKETS = 4000


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
    """32-bit sequence numbers → continuous int64 sample index."""

    offset: int = 0
    last: int | None = None
    first: int | None = None

    def __call__(self, seq: np.ndarray) -> np.ndarray:
        seq = seq.astype(np.int64)
        wraps = np.concatenate([[0], np.cumsum(np.diff(seq) < -(1 << 31))]) << 32
        if self.last is not None and seq[0] - self.last < -(1 << 31):
            self.offset += 1 << 32
        out = seq + wraps + self.offset
        self.offset += int(wraps[-1])
        self.last = int(seq[-1])
        if self.first is None:
            self.first = int(out[0])
        return out - self.first


class BlockReader:
    """Iterates a recording's SAMPLES as :class:`Block` s and collects EVENT packets.

    ``malformed`` counts packets that failed decoding; ``events`` holds decoded EVENT
    packets (sparse: a few per jolt).
    """

    def __init__(self, rec, mask: int, batch: int = BATCH_PACKETS):
        self.rec = rec
        self.mask = mask
        self.batch = batch
        self.malformed = 0
        self.events: list[wire.EventPacket] = []
        self._unwrap = _Unwrap()

    def _batches(self) -> Iterator[list[bytes]]:
        buf: list[bytes] = []
        for _t, packet in self.rec.iter_packets():
            buf.append(packet)
            if len(buf) >= self.batch:
                yield buf
                buf = []
        if buf:
            yield buf

    def __iter__(self) -> Iterator[Block]:
        for batch in self._batches():
            arrays, errors = wire.decode_samples_many(batch)
            self.malformed += len(errors)
            for p in batch:
                if len(p) > 1 and p[1] == wire.TYPE_EVENT:
                    try:
                        self.events.append(wire.decode_packet(p))
                    except Exception:  # counted as malformed by decode_samples_many
                        pass
            a = arrays.get(self.mask)
            if a is None or len(a) == 0:
                continue
            order = np.argsort(a.seq, kind="stable") if np.any(np.diff(a.seq) < 0) and not _wraps(a.seq) else None
            if order is not None:
                a = _take(a, order)
            yield Block(self._unwrap(a.seq), a.t_ms, a.flags, a.quat, a.acc, a.gyr, float(a.period_us[0]) / 1e6)


def _wraps(seq: np.ndarray) -> bool:
    return bool(np.any(np.diff(seq.astype(np.int64)) < -(1 << 31)))


def _take(a: wire.SampleArrays, order: np.ndarray) -> wire.SampleArrays:
    return wire.SampleArrays(a.imu_mask, a.seq[order], a.t_ms[order], a.period_us[order], a.flags[order],
                             a.quat[order], a.acc[order], a.gyr[order])
