"""Recorder: transport notifications -> validated packets -> .nape file, safely.

Write policy (what a crash or ``kill -9`` can cost):

- valid packets are held in memory for at most ``chunk_interval_s`` (default 0.5 s) and
  then written as one PACKETS chunk with one unbuffered ``write`` — also when the stream
  pauses (a timer flushes them) — so a killed recorder loses at most the last 0.5 s it
  received plus what was still on air or in the transport's queue (milliseconds).
  ``chunk_interval_s=0`` writes every packet as its own chunk; that costs ~10 % more
  file and ~8x slower reading (20 chunks/s), which is why it is not the default;
- the file is fsynced at most ``fsync_interval_s`` (default 0.5 s) after a write,
  so a power loss or OS crash loses at most the last second.

Malformed packets are counted and noted (with their bytes, hex) but never stop the
recording. Duplicates (the same sequence numbers again) are dropped; gaps in sequence
numbers are counted as lost samples and noted (``{"event": "gap", "from_seq", "to_seq",
"missing_samples", "reason"}``; reason "on-board buffer overflow" when the transport
reported that the device no longer held them (a ``buffer_overflow`` note), else "lost in
transmission"; "on-board log full: oldest posture data dropped" when a LOG_DROPPED mark
of the offline day log covers them). A boot that starts during the recording is expected
from seq 0. LOG packets (type 3, the offline day log's reduced-rate orientation) share the
SAMPLES sequence space and are deduplicated with them; MARKS packets (type 4) are
deduplicated by ``mark_id`` within a boot (a packet whose marks were all seen is dropped).
Sequence numbers restart when the device reboots:
a ``"boot"`` notification from the transport starts a new sequence space (noted in the
file as ``{"event": "boot", "boot_id": ...}``), so the new boot's samples are not taken
for duplicates.

The transport's link events (disconnections, reconnections, reboots) are written as
NOTE chunks as they happen; at the end (also when the transport fails or the recording
is interrupted) a ``{"event": "session_end", "stats": ..., "link": ...}`` NOTE holds the
totals (``nape info`` shows it), then the END chunk. If the transport raises, every
packet received before is already in the file; the error propagates after the file is
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import wire, wire_marks
from .errors import PacketError
from .wire_log import LogPacket
from .wire_marks import MarksPacket
from .recording import RecordingWriter
from .transport import DeviceInfo, Transport

#: Default seconds between fsyncs of the recording (power-loss window).
FSYNC_INTERVAL_S = 0.5
#: Default longest time a received packet is held before it is written, seconds.
CHUNK_INTERVAL_S = 0.5
#: Flag bit of a sample re-sent from the device's offline buffer (protocol/SPEC.md).
FLAG_BACKFILL = 0x40
#: Gap reason when the board's offline day log was full and dropped its oldest LOG samples
#: (a LOG_DROPPED mark, protocol/SPEC.md type 4).
REASON_LOG_FULL = "on-board log full: oldest posture data dropped"
#: Gap reason for samples of a boot that ended in a reboot and were not on the board's
#: flash (its SAMPLES buffer in RAM); the analysis' twin is ``nape.analysis.stream.REASON_REBOOT``.
REASON_REBOOT = "device reboot"


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
    backfilled_samples: int = 0  # samples the device re-sent from its offline buffer
    log_samples: int = 0  # reduced-rate samples of the offline day log (LOG packets, type 3)
    marks: int = 0  # marks of the offline day log (MARKS packets, type 4), without repeats
    boots: int = 0  # device boots seen (sequence spaces)
    first_error: str | None = None
    seconds: float = 0.0
    last_packet: wire.SamplesPacket | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("last_packet", None)
        return d


@dataclass
class _SeqTracker:
    """Counts lost and duplicate samples from SAMPLES sequence numbers (32-bit, wraps)."""

    next_seq: int | None = None

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
    chunk_interval_s: float = CHUNK_INTERVAL_S,
    max_chunk_packets: int = 200,
    on_progress: Callable[[RecordStats], None] | None = None,
    overwrite: bool = False,
    *,
    fsync_interval_s: float = FSYNC_INTERVAL_S,
    progress_interval_s: float = 0.25,
    on_open: Callable[[Path], None] | None = None,
    on_packet: Callable[[wire.SamplesPacket | wire.EventPacket, float], None] | None = None,
) -> RecordStats:
    """Record everything ``transport`` sends into a new .nape file at ``path``.

    Args:
        transport: the device link (not yet connected).
        path: the file to create.
        metadata: extra header metadata.
        chunk_interval_s: hold packets for at most this long (seconds), then write them as
            one chunk (a timer writes them when the stream pauses); 0 writes every packet
            as it arrives.
        max_chunk_packets: write at once when this many packets are held.
        on_progress: ``fn(stats)`` about every ``progress_interval_s`` seconds.
        overwrite: replace an existing file.
        fsync_interval_s: at most this many seconds between a write and its fsync.
        on_open: ``fn(path)`` once the file exists (its header is on disk).
        on_packet: ``fn(decoded_packet, arrival_unix_s)`` for every packet accepted into
            the file (not duplicates or malformed ones), as it arrives: the live view's feed.
            It runs in the receive loop, so it must be quick.

    Raises:
        nape.errors.RecordingError: the file cannot be created or written.
        nape.errors.DeviceError: the device cannot be reached (anything received before
            the link failed is in the file, which is closed properly).
    """
    stats = RecordStats()
    t0 = time.monotonic()
    reassemblers = {"stream": wire.Reassembler(), "event": wire.Reassembler()}
    trackers: dict[int | None, _SeqTracker] = {None: _SeqTracker()}
    boot: list[int | None] = [None]
    offline = _OfflineMarks()
    overflow: list[dict | None] = [None]  # the transport's last "buffer_overflow" note
    rebooted: set[str] = set()  # boots whose kept day log the board sends after a reboot
    async with transport:
        meta = metadata_for(transport.info, metadata)
        with RecordingWriter(path, meta, overwrite=overwrite, fsync_interval_s=fsync_interval_s) as writer:
            if on_open:
                on_open(Path(path))
            held = _Held()
            syncer = asyncio.get_running_loop().create_task(
                _housekeeping(writer, held, chunk_interval_s, fsync_interval_s))
            last_progress = time.monotonic()
            error: BaseException | None = None
            try:
                async for note in transport.notifications():
                    for n in transport.drain_notes():
                        held.write(writer)
                        writer.write_note(n, time.time())
                        if n.get("event") == "buffer_overflow":
                            overflow[0] = n  # the device no longer holds from_seq: explains the next gap
                        elif n.get("event") == "previous_boot_log" and isinstance(n.get("boot_id"), str):
                            rebooted.add(n["boot_id"])  # its gaps: SAMPLES lost with the board's RAM
                    if note.channel == "boot":
                        held.write(writer)
                        (bid,) = struct.unpack("<I", note.value[:4])
                        stats.boots += 1
                        bn: dict = {"event": "boot", "boot_id": f"{bid:08x}", "n": stats.boots}
                        if len(note.value) >= 12:  # the transport knows when its device time 0 was
                            (epoch,) = struct.unpack_from("<d", note.value, 4)
                            if epoch == epoch:  # not NaN
                                bn["epoch_unix_s"] = round(epoch, 3)
                                bn["epoch_from"] = note.value[12:].decode(errors="replace")
                        writer.write_note(bn, time.time())
                        boot[0] = bid
                        # a boot that starts during the recording starts at seq 0: count a gap from there
                        trackers.setdefault(bid, _SeqTracker(0 if stats.boots > 1 else None))
                        reassemblers = {"stream": wire.Reassembler(), "event": wire.Reassembler()}
                        continue
                    stats.notifications += 1
                    r = reassemblers.setdefault(note.channel, wire.Reassembler())
                    packet = r.feed(note.value)
                    now = time.monotonic()
                    lost0, gap_from = stats.lost_samples, trackers[boot[0]].next_seq
                    decoded = _accept(packet, trackers[boot[0]], stats, writer, offline, boot[0]) \
                        if packet is not None else None
                    if decoded is not None:
                        if on_packet and isinstance(decoded, wire.SamplesPacket | wire.EventPacket):
                            on_packet = _observe(on_packet, decoded, writer)
                        if stats.lost_samples > lost0:  # a gap: note it (after what came before it)
                            held.write(writer)
                            writer.write_note(_gap_note(gap_from, stats.lost_samples - lost0, boot[0],
                                                        overflow[0], offline, rebooted), time.time())
                        if not held.packets:
                            held.since = now
                        held.packets.append(packet)
                    if held.packets and (chunk_interval_s <= 0 or len(held.packets) >= max_chunk_packets
                                         or now - held.since >= chunk_interval_s):
                        held.write(writer)
                    if on_progress and now - last_progress >= progress_interval_s:
                        last_progress = now
                        on_progress(stats)
            except BaseException as e:  # the link failed, or Ctrl-C / cancellation
                error = e
                raise
            finally:
                syncer.cancel()
                with contextlib.suppress(BaseException):
                    await syncer
                held.write(writer)
                for n in transport.drain_notes():
                    writer.write_note(n, time.time())
                stats.dropped_fragments = sum(r.dropped for r in reassemblers.values())
                stats.seconds = time.monotonic() - t0
                end = {"event": "session_end", "stats": stats.as_dict(), "link": transport.link_summary()}
                if isinstance(error, asyncio.CancelledError | KeyboardInterrupt):
                    end["stopped"] = "interrupted"  # Ctrl-C / SIGTERM: a normal end
                elif error is not None:
                    end["error"] = f"{type(error).__name__}: {error}".rstrip(": ")
                writer.write_note(end, time.time())
                if on_progress:
                    on_progress(stats)
    return stats


def _gap_note(from_seq: int | None, missing: int, boot_id: int | None, overflow: dict | None,
              offline: _OfflineMarks | None = None, rebooted: set[str] | None = None) -> dict:
    """NOTE for ``missing`` samples absent from ``from_seq`` on: "on-board buffer overflow"
    when the device said it no longer held ``from_seq`` (a ``buffer_overflow`` note from
    the transport), the log-full reason when a LOG_DROPPED mark received before covers
    them, else "lost in transmission". (A LOG_DROPPED mark that arrives after the gap is
    still in the file: the analysis takes the reason from it, nape.analysis.stream.)"""
    start = from_seq or 0
    by_device = overflow is not None and overflow.get("from_seq") == start and \
        overflow.get("boot_id") in (None, f"{boot_id:08x}" if boot_id is not None else None)
    reason = "on-board buffer overflow" if by_device else "lost in transmission"
    if rebooted and boot_id is not None and f"{boot_id:08x}" in rebooted:
        reason = REASON_REBOOT  # the kept day log of a boot that ended: the rest was in its RAM
    if offline is not None and offline.dropped_in(boot_id, start, missing):
        reason = REASON_LOG_FULL
    return {"event": "gap", "boot_id": None if boot_id is None else f"{boot_id:08x}", "from_seq": start,
            "to_seq": (start + missing) & 0xFFFFFFFF, "missing_samples": missing, "reason": reason}


class _OfflineMarks:
    """Mark ids seen per boot (MARKS dedupe) and the LOG_DROPPED ranges (gap reasons)."""

    def __init__(self) -> None:
        self.seen: dict[int | None, set[int]] = {}
        self.dropped: dict[int | None, list[tuple[int, int]]] = {}

    def new(self, boot_id: int | None, packet: MarksPacket) -> int:
        """Marks of ``packet`` not seen before in this boot (recorded as seen now)."""
        seen = self.seen.setdefault(boot_id, set())
        fresh = [m for m in packet.marks if m.mark_id not in seen]
        for m in fresh:
            seen.add(m.mark_id)
            if m.kind == wire_marks.LOG_DROPPED and m.b > 0:
                self.dropped.setdefault(boot_id, []).append((m.c, m.b))
        return len(fresh)

    def dropped_in(self, boot_id: int | None, from_seq: int, missing: int) -> bool:
        """True when a LOG_DROPPED mark of this boot overlaps seqs ``from_seq`` .. + ``missing``."""
        return any(((c - from_seq) & 0xFFFFFFFF) < missing or ((from_seq - c) & 0xFFFFFFFF) < b
                   for c, b in self.dropped.get(boot_id, []))


class _Held:
    """Packets received but not yet written (at most ``chunk_interval_s`` old)."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.since = 0.0  # monotonic arrival time of the oldest held packet

    def write(self, writer: RecordingWriter) -> None:
        if self.packets:
            packets, self.packets = self.packets, []
            writer.write_packets(packets, time.time())


