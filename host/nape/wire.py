"""Wire format v1 decoder (protocol/SPEC.md): notifications -> packets -> samples.

Units after decoding: quaternion (w, x, y, z) unitless, acceleration m/s^2 (specific
force, sensor frame), angular velocity rad/s (sensor frame), device time ms.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from .errors import PacketError

VERSION = 1
TYPE_SAMPLES = 1
TYPE_EVENT = 2
TYPE_LOG = 3  # offline day log, orientation at a reduced rate (nape.wire_log)
TYPE_MARKS = 4  # offline day log, timestamped marks (nape.wire_marks)
SAMPLES_HEADER = 14
EVENT_HEADER = 18
MAX_PACKET = 512

G = 9.80665
ACC_LSB_MS2 = G / 1000.0  # 1 mg
GYR_LSB_RADS = np.deg2rad(0.1)  # 0.1 deg/s
Q_LSB = 1.0 / 16384.0
QUAT_NORM_TOL = 0.02

FLAG_TRUNK_SAT = 0x01
FLAG_HEAD_SAT = 0x02
FLAG_TRUNK_REST = 0x04
FLAG_HEAD_REST = 0x08
FLAG_ALERT = 0x10
FLAG_JOLT = 0x20
FLAG_BACKFILL = 0x40

FRAG_START = 0x80
FRAG_END = 0x40

ROLE_BITS = (("trunk", 1), ("head", 2))


def roles_of(imu_mask: int) -> tuple[str, ...]:
    """IMU roles present in ``imu_mask``, in wire order (trunk first)."""
    return tuple(role for role, bit in ROLE_BITS if imu_mask & bit)


@dataclass
class SamplesPacket:
    """A decoded SAMPLES packet. Arrays are indexed [sample, imu, axis]."""

    imu_mask: int
    seq: int
    t_ms: int
    period_us: int
    flags: np.ndarray  # (n,) uint8
    quat: np.ndarray  # (n, n_imu, 4) w, x, y, z
    acc: np.ndarray  # (n, n_imu, 3) m/s^2
    gyr: np.ndarray  # (n, n_imu, 3) rad/s

    @property
    def count(self) -> int:
        return len(self.flags)

    @property
    def roles(self) -> tuple[str, ...]:
        return roles_of(self.imu_mask)


@dataclass
class EventPacket:
    """A decoded EVENT packet: part of a raw high-rate window around a jolt trigger."""

    imu_mask: int
    event_id: int
    first_index: int
    total: int
    pre_trigger: int
    rate_hz: int
    trigger_t_ms: int
    acc: np.ndarray  # (n, n_imu, 3) m/s^2
    gyr: np.ndarray  # (n, n_imu, 3) rad/s

    @property
    def count(self) -> int:
        return len(self.acc)

    @property
    def roles(self) -> tuple[str, ...]:
        return roles_of(self.imu_mask)


def _check_common(data: bytes) -> tuple[int, int, int]:
    if len(data) < 4:
        raise PacketError(f"packet too short: {len(data)} bytes, header needs 4")
    version, ptype, mask, count = data[0], data[1], data[2], data[3]
    if version != VERSION:
        raise PacketError(f"unsupported wire format version {version} (this host reads {VERSION})")
    if ptype not in (TYPE_SAMPLES, TYPE_EVENT, TYPE_LOG, TYPE_MARKS):
        raise PacketError(f"unknown packet type {ptype}")
    if mask == 0 or mask & ~0x03:
        raise PacketError(f"invalid imu_mask 0x{mask:02x}")
    if count == 0:
        raise PacketError("packet holds 0 samples")
    return ptype, mask, count


def decode_packet(data: bytes):
    """Decode one reassembled packet: a :class:`SamplesPacket`, :class:`EventPacket`,
    :class:`nape.wire_log.LogPacket` (type 3) or :class:`nape.wire_marks.MarksPacket` (type 4).

    Raises:
        PacketError: the bytes do not follow protocol/SPEC.md (one-line message).
    """
    data = bytes(data)
    if len(data) >= 2 and data[0] == VERSION and data[1] in (TYPE_LOG, TYPE_MARKS):
        from .wire_log import decode_log_packet  # they import this module
        from .wire_marks import decode_marks_packet

        return decode_log_packet(data) if data[1] == TYPE_LOG else decode_marks_packet(data)
    ptype, mask, count = _check_common(data)
    n_imu = len(roles_of(mask))
    if ptype == TYPE_SAMPLES:
        return _decode_samples(data, mask, count, n_imu)
    return _decode_event(data, mask, count, n_imu)


def _decode_samples(data: bytes, mask: int, count: int, n_imu: int) -> SamplesPacket:
    size = 1 + 20 * n_imu
    expected = SAMPLES_HEADER + count * size
    if len(data) != expected:
        raise PacketError(f"SAMPLES packet is {len(data)} bytes, header implies {expected}")
    seq, t_ms, period_us = struct.unpack_from("<IIH", data, 4)
    if period_us == 0:
        raise PacketError("SAMPLES packet has period_us 0")
    dtype = np.dtype([("flags", "u1"), ("imu", "<i2", (n_imu, 10))])
    rec = np.frombuffer(data, dtype=dtype, count=count, offset=SAMPLES_HEADER)
    raw = rec["imu"].astype(np.float64)
    quat = raw[:, :, 0:4] * Q_LSB
    norms = np.linalg.norm(quat, axis=2)
    bad = np.abs(norms - 1.0) > QUAT_NORM_TOL
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise PacketError(f"sample {i} has a non-unit quaternion (norm {norms.flat[np.argmax(bad)]:.3f})")
    return SamplesPacket(
        imu_mask=mask,
        seq=seq,
        t_ms=t_ms,
        period_us=period_us,
        flags=rec["flags"].copy(),
        quat=quat,
        acc=raw[:, :, 4:7] * ACC_LSB_MS2,
        gyr=raw[:, :, 7:10] * GYR_LSB_RADS,
    )


def _decode_event(data: bytes, mask: int, count: int, n_imu: int) -> EventPacket:
    expected = EVENT_HEADER + count * 12 * n_imu
    if len(data) != expected:
        raise PacketError(f"EVENT packet is {len(data)} bytes, header implies {expected}")
    event_id, first, total, pre, rate, trig = struct.unpack_from("<HHHHHI", data, 4)
    if rate == 0:
        raise PacketError("EVENT packet has rate_hz 0")
    if first + count > total:
        raise PacketError(f"EVENT samples {first}..{first + count} exceed window total {total}")
    if pre >= total:
        raise PacketError(f"EVENT pre_trigger {pre} not below window total {total}")
    raw = np.frombuffer(data, dtype="<i2", offset=EVENT_HEADER).reshape(count, n_imu, 6).astype(np.float64)
    return EventPacket(
        imu_mask=mask,
        event_id=event_id,
        first_index=first,
        total=total,
        pre_trigger=pre,
        rate_hz=rate,
        trigger_t_ms=trig,
        acc=raw[:, :, 0:3] * ACC_LSB_MS2,
        gyr=raw[:, :, 3:6] * GYR_LSB_RADS,
    )


@dataclass
class Reassembler:
    """Joins notification fragments back into packets.

    A lost fragment (counter gap) or a fragment out of place drops the partial packet
    and counts it in ``dropped``; the packet sequence numbers then show the loss.
    """

    dropped: int = 0
    _parts: list[bytes] = field(default_factory=list)
    _size: int = 0
    _expect: int | None = None

    def feed(self, value: bytes) -> bytes | None:
        """Feed one notification value; return a complete packet or None."""
        if not value:
            self.dropped += 1
            return None
        hdr = value[0]
        counter = hdr & 0x3F
        in_order = self._expect is None or counter == self._expect
        self._expect = (counter + 1) & 0x3F
        if hdr & FRAG_START:
            if self._parts:
                self.dropped += 1  # previous packet never ended
            self._parts, self._size = [], 0
        elif not self._parts or not in_order:
            if self._parts or not in_order:
                self.dropped += 1
            self._parts, self._size = [], 0
            return None
        self._parts.append(value[1:])
        self._size += len(value) - 1
        if self._size > MAX_PACKET:
            self.dropped += 1
            self._parts, self._size = [], 0
            return None
        if hdr & FRAG_END:
            packet = b"".join(self._parts)
            self._parts, self._size = [], 0
            return packet
        return None


def _to_i16(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round half away from zero (as the firmware does) and saturate to int16."""
    r = np.sign(values) * np.floor(np.abs(values) + 0.5)
    sat = (r > 32767) | (r < -32768)
    return np.clip(r, -32768, 32767).astype("<i2"), sat


