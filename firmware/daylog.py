"""Offline day log: what the board keeps on flash while no central is connected.

MicroPython. protocol/SPEC.md ("Streaming, backfill and the offline buffer", "Type 3: LOG",
"Type 4: MARKS") is the reference.

When no central has been connected for ``after_ms`` (``config.SAVER_AFTER_S``, the
power saver's delay) the board stops storing SAMPLES and logs instead (``logging``):

* both IMUs' fused orientation at ``log_hz`` (10 Hz) as LOG packets
  (``logpack.LogBatcher``, 38 two-IMU samples = 3.8 s per packet). LOG samples take
  sequence numbers from the SAMPLES line (the pipeline's batcher): one continuous
  ``seq`` line per boot, SAMPLES before and after, LOG in between;
* the posture alert's events, calibrations, dropped data and the offline start / end as
  MARKS packets (``logpack.MarksBatcher``, mark ids per boot);
* every jolt's whole EVENT window (all its packets, as the jolt screen made them).

Storage: one file of fixed 244-byte slots (a length byte and the packet), slot 0 a header
(magic, slot count, boot id). The index lives in RAM, allocated once: per slot a kind
byte and a u16 "next" link (3 bytes of heap per slot): four singly linked lists in
write order (free, LOG, MARKS, EVENT). The file grows as slots are first used, and starts
again from its header when the central has confirmed everything (``_rewind``), so a day
of logging after a full sync is written append-only. Only a full file (eviction) or a
partly confirmed one writes into freed slots inside the file, which on littlefs rewrites
the file's blocks after that point (not measured on hardware).

Eviction when full: the oldest LOG packet first (its samples are recorded in a
LOG_DROPPED mark, consecutive drops merged), then the oldest EVENT window, whole (an
EVENT_DROPPED mark), MARKS last. A window that cannot fit even then is not stored (an
EVENT_DROPPED mark).

Sending (``ble_service``): LOG packets go out on the stream characteristic merged into
the stored SAMPLES by ``seq`` (``read_log_from``); they are freed when the central's ACK
(or BACKFILL ``from_seq``) passes their end (``release_log``). MARKS (stream
characteristic) and EVENT windows (event characteristic) are sent once per link from a
cursor (``next_marks`` / ``next_event``) and freed by the central's LOG_ACK naming them
(``ack_marks`` / ``ack_event``); unacknowledged ones go again on the next link.

Capacity (two IMUs, 10 Hz, 242-byte packets of 3.8 s: 64 bytes of flash per second):
``config.DAYLOG_KIB`` = 3968 KiB on a **XIAO ESP32S3** (MicroPython's 8 MiB table: 4.94
MiB VFS less the 640 KiB spill file, ~320 KiB of firmware files and bonds and
``config.DAYLOG_FREE_KIB``) = 16 651 slots = **17.6 h** of orientation (35 h with the
trunk IMU only); every two-IMU jolt window costs 1.1 min of it at the saver's 200 Hz
(17 packets; 2.7 min at 500 Hz, 42 packets).
A **plain 4 MiB ESP32** (2 MiB VFS) gets what its free VFS allows (``plan``): 2048 -
320 - 128 = 1600 KiB = 6 713 slots = **7.1 h** (14 h trunk only): a 16-hour day of two
IMUs needs 8 MiB of flash. Index: 49 KiB / 20 KiB of heap.

A reboot does not keep the log: sequence numbers restart at every boot, so the file at
boot is reset, with a printed reason (earlier boot's data, or a corrupt / truncated file).

Cost per logged sample (10 Hz): ``logpack.quat24`` per IMU (a few floats), the packet
buffer is written in place; one 244-byte file write per 3.8 s.
"""

import gc
import os
import struct
import sys
import time
from array import array

from micropython import const

import config
import logpack
from posture import STATE_ALERTED

SLOT = const(244)
MAX_PACKET = const(243)
MAGIC = b"NAPEDLG1"
NONE = const(0xFFFF)
_M32 = const(0xFFFFFFFF)

K_FREE = const(0)
K_LOG = const(1)
K_MARKS = const(2)
K_EV = const(3)  # first packet of an EVENT window
K_EVC = const(4)  # a further packet of the same window

_L_LOG = const(0)  # list indexes into _h / _t
_L_MK = const(1)
_L_EV = const(2)