async def _housekeeping(writer: RecordingWriter, held: _Held, chunk_s: float, fsync_s: float) -> None:
    """While the stream pauses: write held packets once due, fsync once due."""
    period = min(x for x in (chunk_s, fsync_s, 0.5) if x > 0) / 2
    while True:
        await asyncio.sleep(period)
        if held.packets and time.monotonic() - held.since >= chunk_s:
            held.write(writer)
        if fsync_s > 0:
            writer.sync_if_due()


def _observe(fn, decoded, writer: RecordingWriter):
    """Call the ``on_packet`` observer; one that fails is noted in the file and dropped,
    so a live view's fault never costs recorded data. Returns the observer to keep (or None)."""
    try:
        fn(decoded, time.time())
        return fn
    except Exception as e:  # any observer fault: the recording goes on without it
        writer.write_note({"event": "observer_error", "error": f"{type(e).__name__}: {e}"}, time.time())
        return None


def _accept(packet: bytes, tracker: _SeqTracker, stats: RecordStats, writer: RecordingWriter,
            offline: _OfflineMarks | None = None, boot_id: int | None = None):
    """The decoded packet if it belongs in the file, else None (malformed: noted; duplicate)."""
    try:
        decoded = wire.decode_packet(packet)
    except PacketError as e:
        stats.malformed += 1
        stats.first_error = stats.first_error or str(e)
        writer.write_note({"event": "malformed_packet", "error": str(e), "hex": packet[:600].hex()}, time.time())
        return None
    if isinstance(decoded, wire.EventPacket):
        stats.event_packets += 1
        stats.packets += 1
        return decoded
    if isinstance(decoded, MarksPacket):
        fresh = (offline or _OfflineMarks()).new(boot_id, decoded)
        if not fresh:
            return None  # every mark seen before: a repeat
        stats.marks += fresh
        stats.packets += 1
        return decoded
    if not tracker.accept(decoded.seq, decoded.count, stats):
        return None
    stats.packets += 1
    stats.samples += decoded.count
    if isinstance(decoded, LogPacket):
        stats.log_samples += decoded.count
        return decoded
    stats.backfilled_samples += int((decoded.flags & FLAG_BACKFILL != 0).sum())
    stats.last_packet = decoded
    return decoded