def encode_samples(
    imu_mask: int,
    seq: int,
    t_ms: int,
    period_us: int,
    flags: np.ndarray,
    quat: np.ndarray,
    acc: np.ndarray,
    gyr: np.ndarray,
) -> bytes:
    """Encode one SAMPLES packet (host-side twin of firmware/wire.py, for import and vectors).

    Arrays are [sample, imu, axis] in (w, x, y, z), m/s^2 and rad/s. Saturated values
    set the TRUNK_SAT / HEAD_SAT flag of their sample.
    """
    n, n_imu = quat.shape[0], quat.shape[1]
    if n_imu != len(roles_of(imu_mask)) or not 1 <= n <= 255:
        raise PacketError(f"cannot encode {n} samples of {n_imu} IMUs with mask {imu_mask}")
    q, _ = _to_i16(quat * 16384.0)
    a, sa = _to_i16(acc / ACC_LSB_MS2)
    g, sg = _to_i16(gyr / GYR_LSB_RADS)
    sat = sa.any(axis=2) | sg.any(axis=2)  # (n, n_imu)
    fl = np.asarray(flags, dtype=np.uint8) & 0x7F
    bits = [FLAG_TRUNK_SAT if role == "trunk" else FLAG_HEAD_SAT for role in roles_of(imu_mask)]
    for k, bit in enumerate(bits):
        fl = np.where(sat[:, k], fl | bit, fl)
    dtype = np.dtype([("flags", "u1"), ("imu", "<i2", (n_imu, 10))])
    rec = np.zeros(n, dtype=dtype)
    rec["flags"] = fl
    rec["imu"] = np.concatenate([q, a, g], axis=2)
    header = struct.pack(
        "<BBBBIIH", VERSION, TYPE_SAMPLES, imu_mask, n, seq & 0xFFFFFFFF, t_ms & 0xFFFFFFFF, period_us
    )
    return header + rec.tobytes()


