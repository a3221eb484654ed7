"""Offline buffer: SAMPLES packets by sequence number, in RAM, spilling to a flash file.

MicroPython. Every SAMPLES packet the pipeline closes is appended here, whether or not
a central is listening; the BLE sender reads them back by sequence number (live
streaming is "read from the newest", backfill is "read from an older seq"). The RAM
ring keeps the newest packets; when it is full the oldest ones move to a circular file
on flash in batches (one flash block at a time) unless they were already delivered to a
streaming central, in which case they are dropped. When the flash file is full its
oldest packets are overwritten (counted in ``overflow_samples``).

Storage is in fixed slots of ``SLOT`` bytes: a length byte and the packet as it went
on the wire (≤ 243 bytes: the firmware never makes packets bigger than fit an ATT MTU
of 247). Buffers and indexes are allocated once, in ``__init__``.

Capacity at the default rate (100 Hz, two IMUs, 5 samples per 219-byte packet,
20 packets/s): RAM 4096 slots (1.0 MB, PSRAM; ``config.BLE_RAM_SLOTS``) = 20 480
samples = 3.4 min; flash 2 672 slots (640 KiB, ``config.BLE_SPILL_KIB``) = 2.2 min;
together **5.6 min**: enough for the ``config.SAVER_AFTER_S`` after a central left, after
which the offline day log (``daylog.py``, 18 h at 10 Hz on most of the 4.94 MiB VFS of
MicroPython's 8 MiB-flash table) takes over. Without the day log, 3904 KiB held 16 384
slots = 13.7 min (0.28 h with the RAM ring), and a 16 MiB board (12.8 MiB VFS) with
``BLE_SPILL_KIB = 12288`` 51 568 slots = 0.77 h. At the saver rate (50 Hz) each figure
doubles, and again with one IMU (10 samples per 224-byte packet). Beyond that the oldest
unconfirmed samples are overwritten (``overflow_samples``).

Sequence numbers are u32 and wrap; all comparisons are modular relative to the oldest
stored packet.
"""

from array import array
from micropython import const

SLOT = const(244)  # 1 length byte + packet of at most 243 bytes
MAX_PACKET = const(243)
_M32 = const(0xFFFFFFFF)


def packet_seq(pkt):
    """(seq, count) of a SAMPLES packet (bytes-like, wire format v1)."""
    return (pkt[4] | (pkt[5] << 8) | (pkt[6] << 16) | (pkt[7] << 24)), pkt[3]