def slots_for(kib):
    """Data slots of a day-log file of ``kib`` KiB (one slot is the header), at most 65534."""
    n = kib * 1024 // SLOT - 1
    return n if n < 65534 else 65534


def capacity_h(slots, imu_mask=3, log_hz=10):
    """Hours of orientation ``slots`` full LOG packets hold (no EVENT windows)."""
    return slots * logpack.per_packet(imu_mask) / log_hz / 3600


def _rel(a, base):
    return (a - base) & _M32


class DayLog:
    """The day log on flash (see the module doc).

    Args:
        path: the file (reset at construction).
        slots: data slots, 1..65534 (``slots_for(config.DAYLOG_KIB)``).
        imu_mask: IMUs logged (1 trunk, 3 both).
        boot_id: written in the file header (diagnosis only).
        log_hz: LOG rate; must divide the fused rates (10 Hz).
        after_ms: no central this long -> log (``config.SAVER_AFTER_S`` * 1000).
        verbose: print the reset reason.

    Raises:
        ValueError: bad arguments. OSError: the file cannot be created or written.

    Attributes (counters): ``log_packets`` / ``marks_packets`` / ``event_packets``
    written, ``log_dropped_samples``, ``windows_dropped``, ``marks_lost``,
    ``reset_reason`` (why the file was reset at boot).
    """

    def __init__(self, path, slots, imu_mask, boot_id=0, log_hz=10, after_ms=60000,
                 verbose=True):
        if not 1 <= slots <= 65534 or imu_mask not in (1, 3) or log_hz <= 0:
            raise ValueError("slots 1..65534, imu_mask 1 or 3, log_hz > 0")
        self.path = path
        self.cap = slots
        self.imu_mask = imu_mask
        self.log_hz = log_hz
        self.after_ms = after_ms
        self.nxt = array("H", bytes(2 * slots))
        self.kind = bytearray(slots)
        self._h = array("H", (NONE, NONE, NONE))
        self._t = array("H", (NONE, NONE, NONE))
        self._fh = NONE  # free list head
        self.n_free = 0
        self._fresh = 0  # slots never used: _fresh .. cap - 1
        self.n_log = 0
        self.n_marks = 0
        self.n_ev = 0
        self._slot = bytearray(SLOT)
        self._hdr = bytearray(12)
        self._hmv = memoryview(self._hdr)
        self._mkcopy = bytearray(logpack.MARKS_HDR + logpack.MARKS_MAX * logpack.MARK_SIZE)
        self.lb = logpack.LogBatcher(imu_mask, 1000 // log_hz)
        self.mb = logpack.MarksBatcher(imu_mask)
        self._log_hs = 0  # seq of the LOG head packet (valid while n_log)
        self._log_end = 0  # seq after the newest LOG packet (valid while n_log)
        self._log_cur = NONE  # LOG slot the send cursor is at (cache for read_log_from)
        self._mk_last = NONE  # MARKS / EVENT slot last sent on this link (NONE: none yet)
        self._ev_last = NONE
        self.acked = None  # seq before which the central confirmed everything
        # logging state
        self.logging = False
        self.pipe = None  # pipeline.Pipeline (attach)
        self._since = None  # ms the last central left (None: connected)
        self._starting = False  # OFFLINE_START waits for the first logged sample
        self._div = 1
        self._n = 0
        self._rate = 0
        self._t0 = 0  # t_ms of the current LOG packet's first sample
        self._alerted = False
        self._cal = False
        self.t_ms = 0  # time of the newest fused sample seen while logging
        self._drop_first = 0
        self._drop_n = 0
        # counters
        self.log_packets = 0
        self.marks_packets = 0
        self.event_packets = 0
        self.log_dropped_samples = 0
        self.windows_dropped = 0
        self.windows_stored = 0
        self.marks_lost = 0
        self.offline_periods = 0
        self.rewinds = 0  # the file started again after everything was confirmed
        self.reset_reason, self._f = self._open(path, boot_id, verbose)

    # --- file -----------------------------------------------------------------------
    def _open(self, path, boot_id, verbose):
        """Reset the file; returns (why the old one was not kept (printed), the file)."""
        why = "new file"
        try:
            f = open(path, "rb")
        except OSError:
            f = None
        if f is not None:
            try:
                size = f.seek(0, 2)
                f.seek(0)
                hdr = f.read(20) or b""
                if size == 0:
                    why = "empty file"
                elif len(hdr) < 20 or size < SLOT:
                    why = "truncated file (%d bytes, no whole header)" % size
                elif hdr[:8] != MAGIC:
                    why = "corrupt file (not a Nape day log)"
                else:
                    _v, _r, n, old = struct.unpack_from("<HHII", hdr, 8)
                    if size % SLOT or size > (n + 1) * SLOT:
                        why = "truncated or corrupt file (%d bytes for %d slots)" % (size, n)
                    else:
                        why = ("%d packets from an earlier boot (boot_id %08x): sequence "
                               "numbers restart at every boot" % (size // SLOT - 1, old))
            except (OSError, ValueError) as e:
                why = "unreadable file (%r)" % (e,)
            f.close()
        f = open(path, "w+b")  # truncates; OSError goes to the caller
        sl = self._slot
        for i in range(SLOT):
            sl[i] = 0
        sl[0:8] = MAGIC
        struct.pack_into("<HHII", sl, 8, 1, 0, self.cap, boot_id & _M32)
        f.write(sl)
        f.flush()
        if verbose:
            print("daylog: %s: %s: reset (%d slots, %.1f h of LOG)" % (
                path, why, self.cap, capacity_h(self.cap, self.imu_mask, self.log_hz)))
        return why, f

    def close(self):
        self._f.close()

    def _write(self, s, buf, n):
        sl = self._slot
        sl[0] = n
        sl[1:1 + n] = memoryview(buf)[:n]
        f = self._f
        f.seek((s + 1) * SLOT)
        f.write(sl)

    def _read(self, s):
        """Bytes of the packet in slot ``s`` (a copy)."""
        f = self._f
        f.seek((s + 1) * SLOT)
        sl = self._slot
        f.readinto(sl)
        return bytes(memoryview(sl)[1:1 + sl[0]])

    def _head(self, s, k=12):
        """The first ``k`` bytes of the packet in slot ``s``, in ``_hdr`` (returned)."""
        f = self._f
        f.seek((s + 1) * SLOT + 1)
        f.readinto(self._hmv[:k])
        return self._hdr

    def _seq_cnt(self, s):
        h = self._head(s, 8)
        return h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24), h[3]

    def _id16(self, s):
        h = self._head(s, 6)
        return h[4] | (h[5] << 8)

    # --- slot lists -------------------------------------------------------------------
    def _append(self, li, s):
        self.nxt[s] = NONE
        t = self._t[li]
        if t == NONE:
            self._h[li] = s
        else:
            self.nxt[t] = s
        self._t[li] = s

    def _unlink(self, li, prev, s):
        n = self.nxt[s]
        if prev == NONE:
            self._h[li] = n
        else:
            self.nxt[prev] = n
        if self._t[li] == s:
            self._t[li] = prev
        if self._mk_last == s:
            self._mk_last = prev
        if self._ev_last == s:
            self._ev_last = prev
        if self._log_cur == s:
            self._log_cur = NONE
        self.kind[s] = K_FREE
        self.nxt[s] = self._fh
        self._fh = s
        self.n_free += 1

    def _rewind(self):
        """Everything was confirmed (or never written): start the file again from its
        header, so the next day is written append-only. On littlefs a write inside a file
        rewrites the blocks after it (CTZ skip-lists); appending does not."""
        if self.n_log or self.n_marks or self.n_ev or not self._fresh or self.logging:
            return
        self._fh = NONE
        self.n_free = 0
        self._fresh = 0
        self._mk_last = self._ev_last = self._log_cur = NONE
        f = self._f
        f.close()
        f = open(self.path, "w+b")  # truncates (MicroPython files have no truncate())
        sl = self._slot
        for i in range(SLOT):
            sl[i] = 0
        sl[0:8] = MAGIC
        struct.pack_into("<HHII", sl, 8, 1, 0, self.cap, 0)
        f.write(sl)
        f.flush()
        self._f = f
        self.rewinds += 1

    def room(self):
        """Slots free now (without eviction)."""
        return self.n_free + self.cap - self._fresh

    def _take(self):
        s = self._fh
        if s != NONE:
            self._fh = self.nxt[s]
            self.n_free -= 1
            return s
        s = self._fresh
        self._fresh = s + 1
        return s

    def _make_room(self, k):
        """Evict until ``k`` slots are free: LOG, then EVENT windows, then MARKS."""
        while self.room() < k:
            if self.n_log:
                self._evict_log()
            elif self.n_ev:
                self._evict_window()
            elif self.n_marks:
                self._evict_marks()
            else:
                return False
        return True

    def _evict_log(self):
        s = self._h[_L_LOG]
        seq, cnt = self._seq_cnt(s)
        self._unlink(_L_LOG, NONE, s)
        self.n_log -= 1
        if self.n_log:
            self._log_hs = self._seq_cnt(self._h[_L_LOG])[0]
        a = self.acked
        if a is not None and _rel((seq + cnt) & _M32, seq) <= _rel(a, seq) < 0x80000000:
            return  # the central has it: no loss
        self.log_dropped_samples += cnt
        if self._drop_n and seq == (self._drop_first + self._drop_n) & _M32 \
                and self._drop_n + cnt <= 0xFFFF:
            self._drop_n += cnt
            return
        self._flush_drop()
        self._drop_first = seq
        self._drop_n = cnt

    def _flush_drop(self):
        n = self._drop_n
        if n:
            self._drop_n = 0
            self._mark(self.t_ms, logpack.LOG_DROPPED, 0, n, self._drop_first)

    def _evict_window(self):
        s = self._h[_L_EV]
        h = self._head(s, 10)
        eid = h[4] | (h[5] << 8)
        total = h[8] | (h[9] << 8)
        self._drop_window_at(NONE, s)
        self.windows_dropped += 1
        self._mark(self.t_ms, logpack.EVENT_DROPPED, 0, eid, total)

    def _drop_window_at(self, prev, s):
        """Free the window starting at slot ``s`` (``prev``: its predecessor)."""
        while True:
            n = self.nxt[s]
            self._unlink(_L_EV, prev, s)
            self.n_ev -= 1
            s = n
            if s == NONE or self.kind[s] != K_EVC:
                return

    def _evict_marks(self):
        s = self._h[_L_MK]
        self.marks_lost += self._head(s, 4)[3]
        self._unlink(_L_MK, NONE, s)
        self.n_marks -= 1

    def _put(self, kind, li, buf, n):
        if not self._make_room(1):
            return False
        s = self._take()
        self._write(s, buf, n)
        self.kind[s] = kind
        self._append(li, s)
        return True

    # --- writing ------------------------------------------------------------------------
    def _mark(self, t_ms, kind, a=0, b=0, c=0):
        mb = self.mb
        if mb.add(t_ms, kind, a, b, c):
            self._seal_marks()

    def _seal_marks(self):
        mb = self.mb
        n = mb.count
        if not n:
            return
        size = logpack.MARKS_HDR + n * logpack.MARK_SIZE
        self._mkcopy[:] = mb.buf
        mb.count = 0  # marks made while room is made go into the next packet
        if self._put(K_MARKS, _L_MK, self._mkcopy, size):
            self.n_marks += 1
            self.marks_packets += 1
        else:
            self.marks_lost += n

    def seal(self):
        """Write the pending drop mark and the partial MARKS packet (before sending).
        Room for both is made first, so sealing evicts nothing further."""
        self._make_room(2)
        self._flush_drop()
        self._seal_marks()

    def mark(self, kind, a=0, b=0, c=0, t_ms=None):
        """Record a mark now (``t_ms`` None: the newest sample's time)."""
        self._mark(self.t_ms if t_ms is None else t_ms, kind, a, b, c)

    def _close_log(self):
        lb = self.lb
        n = lb.count
        if not n:
            return
        first = lb.seq - n
        size = 14 + n * lb.size
        lb.count = 0
        if not self._put(K_LOG, _L_LOG, lb.buf, size):
            return
        if not self.n_log:
            self._log_hs = first & _M32
        self.n_log += 1
        self._log_end = lb.seq & _M32
        self.log_packets += 1

    def add_window(self, packets):
        """Store one jolt's EVENT window (its packets, in order), whole or not at all.

        Returns True if stored."""
        k = len(packets)
        if not k:
            return False
        p0 = packets[0]
        ok = True
        for p in packets:
            if len(p) > MAX_PACKET or len(p) < 18 or p[1] != 2:
                ok = False
        eid = p0[4] | (p0[5] << 8) if len(p0) >= 10 else 0
        total = p0[8] | (p0[9] << 8) if len(p0) >= 10 else 0
        if not ok or k > self.room() + self.n_log + self.n_ev:
            self.windows_dropped += 1
            self._mark(self.t_ms, logpack.EVENT_DROPPED, 0, eid, total)
            return False
        self._make_room(k)
        kind = K_EV
        for p in packets:
            s = self._take()
            self._write(s, p, len(p))
            self.kind[s] = kind
            self._append(_L_EV, s)
            self.n_ev += 1
            kind = K_EVC
        self.event_packets += k
        self.windows_stored += 1
        return True

    # --- logging: offline state and the 10 Hz samples ----------------------------------------
    def attach(self, pipe):
        """Log from this ``pipeline.Pipeline`` (its ``log`` hook and sequence numbers)."""
        self.pipe = pipe

    def update(self, now_ms, connected):
        """Offline state, from the main loop: log after ``after_ms`` without a central,
        stop at once when one connects. ``now_ms``: a ms clock (the samples' time)."""
        if connected:
            self._since = None
            if self.logging:
                self._stop()
            return
        if self._since is None:
            self._since = now_ms
        p = self.pipe
        if not self.logging and p is not None and \
                time.ticks_diff(now_ms, self._since) >= self.after_ms:
            self.logging = True
            self._starting = True
            self._alerted = False
            fb = p.feedback
            self._cal = fb is not None and fb.calibrated
            self.offline_periods += 1
            p.log = self  # from the next fused sample on

    def _stop(self):
        p = self.pipe
        if p is None:
            return
        p.log = None  # the next fused sample goes to SAMPLES again
        self.logging = False
        if self._starting:  # not one sample logged
            self._starting = False
            return
        self._close_log()
        self._make_room(2)
        self._flush_drop()
        if self._alerted:
            self._mark(self.t_ms, logpack.ALERT_END)
            self._alerted = False
        self._mark(self.t_ms, logpack.OFFLINE_END, 0, 0, p.batcher.seq)
        self.seal()

    def fused(self, t_ms, q0, q1):
        """One fused sample while logging (``Pipeline.step_wire`` calls it instead of
        batching SAMPLES): every ``rate / log_hz``-th goes into the LOG packet."""
        p = self.pipe
        self.t_ms = t_ms
        if p is None:
            return
        if self._starting:
            self._starting = False
            if p.batcher.count:
                p.flush()  # the partial SAMPLES packet goes to the store as it is
            self._n = 0
            self._rate = 0
            self._mark(t_ms, logpack.OFFLINE_START, 0, 0, p.batcher.seq)
        r = p.rate_hz
        if r != self._rate:
            self._rate = r
            d = r // self.log_hz
            self._div = d if d > 0 else 1
            self._n = 0
        n = self._n + 1
        if n < self._div:
            self._n = n
            return
        self._n = 0
        lb = self.lb
        pb = p.batcher
        if lb.count:  # evenly spaced, else a new packet (gap, rate change)
            d = time.ticks_diff(t_ms, self._t0 + lb.count * lb.period_ms)
            if d > (lb.period_ms >> 1) or d < -(lb.period_ms >> 1):
                self._close_log()
        if not lb.count:
            lb.seq = pb.seq
            self._t0 = t_ms
        full = lb.add_f32(t_ms, q0, q1)
        pb.seq = lb.seq
        if full:
            self._close_log()
        self._posture(t_ms, p.feedback)

    def _posture(self, t_ms, fb):
        if fb is None:
            return
        post = fb.posture
        if post is not None:
            al = post.state == STATE_ALERTED
            if al != self._alerted:
                self._alerted = al
                if al:
                    s = post.settings
                    a = 0
                    if post.neck_deg is not None and post.neck_deg > s.threshold_deg:
                        a |= 1
                    if post.trunk_deg > s.trunk_threshold_deg:
                        a |= 2
                    self._mark(t_ms, logpack.ALERT_START, a)
                else:
                    self._mark(t_ms, logpack.ALERT_END)
        if fb.calibrated != self._cal:
            self._cal = fb.calibrated
            if self._cal:
                self._mark(t_ms, logpack.CALIBRATED)

    # --- sending (ble_service) -------------------------------------------------------------
    def oldest_seq(self):
        """First LOG seq stored, or None."""
        return self._log_hs if self.n_log else None

    def next_seq(self):
        """Seq after the newest LOG sample stored, or None."""
        return self._log_end if self.n_log else None

    def read_log_from(self, seq):
        """The stored LOG packet holding ``seq``, or the first after it: (bytes, first seq),
        trimmed to start at ``seq`` when it falls inside; None when no LOG at or after it."""
        if not self.n_log:
            return None
        base = self._log_hs
        c = _rel(seq, base)
        if c >= 0x80000000:
            c = 0  # older than anything stored
            seq = base
        if c >= _rel(self._log_end, base):
            return None
        s = self._log_cur
        if s == NONE or self.kind[s] != K_LOG or _rel(self._seq_cnt(s)[0], base) > c:
            s = self._h[_L_LOG]
        while s != NONE:
            first, cnt = self._seq_cnt(s)
            if _rel((first + cnt) & _M32, base) > c:
                break
            s = self.nxt[s]
        if s == NONE:
            return None
        self._log_cur = s
        pkt = self._read(s)
        skip = _rel(seq, first)
        if 0 < skip < cnt:
            return trim_log(pkt, skip), seq
        return pkt, first

    def release_log(self, seq):
        """The central has every sample before ``seq``: free the LOG packets below it."""
        if self.acked is None or _rel(seq, self.acked) < 0x80000000:
            self.acked = seq
        while self.n_log:
            base = self._log_hs
            s = self._h[_L_LOG]
            first, cnt = self._seq_cnt(s)
            if _rel((first + cnt) & _M32, base) > _rel(seq, base) or _rel(seq, base) >= 0x80000000:
                return
            self._unlink(_L_LOG, NONE, s)
            self.n_log -= 1
            if self.n_log:
                self._log_hs = self._seq_cnt(self._h[_L_LOG])[0]
            else:
                self._rewind()

    def new_link(self):
        """Streaming (re)starts: MARKS and EVENT windows not acknowledged go again."""
        self._mk_last = NONE
        self._ev_last = NONE
        self._log_cur = NONE

    def pending(self):
        """MARKS or EVENT packets waiting to be sent on this link (seals pending marks)."""
        if not self.logging and (self.mb.count or self._drop_n):
            self.seal()
        s = self._mk_last
        if (self._h[_L_MK] if s == NONE else self.nxt[s]) != NONE:
            return True
        s = self._ev_last
        return (self._h[_L_EV] if s == NONE else self.nxt[s]) != NONE

    def next_marks(self):
        """The next MARKS packet to send on this link (bytes), or None."""
        s = self._mk_last
        s = self._h[_L_MK] if s == NONE else self.nxt[s]
        if s == NONE:
            return None
        self._mk_last = s
        return self._read(s)

    def next_event(self):
        """The next EVENT packet to send on this link (bytes), or None."""
        s = self._ev_last
        s = self._h[_L_EV] if s == NONE else self.nxt[s]
        if s == NONE:
            return None
        self._ev_last = s
        return self._read(s)

    def ack_marks(self, mark_id):
        """The central received the MARKS packet whose first mark is ``mark_id``: free it."""
        prev = NONE
        s = self._h[_L_MK]
        while s != NONE:
            if self._id16(s) == mark_id:
                self._unlink(_L_MK, prev, s)
                self.n_marks -= 1
                self._rewind()
                return True
            prev = s
            s = self.nxt[s]
        return False

    def ack_event(self, event_id):
        """The central received the whole EVENT window ``event_id``: free it."""
        prev = NONE
        s = self._h[_L_EV]
        while s != NONE:
            if self.kind[s] == K_EV and self._id16(s) == event_id:
                self._drop_window_at(prev, s)
                self._rewind()
                return True
            prev = s
            s = self.nxt[s]
        return False

    def stats(self):
        return {"slots": self.cap, "free": self.room(), "log": self.n_log, "marks": self.n_marks,
                "event_packets": self.event_packets, "marks_packets": self.marks_packets,
                "event": self.n_ev, "log_packets": self.log_packets,
                "log_dropped_samples": self.log_dropped_samples,
                "windows_stored": self.windows_stored, "windows_dropped": self.windows_dropped,
                "marks_lost": self.marks_lost, "offline_periods": self.offline_periods,
                "rewinds": self.rewinds, "file_slots": self._fresh}


def trim_log(pkt, skip):
    """The same LOG packet without its first ``skip`` samples (seq, t_ms adjusted)."""
    count = pkt[3]
    size = 6 if pkt[2] == 3 else 3
    seq = (pkt[4] | (pkt[5] << 8) | (pkt[6] << 16) | (pkt[7] << 24)) + skip
    t_ms = (pkt[8] | (pkt[9] << 8) | (pkt[10] << 16) | (pkt[11] << 24)) + skip * (pkt[12] | (pkt[13] << 8))
    out = bytearray(pkt[:14])
    out[3] = count - skip
    struct.pack_into("<II", out, 4, seq & _M32, t_ms & _M32)
    out += pkt[14 + skip * size:14 + count * size]
    return bytes(out)


#: heap bytes per day-log slot (its index: a kind byte and a u16 link)
DAYLOG_INDEX_BYTES = 3


def plan(vfs_free_bytes, free_heap, spill_bytes=0, kib=None, on=None):
    """KiB for the offline day log (``daylog.DayLog``) and a few words for the boot log:
    at most ``config.DAYLOG_KIB``; no more than the VFS has free (``vfs_free_bytes``,
    counting the old day-log file as free) less the spill file's full size
    (``spill_bytes``; it grows as it fills) and ``config.DAYLOG_FREE_KIB``; no more than
    the heap holds the index of (``DAYLOG_INDEX_BYTES`` per slot, keeping
    ``config.HEAP_RESERVE_BYTES``); 0 (no day log) below ``config.DAYLOG_MIN_KIB`` or when
    ``config.DAYLOG`` says so (1: the esp32 port only; 2: any port; 0: off)."""
    if on is None:
        on = config.DAYLOG
    if kib is None:
        kib = config.DAYLOG_KIB
    if not on or kib <= 0:
        return 0, "day log off in config"
    if on == 1 and sys.platform != "esp32":
        return 0, "no board flash on this port"
    room = (vfs_free_bytes - spill_bytes) // 1024 - config.DAYLOG_FREE_KIB
    why = "%d KiB" % kib
    if room < kib:
        kib = room
        why = "%d KiB: what the flash has free" % kib
    heap = (free_heap - config.HEAP_RESERVE_BYTES) // DAYLOG_INDEX_BYTES * 244 // 1024
    if heap < kib:
        kib = heap
        why = "%d KiB: what the heap holds the index of" % kib
    if kib < config.DAYLOG_MIN_KIB:
        return 0, "no room for a day log (%d KiB)" % kib
    return kib, why


def make(app, imu_mask, kib=None, path=None):
    """The offline day log for ``app`` (a ``ble_app.BleApp``), sized by ``plan``
    from the VFS and the heap, or None (printed why). Never raises: a file that cannot be
    made leaves the board without a day log."""
    if path is None:
        path = config.DAYLOG_FILE
    try:
        st = os.statvfs("/")
        free = st[0] * st[3]
        try:
            free += os.stat(path)[6]  # the old day log is reset: its room counts
        except OSError:
            pass
    except (OSError, AttributeError):
        free = 0
    store = getattr(app, "store", None)
    spill = 0
    if store is not None and getattr(store, "flash_cap", 0):
        spill = store.flash_cap * 244 - store.flash_size * 244
    gc.collect()
    if kib is None:
        kib, why = plan(free, gc.mem_free(), spill)
    else:
        why = "%d KiB asked" % kib
    if kib <= 0:
        print("daylog: no day log: %s" % why)
        return None
    svc = getattr(app, "service", None)
    try:
        dl = DayLog(path, slots_for(kib), imu_mask,
                           boot_id=getattr(svc, "boot_id", 0), log_hz=config.DAYLOG_HZ,
                           after_ms=config.SAVER_AFTER_S * 1000)
    except (OSError, MemoryError, ValueError) as e:
        print("daylog: no day log (%r)" % (e,))
        return None
    print("daylog: day log %s, %s: %d slots, %.1f h at %d Hz" % (
        path, why, dl.cap, capacity_h(dl.cap, imu_mask, config.DAYLOG_HZ), config.DAYLOG_HZ))
    app.set_daylog(dl)
    return dl