def encode_event(
    imu_mask: int,
    event_id: int,
    first_index: int,
    total: int,
    pre_trigger: int,
    rate_hz: int,
    trigger_t_ms: int,
    acc: np.ndarray,
    gyr: np.ndarray,
) -> bytes:
    """Encode one EVENT packet; ``acc``/``gyr`` are [sample, imu, axis] in m/s^2, rad/s."""
    n = acc.shape[0]
    a, _ = _to_i16(acc / ACC_LSB_MS2)
    g, _ = _to_i16(gyr / GYR_LSB_RADS)
    header = struct.pack(
        "<BBBBHHHHHI", VERSION, TYPE_EVENT, imu_mask, n, event_id & 0xFFFF, first_index, total,
        pre_trigger, rate_hz, trigger_t_ms & 0xFFFFFFFF,
    )
    return header + np.concatenate([a, g], axis=2).astype("<i2").tobytes()


def fragment(packet: bytes, max_value_len: int, counter: int = 0) -> list[bytes]:
    """Split ``packet`` into notification values (host twin of the firmware Fragmenter)."""
    step = max_value_len - 1
    out = []
    for k, pos in enumerate(range(0, max(len(packet), 1), step)):
        hdr = (counter + k) & 0x3F
        if pos == 0:
            hdr |= FRAG_START
        if pos + step >= len(packet):
            hdr |= FRAG_END
        out.append(bytes([hdr]) + packet[pos : pos + step])
    return out


