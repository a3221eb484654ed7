"""Recorder: transport notifications -> validated packets -> .nape file, safely.

Every valid packet is written as it arrives, in PACKETS chunks of at most
``chunk_interval_s`` of wall time (flushed at once, fsynced per the writer's policy),
so a crash loses at most the last chunk. Malformed packets are counted and noted (with
their bytes, hex) but never stop the recording. Duplicates (the same sequence numbers
again) are dropped; gaps in sequence numbers are counted as lost samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import wire
from .errors import PacketError
from .recording import RecordingWriter
from .transport import DeviceInfo, Transport


@dataclass
class RecordStats:
    """What one recording session received."""

    notifications: int = 0
    packets: int = 0
    samples: int = 0
    event_packets: int = 0
    malformed: int = 0
    dropped_fragments: int = 0
    duplicate_samples: int = 0
    lost_samples: int = 0
    first_error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _SeqTracker:
    """Counts lost and duplicate samples from SAMPLES sequence numbers (32-bit, wraps)."""

    next_seq: int | None = None
    seen_before: set = field(default_factory=set)

    def accept(self, seq: int, count: int, stats: RecordStats) -> bool:
        if self.next_seq is None:
            self.next_seq = (seq + count) & 0xFFFFFFFF
            return True
        delta = (seq - self.next_seq) & 0xFFFFFFFF
        if delta < 0x80000000:  # at or ahead of what we expected
            stats.lost_samples += delta
            self.next_seq = (seq + count) & 0xFFFFFFFF
            return True
        stats.duplicate_samples += count
        return False


def metadata_for(info: DeviceInfo, extra: dict | None = None) -> dict:
    """Recording header metadata for a device."""
    meta = {
        "device_name": info.name,
        "firmware_version": info.firmware_version,
        "wire_format_version": info.wire_version,
        "imu_roles": list(info.imu_roles),
        "sample_rate_hz": info.rate_hz,
        "source": info.extra.get("source", "ble"),
    }
    meta.update(extra or {})
    return meta


async def record(
    transport: Transport,
    path: Path,
    metadata: dict | None = None,
    chunk_interval_s: float = 1.0,
    max_chunk_packets: int = 200,
    on_progress: Callable[[RecordStats], None] | None = None,
    overwrite: bool = False,
) -> RecordStats:
    """Record everything ``transport`` sends into a new .nape file at ``path``.

    Raises:
        nape.errors.RecordingError: the file cannot be created or written.
        nape.errors.DeviceError: the device cannot be reached.
    """
    stats = RecordStats()
    t0 = time.monotonic()
    reassemblers = {"stream": wire.Reassembler(), "event": wire.Reassembler()}
    tracker = _SeqTracker()
    async with transport:
        meta = metadata_for(transport.info, metadata)
        with RecordingWriter(path, meta, overwrite=overwrite) as writer:
            pending: list[bytes] = []
            last_flush = time.monotonic()
            async for note in transport.notifications():
                stats.notifications += 1
                r = reassemblers.setdefault(note.channel, wire.Reassembler())
                packet = r.feed(note.value)
                if packet is not None and _accept(packet, tracker, stats, writer):
                    pending.append(packet)
                now = time.monotonic()
                if pending and (len(pending) >= max_chunk_packets or now - last_flush >= chunk_interval_s):
                    writer.write_packets(pending, time.time())
                    pending = []
                    last_flush = now
                    if on_progress:
                        on_progress(stats)
            if pending:
                writer.write_packets(pending, time.time())
            stats.dropped_fragments = sum(r.dropped for r in reassemblers.values())
            stats.seconds = time.monotonic() - t0
            writer.write_note({"kind": "session_end", "stats": stats.as_dict()}, time.time())
    return stats


def _accept(packet: bytes, tracker: _SeqTracker, stats: RecordStats, writer: RecordingWriter) -> bool:
    try:
        decoded = wire.decode_packet(packet)
    except PacketError as e:
        stats.malformed += 1
        stats.first_error = stats.first_error or str(e)
        writer.write_note({"kind": "malformed_packet", "error": str(e), "hex": packet[:600].hex()}, time.time())
        return False
    if isinstance(decoded, wire.EventPacket):
        stats.event_packets += 1
        stats.packets += 1
        return True
    if not tracker.accept(decoded.seq, decoded.count, stats):
        return False
    stats.packets += 1
    stats.samples += decoded.count
    return True