def spill_slots(kib, spill_batch=16):
    """Packets a spill file of ``kib`` KiB holds, in whole ``spill_batch`` writes
    (``config.BLE_SPILL_KIB``): 640 KiB -> 2 672 slots, 3904 KiB -> 16 384."""
    per = SLOT * spill_batch
    return (kib * 1024 // per) * spill_batch


def capacity_s(slots, samples_per_packet, rate_hz):
    """Seconds of samples ``slots`` packets hold (5 two-IMU / 10 one-IMU samples per
    packet at MTU 247; rate in Hz)."""
    return slots * samples_per_packet / rate_hz


def _rel(a, base):
    return (a - base) & _M32


class PacketStore:
    """Ring of SAMPLES packets, RAM first, spilling to a file on flash.

    Args:
        ram_slots: packets kept in RAM (SLOT bytes each).
        flash_path: path of the spill file (created/truncated), or None for RAM only.
        flash_slots: packets the spill file holds.
        spill_batch: packets moved to flash per write (16 slots = 3904 bytes, one block).

    Raises:
        ValueError: a packet longer than ``MAX_PACKET`` or not a SAMPLES packet.
        OSError: the spill file cannot be created or written.
    """

    def __init__(self, ram_slots=4096, flash_path=None, flash_slots=16384, spill_batch=16):
        if ram_slots < 2 * spill_batch:
            raise ValueError("ram_slots must be >= 2 * spill_batch")
        self.ram_cap = ram_slots
        self.ram = bytearray(ram_slots * SLOT)
        self.ram_seq = array("I", bytes(4 * ram_slots))
        self.ram_cnt = bytearray(ram_slots)
        self.ram_tail = 0  # oldest RAM slot
        self.ram_n = 0
        self.spill_batch = spill_batch
        self.flash_path = flash_path
        self.flash_cap = flash_slots if flash_path else 0
        self.flash_seq = array("I", bytes(4 * self.flash_cap))
        self.flash_cnt = bytearray(self.flash_cap)
        self.flash_tail = 0
        self.flash_n = 0
        self.flash_size = 0  # slots the file has grown to
        self._f = None
        if flash_path:
            self._f = open(flash_path, "w+b")
        self._slot = bytearray(SLOT)
        # counters (status characteristic)
        self.overflow_samples = 0  # lost: evicted unconfirmed from flash (or RAM without flash)
        self.dropped_delivered = 0  # packets evicted from RAM after delivery (normal)
        self.spilled = 0  # packets written to flash
        self.flash_writes = 0  # write() calls on the spill file

    # --- size --------------------------------------------------------------------
    def count(self):
        """Packets stored."""
        return self.ram_n + self.flash_n

    def capacity(self):
        return self.ram_cap + self.flash_cap

    def fill_permille(self):
        return (1000 * self.count()) // self.capacity()

    def oldest_seq(self):
        """First seq stored, or None when empty."""
        if self.flash_n:
            return self.flash_seq[self.flash_tail]
        if self.ram_n:
            return self.ram_seq[self.ram_tail]
        return None

    def next_seq(self):
        """Seq after the newest stored sample, or None when empty."""
        if not self.ram_n and not self.flash_n:
            return None
        if self.ram_n:
            i = (self.ram_tail + self.ram_n - 1) % self.ram_cap
            return (self.ram_seq[i] + self.ram_cnt[i]) & _M32
        i = (self.flash_tail + self.flash_n - 1) % self.flash_cap
        return (self.flash_seq[i] + self.flash_cnt[i]) & _M32

    def clear(self):
        self.ram_tail = self.ram_n = 0
        self.flash_tail = self.flash_n = 0

    # --- writing -------------------------------------------------------------------
    def append(self, pkt, delivered_to=None):
        """Store one SAMPLES packet (the newest).

        ``delivered_to``: seq before which the central confirmed every sample (None:
        nothing confirmed); RAM packets below it are dropped, not spilled, when room is
        needed, and flash packets below it are not counted as lost when overwritten.
        """
        n = len(pkt)
        if n > MAX_PACKET or n < 14 or pkt[1] != 1:
            raise ValueError("not a storable SAMPLES packet")
        if self.ram_n == self.ram_cap:
            self._make_room(delivered_to)
        i = (self.ram_tail + self.ram_n) % self.ram_cap
        off = i * SLOT
        self.ram[off] = n
        self.ram[off + 1:off + 1 + n] = pkt
        seq, cnt = packet_seq(pkt)
        self.ram_seq[i] = seq
        self.ram_cnt[i] = cnt
        self.ram_n += 1

    def _make_room(self, delivered_to):
        k = self.spill_batch
        # delivered packets at the old end are simply dropped
        if delivered_to is not None:
            base = self.oldest_seq()
            lim = _rel(delivered_to, base)
            if lim >= 0x80000000:
                lim = 0  # the central is behind the oldest packet: nothing is "delivered"
            while k and self.ram_n:
                i = self.ram_tail
                if _rel((self.ram_seq[i] + self.ram_cnt[i]) & _M32, base) > lim:
                    break
                self.ram_tail = (i + 1) % self.ram_cap
                self.ram_n -= 1
                self.dropped_delivered += 1
                k -= 1
            if k < self.spill_batch:
                return
        if self._f is None:
            for _ in range(k):  # no flash: the oldest are lost
                i = self.ram_tail
                self.overflow_samples += self.ram_cnt[i]  # (confirmed ones were dropped above)
                self.ram_tail = (i + 1) % self.ram_cap
                self.ram_n -= 1
            return
        self._spill(k, delivered_to)

    def _spill(self, k, delivered_to=None):
        """Move the k oldest RAM packets to the flash file (oldest flash ones overwritten)."""
        while k:
            i = self.ram_tail
            run = min(k, self.ram_cap - i)  # contiguous in RAM
            fpos = (self.flash_tail + self.flash_n) % self.flash_cap
            run = min(run, self.flash_cap - fpos)  # contiguous in the file
            # evict the oldest flash packets that the run overwrites
            over = self.flash_n + run - self.flash_cap
            base = self.flash_seq[self.flash_tail]
            lim = 0 if delivered_to is None else _rel(delivered_to, base)
            if lim >= 0x80000000:
                lim = 0
            while over > 0:
                i_old = self.flash_tail
                if _rel((self.flash_seq[i_old] + self.flash_cnt[i_old]) & _M32, base) > lim:
                    self.overflow_samples += self.flash_cnt[i_old]
                self.flash_tail = (self.flash_tail + 1) % self.flash_cap
                self.flash_n -= 1
                over -= 1
            f = self._f
            if f is None:
                return
            f.seek(fpos * SLOT)
            f.write(memoryview(self.ram)[i * SLOT:(i + run) * SLOT])
            self.flash_writes += 1
            if fpos + run > self.flash_size:
                self.flash_size = fpos + run
            for j in range(run):
                self.flash_seq[fpos + j] = self.ram_seq[i + j]
                self.flash_cnt[fpos + j] = self.ram_cnt[i + j]
            self.flash_n += run
            self.spilled += run
            self.ram_tail = (i + run) % self.ram_cap
            self.ram_n -= run
            k -= run

    # --- reading -------------------------------------------------------------------
    def _find(self, seqs, cnts, tail, n, cap, target, base):
        """Logical index of the first packet whose end is after ``target``, or n."""
        lo, hi = 0, n
        t = _rel(target, base)
        while lo < hi:
            mid = (lo + hi) >> 1
            i = (tail + mid) % cap
            if _rel((seqs[i] + cnts[i]) & _M32, base) <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def read_from(self, seq):
        """The stored packet holding ``seq`` (or the first one after it, if ``seq`` was lost).

        Returns (packet bytes, first seq in it) with the packet trimmed so it starts at
        ``seq`` when ``seq`` falls inside it; None when nothing at or after ``seq`` is
        stored yet. A ``seq`` older than the oldest stored gives the oldest packet.
        """
        base = self.oldest_seq()
        if base is None:
            return None
        nxt = self.next_seq()
        if _rel(seq, base) >= _rel(nxt, base):
            if _rel(seq, nxt) < 0x80000000:
                return None  # at or after the newest: not produced yet
            seq = base  # older than anything stored: start at the oldest
        slot = self._slot
        j = self._find(self.flash_seq, self.flash_cnt, self.flash_tail, self.flash_n,
                       self.flash_cap, seq, base) if self.flash_n else 0
        if j < self.flash_n:
            i = (self.flash_tail + j) % self.flash_cap
            f = self._f
            if f is None:
                return None
            f.seek(i * SLOT)
            f.readinto(slot)
        else:
            j = self._find(self.ram_seq, self.ram_cnt, self.ram_tail, self.ram_n,
                           self.ram_cap, seq, base)
            if j >= self.ram_n:
                return None
            i = (self.ram_tail + j) % self.ram_cap
            off = i * SLOT
            slot[:] = memoryview(self.ram)[off:off + SLOT]
        n = slot[0]
        pkt = bytes(slot[1:1 + n])
        first, cnt = packet_seq(pkt)
        skip = _rel(seq, first)
        if 0 < skip < cnt:
            return trim(pkt, skip), seq
        return pkt, first

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


def trim(pkt, skip):
    """The same SAMPLES packet without its first ``skip`` samples (seq, t_ms adjusted)."""
    count = pkt[3]
    mask = pkt[2]
    size = 1 + 20 * ((mask & 1) + ((mask >> 1) & 1))
    seq, _ = packet_seq(pkt)
    t_ms = pkt[8] | (pkt[9] << 8) | (pkt[10] << 16) | (pkt[11] << 24)
    period_us = pkt[12] | (pkt[13] << 8)
    out = bytearray(pkt[:14])
    out[3] = count - skip
    seq = (seq + skip) & _M32
    t_ms = (t_ms + (skip * period_us + 500) // 1000) & _M32
    for k in range(4):
        out[4 + k] = (seq >> (8 * k)) & 0xFF
        out[8 + k] = (t_ms >> (8 * k)) & 0xFF
    out += pkt[14 + skip * size:14 + count * size]
    return bytes(out)


def mark_backfill(pkt):
    """Copy of a SAMPLES packet with the BACKFILL flag (0x40) set on every sample."""
    out = bytearray(pkt)
    mask = out[2]
    size = 1 + 20 * ((mask & 1) + ((mask >> 1) & 1))
    off = 14
    for _ in range(out[3]):
        out[off] |= 0x40
        off += size
    return out