@dataclass
class SampleArrays:
    """Many SAMPLES packets decoded at once (same imu_mask). Arrays are per sample."""

    imu_mask: int
    seq: np.ndarray  # (n,) int64, unwrapped is the caller's job
    t_ms: np.ndarray  # (n,) float64 device time, ms (first-sample time + i * period)
    period_us: np.ndarray  # (n,) int64
    flags: np.ndarray  # (n,) uint8
    quat: np.ndarray  # (n, n_imu, 4)
    acc: np.ndarray  # (n, n_imu, 3) m/s^2
    gyr: np.ndarray  # (n, n_imu, 3) rad/s

    @property
    def roles(self) -> tuple[str, ...]:
        return roles_of(self.imu_mask)

    def __len__(self) -> int:
        return len(self.flags)


_HDR = struct.Struct("<BBBBIIH")
_HDR_DTYPE = np.dtype([("version", "u1"), ("type", "u1"), ("mask", "u1"), ("count", "u1"),
                       ("seq", "<u4"), ("t_ms", "<u4"), ("period_us", "<u2")])
assert _HDR_DTYPE.itemsize == SAMPLES_HEADER
_SAMPLE_BYTES = {1: 21, 2: 21, 3: 41}  # flags + 20 bytes per IMU (protocol/SPEC.md)
_NORM2_LO, _NORM2_HI = (1.0 - QUAT_NORM_TOL) ** 2, (1.0 + QUAT_NORM_TOL) ** 2


def _sample_dtype(n_imu: int) -> np.dtype:
    return np.dtype([("flags", "u1"), ("imu", "<i2", (n_imu, 10))])


def decode_samples_many(
    packets: list[bytes], events: list[EventPacket] | None = None, offline: list | None = None,
) -> tuple[dict[int, SampleArrays], list[tuple[int, str]]]:
    """Decode SAMPLES packets in bulk, fast: the headers of all packets are read as one numpy
    structured array, and the bodies of packets of the same length as one strided view.

    Samples keep the packets' order (a caller orders by ``seq``). Flags are passed through
    as sent: the ``BACKFILL`` bit (a sample re-sent from the device's offline buffer) does
    not change how a sample decodes.

    Args:
        packets: reassembled packets (bytes-like), any types.
        events: if given, valid EVENT packets are decoded and appended to it, and malformed
            ones reported as errors; if None, EVENT packets are skipped silently.
        offline: if given, valid LOG (type 3) and MARKS (type 4) packets are appended to it as
            ``(packet index, packet)``. They are decoded either way, so malformed ones are
            reported as errors (as ``decode_packet`` would) and valid ones skipped without it.

    Returns:
        (arrays by imu_mask, [(packet index, error message)] for malformed packets, sorted).
        A malformed packet contributes no samples; ``decode_packet`` gives the same verdict
        (and the message) for each packet on its own.
    """
    n = len(packets)
    errors: list[tuple[int, str]] = []
    if n == 0:
        return {}, errors
    lens = np.fromiter(map(len, packets), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(packets), dtype=np.uint8)
    starts = np.cumsum(lens) - lens
    same = bool((lens == lens[0]).all()) and lens[0] >= SAMPLES_HEADER
    if same:  # the usual case: no gather at all, rows are views of the joined bytes
        rows = buf.reshape(n, int(lens[0]))
        hdr = np.ascontiguousarray(rows[:, :SAMPLES_HEADER]).view(_HDR_DTYPE)[:, 0]
    else:
        padded = np.concatenate([buf, np.zeros(SAMPLES_HEADER, np.uint8)])  # headers of short packets
        hdr = padded[starts[:, None] + np.arange(SAMPLES_HEADER)].view(_HDR_DTYPE)[:, 0]
    mask, count = hdr["mask"].astype(np.int64), hdr["count"].astype(np.int64)
    is_v1 = (hdr["version"] == VERSION) & (lens >= 2)
    sample_bytes = np.where(mask == 3, 41, 21)
    ok = (is_v1 & (hdr["type"] == TYPE_SAMPLES) & (lens >= SAMPLES_HEADER) & (mask >= 1) & (mask <= 3)
          & (count > 0) & (hdr["period_us"] > 0) & (lens == SAMPLES_HEADER + count * sample_bytes))
    is_event = is_v1 & (hdr["type"] == TYPE_EVENT)
    for i in np.flatnonzero(~ok):
        i = int(i)
        if is_event[i] and events is None:
            continue
        try:
            p = decode_packet(packets[i])
        except PacketError as e:
            errors.append((i, str(e)))
            continue
        if isinstance(p, EventPacket):
            if events is not None:
                events.append(p)
        elif not isinstance(p, SamplesPacket) and offline is not None:
            offline.append((i, p))
    out: dict[int, SampleArrays] = {}
    for m in (1, 2, 3):
        sel = ok & (mask == m)
        if not sel.any():
            continue
        n_imu = 1 + (m == 3)
        parts = []
        for length in np.unique(lens[sel]):
            idx = np.flatnonzero(sel & (lens == length))
            k = int((length - SAMPLES_HEADER) // _SAMPLE_BYTES[m])
            pkt_dtype = np.dtype([("h", _HDR_DTYPE), ("s", _sample_dtype(n_imu), (k,))])
            if same:
                p_rows = rows if len(idx) == n else rows[idx]
            else:
                p_rows = buf[starts[idx][:, None] + np.arange(int(length))]
            recs = np.ascontiguousarray(p_rows).view(pkt_dtype)[:, 0]["s"]  # (packets, k)
            parts.append((idx, k, recs))
        _decode_group(m, n_imu, parts, hdr, out, errors)
    errors.sort()
    return out, errors


def _decode_group(m: int, n_imu: int, parts: list, hdr: np.ndarray, out: dict, errors: list) -> None:
    """Samples of one imu_mask from (packet indices, samples per packet, records) per length."""
    pkt = np.concatenate([np.repeat(idx, k) for idx, k, _ in parts])  # packet index per sample
    within = np.concatenate([np.tile(np.arange(k), len(idx)) for idx, k, _ in parts])
    imu = [recs["imu"].reshape(-1, n_imu, 10) for _, _, recs in parts]
    flags = [recs["flags"].reshape(-1) for _, _, recs in parts]
    if len(parts) > 1:  # back into packet order
        order = np.argsort(pkt, kind="stable")
        pkt, within = pkt[order], within[order]
        raw = np.concatenate(imu)[order]
        fl = np.concatenate(flags)[order]
    else:
        raw, fl = imu[0], flags[0].copy()
    quat = raw[:, :, 0:4] * Q_LSB
    norm2 = np.einsum("nij,nij->ni", quat, quat)
    good = ((norm2 >= _NORM2_LO) & (norm2 <= _NORM2_HI)).all(axis=1)
    keep = None
    if not good.all():
        # a packet with any bad quaternion is malformed as a whole, like decode_packet says
        bad = np.unique(pkt[~good])
        errors.extend((int(b), "SAMPLES packet has a non-unit quaternion") for b in bad)
        keep = ~np.isin(pkt, bad)
        pkt, within, raw, fl, quat = pkt[keep], within[keep], raw[keep], fl[keep], quat[keep]
        if not len(pkt):
            return
    h = hdr[pkt]
    per = h["period_us"].astype(np.int64)
    out[m] = SampleArrays(
        imu_mask=m,
        seq=(h["seq"].astype(np.int64) + within) & 0xFFFFFFFF,
        t_ms=h["t_ms"].astype(np.float64) + within * (per / 1000.0),
        period_us=per,
        flags=fl,
        quat=quat,
        acc=raw[:, :, 4:7] * ACC_LSB_MS2,
        gyr=raw[:, :, 7:10] * GYR_LSB_RADS,
    )
