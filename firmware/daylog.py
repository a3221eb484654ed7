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

Storage: one file of fixed 244-byte slots (a length byte, the boot tag and the packet, at
most 242 bytes), slot 0 a header (magic ``NAPEDLG2``, format, slot count, boot id). The index lives in RAM, allocated once: per slot a kind
byte and a u16 "next" link (3 bytes of heap per slot): singly linked lists in
write order (free, LOG, MARKS, EVENT, and the previous boot's LOG, MARKS, EVENT). The file grows as slots are first used, and starts
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

A reboot keeps the log (protocol/SPEC.md, "The offline day log", "Boots"): every slot is
a length byte, a boot tag byte (``gen``, a per-boot number) and the packet; a small state
file (``path + ".st"``, ``save_state``) holds this boot's tag, boot_id and clock and the
watermarks below which every packet was freed, for this boot and the previous one. At boot
``_scan`` reads the slots once and links again what the state file does not show freed, of
the newest boot that has any: that boot becomes the *previous boot* (lists ``_L_P*``,
kinds ``K_P*``), sent on BACKFILL_PREV (``read_prev_log_from``, ``next_prev_marks``,
``next_prev_event``) and freed by PREV_ACK / LOG_ACK with bit 7 (``release_prev_log``,
``ack_prev_*``). One previous boot is kept; it is evicted first (its LOG before this boot's,
its windows before this boot's, its MARKS before this boot's), its drops told in its own
MARKS. A corrupt, truncated or format-1 file, one without a state file or with nothing
unconfirmed is reset with a printed reason. Lost at a reboot: the open LOG packet (< 3.8 s;
MARKS are sealed with every LOG packet).

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
MAX_PACKET = const(242)  # a slot: length byte, boot tag byte, packet
MAGIC = b"NAPEDLG2"
MAGIC_V1 = b"NAPEDLG1"  # format 1 (no boot tag per slot): not kept
SMAGIC = b"NAPEDLS1"
# the state file (``path + ".st"``): this boot's tag, boot_id, clock and what the central
# confirmed (watermarks), and the same for the previous boot whose packets are kept
_ST = "<8sBIQBIHHBIQBIHHI"
_ST_SIZE = const(56)
NONE = const(0xFFFF)
_M32 = const(0xFFFFFFFF)

K_FREE = const(0)
K_LOG = const(1)
K_MARKS = const(2)
K_EV = const(3)  # first packet of an EVENT window
K_EVC = const(4)  # a further packet of the same window
K_PLOG = const(5)  # the previous boot's packets (kept over a reboot)
K_PMK = const(6)
K_PEV = const(7)
K_PEVC = const(8)

_L_LOG = const(0)  # list indexes into _h / _t / _last
_L_MK = const(1)
_L_EV = const(2)
_L_PLOG = const(3)
_L_PMK = const(4)
_L_PEV = const(5)


def slots_for(kib):
    """Data slots of a day-log file of ``kib`` KiB (one slot is the header), at most 65534."""
    n = kib * 1024 // SLOT - 1
    return n if n < 65534 else 65534


def capacity_h(slots, imu_mask=3, log_hz=10):
    """Hours of orientation ``slots`` full LOG packets hold (no EVENT windows)."""
    return slots * logpack.per_packet(imu_mask) / log_hz / 3600


def _rel(a, base):
    return (a - base) & _M32


def _r16(a, base):
    return (a - base) & 0xFFFF


def _later(a, b):
    """The later of two u32 device times (ms, mod 2**32)."""
    return b if (b - a) & _M32 < 0x80000000 else a


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
        self._h = array("H", (NONE,) * 6)
        self._t = array("H", (NONE,) * 6)
        # per list: the send cursor (MARKS / EVENT: last sent on this link) or the LOG read
        # cursor (cache for read_log_from); NONE: none
        self._last = array("H", (NONE,) * 6)
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
        self._log_freed = None  # seq after the newest LOG packet freed (state file)
        self._ev_next = None  # event_id after the newest window stored (state file)
        self.acked = None  # seq before which the central confirmed everything
        # the previous boot's packets kept over a reboot (``_scan``): its boot_id (0: none)
        self.pboot = 0
        self.pgen = 0
        self.pepoch = 0  # unix ms at its device time 0 (0: unknown)
        self.pend_t = 0  # its newest device time seen (ms)
        self.n_plog = 0
        self.n_pmk = 0
        self.n_pev = 0
        self._plog_hs = 0
        self._plog_end = 0
        self._plog_freed = None
        self._pev_next = None
        self.packed = None
        self.pmb = None  # its MARKS (LOG_DROPPED / EVENT_DROPPED when evicted)
        self._pmkcopy = None
        self._pdrop_first = 0
        self._pdrop_n = 0
        self.prev_dropped_samples = 0
        self.prev_windows_dropped = 0
        self.older_dropped_packets = 0  # packets of a boot before the previous one
        self.gen = 0  # this boot's tag in every slot it writes
        self.boot_id = boot_id & _M32
        self.epoch = 0  # unix ms at this boot's device time 0 (set_epoch; 0: unknown)
        self.spath = path + ".st"
        self._tags = None  # boot tags seen in the file at boot (a bitmap; _scan)
        self._dirty = False  # confirmations not yet in the state file
        self._saved = 0
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
        """Open the file at boot: the previous boot's unconfirmed packets are kept
        (``_scan``), else the file is reset. Returns (why it was reset, or None when
        packets were kept; printed), the file). The state file is written before the first
        packet of this boot."""
        st = self._load_state()
        why = "new file"
        f = None
        try:
            f = open(path, "r+b")
        except OSError:
            pass
        if f is not None:
            try:
                why = self._scan(f, st)
            except (OSError, ValueError, IndexError) as e:
                why = "unreadable file (%r)" % (e,)
            if why is not None:
                f.close()
                f = None
        gen = 0 if st is None else (st[1] + 1) & 0xFF
        tags = self._tags if why is None else None
        for _ in range(256):  # a tag no slot left in the file carries (freed slots keep theirs)
            if not ((self.pboot and gen == self.pgen)
                    or (tags is not None and tags[gen >> 3] & (1 << (gen & 7)))):
                break
            gen = (gen + 1) & 0xFF
        self._tags = None
        self.gen = gen
        if f is None:
            self._clear()
            f = open(path, "w+b")  # truncates; OSError goes to the caller
            self._header(f)
        self._f = f
        self.save_state()
        if verbose:
            if why is None:
                print("daylog: %s: kept %d LOG, %d MARKS, %d EVENT packets of the previous "
                      "boot (boot_id %08x)%s (%d slots, %.1f h of LOG)" % (
                          path, self.n_plog, self.n_pmk, self.n_pev, self.pboot,
                          ", %d of an older boot dropped" % self.older_dropped_packets
                          if self.older_dropped_packets else "",
                          self.cap, capacity_h(self.cap, self.imu_mask, self.log_hz)))
            else:
                print("daylog: %s: %s: reset (%d slots, %.1f h of LOG)" % (
                    path, why, self.cap, capacity_h(self.cap, self.imu_mask, self.log_hz)))
        return why, f

    def _header(self, f):
        sl = self._slot
        for i in range(SLOT):
            sl[i] = 0
        sl[0:8] = MAGIC
        struct.pack_into("<HHII", sl, 8, 2, 0, self.cap, self.boot_id)
        f.write(sl)
        f.flush()

    def _clear(self):
        """Empty index (every slot unused)."""
        for i in range(6):
            self._h[i] = NONE
            self._t[i] = NONE
            self._last[i] = NONE
        k = self.kind
        for i in range(self.cap):
            k[i] = K_FREE
        self._fh = NONE
        self.n_free = self._fresh = 0
        self.n_log = self.n_marks = self.n_ev = 0
        self.n_plog = self.n_pmk = self.n_pev = 0
        self.pboot = 0
        self.pmb = None

    def _load_state(self):
        """The state file's fields (``_ST``), or None (missing or damaged)."""
        try:
            with open(self.spath, "rb") as f:
                b = f.read(_ST_SIZE + 1)
            if len(b) != _ST_SIZE or b[:8] != SMAGIC:
                return None
            return struct.unpack(_ST, b)
        except (OSError, ValueError):
            return None

    def _marks_w(self, li, mb):
        h = self._h[li]
        if h != NONE:
            return self._id16(h)
        return (mb.next_id - mb.count) & 0xFFFF if mb is not None else 0

    def save_state(self):
        """Write the state file (small: littlefs keeps it inline): this boot's tag, id and
        clock, and the watermarks below which every packet was freed (confirmed or
        evicted), for this boot and the previous one, so that a reboot keeps exactly the
        packets not yet freed (an older watermark only sends some again)."""
        fl = 0
        lw = 0
        lf = self._log_freed
        if self.n_log:
            fl = 1
            lw = self._log_hs
        elif lf is not None:
            fl = 1
            lw = lf
        ew = 0
        if self.n_ev:
            fl |= 4
            ew = self._id16(self._h[_L_EV])
        elif self._ev_next is not None:
            fl |= 4
            ew = self._ev_next
        pfl = 0
        plw = 0
        pew = 0
        pmw = 0
        if self.pboot:
            pf = self._plog_freed
            if self.n_plog:
                pfl = 1
                plw = self._plog_hs
            elif pf is not None:
                pfl = 1
                plw = pf
            if self.n_pev:
                pfl |= 4
                pew = self._id16(self._h[_L_PEV])
            elif self._pev_next is not None:
                pfl |= 4
                pew = self._pev_next
            pmw = self._marks_w(_L_PMK, self.pmb)
        b = struct.pack(_ST, SMAGIC, self.gen, self.boot_id, self.epoch, fl | 2, lw & _M32,
                        self._marks_w(_L_MK, self.mb), ew, self.pgen, self.pboot, self.pepoch,
                        pfl | 2, plw & _M32, pmw, pew, self.pend_t & _M32)
        try:
            with open(self.spath, "wb") as f:
                f.write(b)
        except OSError as e:
            print("daylog: state file %s: %r" % (self.spath, e))
        self._dirty = False

    def set_epoch(self, unix_ms_at_t0):
        """The host's clock (SET_TIME): unix ms at this boot's device time 0, kept in the
        state file so that after a reboot the host places this boot's log in time."""
        e = int(unix_ms_at_t0)
        if e > 0 and (self.epoch == 0 or abs(e - self.epoch) > 1000):
            self.epoch = e
            self.save_state()

    def _scan(self, f, st):
        """Rebuild the index from an existing file: the packets that the state file
        (``st``) does not show freed, of the newest boot that has any (that boot becomes
        the previous boot; one previous boot is kept: an older one's packets are dropped,
        ``older_dropped_packets``). Returns None when the file is kept (the previous boot
        has packets), else why it is reset."""
        size = f.seek(0, 2)
        f.seek(0)
        hdr = f.read(20) or b""
        if size == 0:
            return "empty file"
        if len(hdr) < 20 or size < SLOT:
            return "truncated file (%d bytes, no whole header)" % size
        if hdr[:8] == MAGIC_V1:
            return "%d packets in format 1 (an older firmware)" % (size // SLOT - 1)
        if hdr[:8] != MAGIC:
            return "corrupt file (not a Nape day log)"
        _v, _r, n, old = struct.unpack_from("<HHII", hdr, 8)
        if size % SLOT or size > (n + 1) * SLOT:
            return "truncated or corrupt file (%d bytes for %d slots)" % (size, n)
        used = size // SLOT - 1
        if used > self.cap:
            return "%d packets, more than this boot's %d slots" % (used, self.cap)
        if st is None:
            return "%d packets of an unknown boot (no state file)" % used
        if not used:
            return "no packets"
        self._f = f
        self._clear()
        g0 = st[1]
        g1 = st[8] if st[9] else -1
        # watermarks per boot (0: the last boot, 1: its previous one):
        # (flags, LOG seq, MARKS id, EVENT id)
        wm = ((st[4], st[5], st[6], st[7]), (st[11], st[12], st[13], st[14]))
        keys = array("I", bytes(4 * used))
        fing = array("H", (NONE,) * 6)
        tags = self._tags = bytearray(32)
        sl = self._slot
        kind = self.kind
        nxt = self.nxt
        hd = self._h
        tl = self._t
        lfl = (st[4] & 1, st[11] & 1)
        lws = (st[5], st[12])
        mws = (st[6], st[13])
        efl = (st[4] & 4, st[11] & 4)
        ews = (st[7], st[14])
        f.seek(SLOT)
        for s in range(used):  # one pass, a few integer operations per slot (16 651 at most)
            if f.readinto(sl) != SLOT:
                raise ValueError("short read")
            ln = sl[0]
            if ln < 8 or ln > MAX_PACKET or sl[2] != 1:
                continue
            tag = sl[1]
            tags[tag >> 3] |= 1 << (tag & 7)
            if tag == g0:
                w = 0
            elif tag == g1:
                w = 1
            else:
                continue
            typ = sl[3]
            if typ == 3:
                if ln < 14:
                    continue
                key = sl[6] | (sl[7] << 8) | (sl[8] << 16) | (sl[9] << 24)
                if lfl[w] and (lws[w] - key - sl[5]) & _M32 < 0x80000000:
                    continue  # confirmed or evicted
                li = _L_LOG
                k = K_LOG
            elif typ == 4:
                if ln < 20:
                    continue
                key = (sl[6] | (sl[7] << 8)) - mws[w] & 0xFFFF
                if key >= 0x8000:
                    continue
                li = _L_MK
                k = K_MARKS
            elif typ == 2:
                if ln < 18:
                    continue
                key = (sl[6] | (sl[7] << 8)) - ews[w] & 0xFFFF
                if efl[w] and key >= 0x8000:
                    continue
                key = (key << 16) | sl[8] | (sl[9] << 8)
                li = _L_EV
                k = K_EV
            else:
                continue
            if w:
                li += 3
                k = K_PLOG if k == K_LOG else (K_PMK if k == K_MARKS else K_PEV)
            kind[s] = k
            keys[s] = key
            t = tl[li]
            nxt[s] = NONE
            if t == NONE:
                hd[li] = s
                tl[li] = s
            elif keys[t] <= key:  # in order (a file written append-only)
                nxt[t] = s
                tl[li] = s
            else:
                self._insert(li, s, key, keys, fing)
        keys = None
        # windows whole, else not kept
        for li in (_L_EV, _L_PEV):
            self._whole_windows(li)
        if self._h[_L_LOG] != NONE or self._h[_L_MK] != NONE or self._h[_L_EV] != NONE:
            k = 0
            for li in (_L_PLOG, _L_PMK, _L_PEV):  # the older boot goes
                s = self._h[li]
                while s != NONE:
                    k += 1
                    self.kind[s] = K_FREE
                    s = self.nxt[s]
                self._h[li] = self._t[li] = NONE
            self.older_dropped_packets = k
            if k:
                print("daylog: %d packets of boot %08x dropped: one previous boot is kept, "
                      "the newer one" % (k, st[9]))
            for li in (_L_LOG, _L_MK, _L_EV):  # the last boot becomes the previous one
                self._h[li + 3] = self._h[li]
                self._t[li + 3] = self._t[li]
                self._h[li] = self._t[li] = NONE
                s = self._h[li + 3]
                while s != NONE:
                    kd = self.kind[s]
                    self.kind[s] = K_PLOG if kd == K_LOG else (K_PMK if kd == K_MARKS else
                                                                (K_PEV if kd == K_EV else K_PEVC))
                    s = self.nxt[s]
            self.pboot, self.pgen, self.pepoch, self.pend_t = st[2], g0, st[3], 0
            w = wm[0]
        else:
            self.pboot, self.pgen, self.pepoch, self.pend_t = st[9], st[8], st[10], st[15]
            w = wm[1]
        # its newest device time: the newest LOG sample, mark or jolt trigger kept
        t = self.pend_t
        s = self._t[_L_PLOG]
        if s != NONE:
            p = self._read(s)
            t = _later(t, struct.unpack_from("<I", p, 8)[0] + (p[3] - 1) * (p[12] | (p[13] << 8)))
        s = self._t[_L_PMK]
        if s != NONE:
            p = self._read(s)
            t = _later(t, struct.unpack_from("<I", p, 8 + 12 * (p[3] - 1))[0])
        s = self._t[_L_PEV]
        if s != NONE:
            t = _later(t, struct.unpack_from("<I", self._read(s), 14)[0])
        self.pend_t = t & _M32
        n_pl = n_pm = n_pe = 0
        for s in range(used):
            kd = self.kind[s]
            if kd == K_PLOG:
                n_pl += 1
            elif kd == K_PMK:
                n_pm += 1
            elif kd == K_PEV or kd == K_PEVC:
                n_pe += 1
        if not (n_pl or n_pm or n_pe):
            self._clear()
            return "%d packets of earlier boots, all confirmed" % used
        self.n_plog, self.n_pmk, self.n_pev = n_pl, n_pm, n_pe
        if n_pl:
            self._plog_hs = self._seq_cnt(self._h[_L_PLOG], f)[0]
            a, c = self._seq_cnt(self._t[_L_PLOG], f)
            self._plog_end = (a + c) & _M32
        if w[0] & 4:
            self._pev_next = w[3]
        nid = w[2]
        s = self._h[_L_PMK]
        while s != NONE:
            h = self._head(s, 6, f)
            e = (h[4] | (h[5] << 8)) + h[3]
            if _r16(e, w[2]) > _r16(nid, w[2]):
                nid = e & 0xFFFF
            s = self.nxt[s]
        self.pmb = logpack.MarksBatcher(self.imu_mask, nid)
        self._pmkcopy = bytearray(logpack.MARKS_HDR + logpack.MARKS_MAX * logpack.MARK_SIZE)
        fh = NONE
        nf = 0
        for s in range(used - 1, -1, -1):
            if self.kind[s] == K_FREE:
                self.nxt[s] = fh
                fh = s
                nf += 1
        self._fh = fh
        self.n_free = nf
        self._fresh = used
        return None

    def _insert(self, li, s, key, keys, fing):
        """Link slot ``s`` into list ``li`` in ``key`` order (boot scan; ``fing``: the last
        insertion point per list, so a file written in order or as a ring costs O(n))."""
        t = self._t[li]
        if t == NONE or keys[t] <= key:
            self._append(li, s)
            return
        p = fing[li]
        if p == NONE or keys[p] > key:
            p = NONE
            c = self._h[li]
        else:
            c = self.nxt[p]
        while c != NONE and keys[c] <= key:
            p = c
            c = self.nxt[c]
        self.nxt[s] = c
        if p == NONE:
            self._h[li] = s
        else:
            self.nxt[p] = s
        fing[li] = s

    def _whole_windows(self, li):
        """Keep the EVENT windows of list ``li`` that are whole (first_index 0 on, every
        sample once); free the rest (boot scan)."""
        s = self._h[li]
        self._h[li] = self._t[li] = NONE
        pk = K_EV if li == _L_EV else K_PEV
        grp = []
        eid = -1
        exp = total = 0
        ok = False
        while True:
            if s != NONE:
                h = self._head(s, 10)
                e = h[4] | (h[5] << 8)
                first = h[6] | (h[7] << 8)
            if s == NONE or e != eid or first != exp:
                if grp:
                    whole = ok and exp == total
                    for i, x in enumerate(grp):
                        if whole:
                            self.kind[x] = pk if i == 0 else pk + 1
                            self._append(li, x)
                        else:
                            self.kind[x] = K_FREE
                    grp = []
                if s == NONE:
                    return
                if e == eid:  # the rest of a broken window
                    nx = self.nxt[s]
                    self.kind[s] = K_FREE
                    s = nx
                    continue
                eid = e
                exp = 0
                total = h[8] | (h[9] << 8)
                ok = first == 0
            nx = self.nxt[s]
            grp.append(s)
            exp += h[3]
            s = nx

    def close(self):
        self._f.close()

    def _write(self, s, buf, n):
        sl = self._slot
        sl[0] = n
        sl[1] = self.gen
        sl[2:2 + n] = memoryview(buf)[:n]
        f = self._f
        f.seek((s + 1) * SLOT)
        f.write(sl)

    def _read(self, s):
        """Bytes of the packet in slot ``s`` (a copy)."""
        f = self._f
        f.seek((s + 1) * SLOT)
        sl = self._slot
        f.readinto(sl)
        return bytes(memoryview(sl)[2:2 + sl[0]])

    def _head(self, s, k=12, f=None):
        """The first ``k`` bytes of the packet in slot ``s``, in ``_hdr`` (returned)."""
        if f is None:
            f = self._f
        f.seek((s + 1) * SLOT + 2)
        f.readinto(self._hmv[:k])
        return self._hdr

    def _seq_cnt(self, s, f=None):
        h = self._head(s, 8, f)
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
        if self._last[li] == s:
            self._last[li] = prev
        self.kind[s] = K_FREE
        self.nxt[s] = self._fh
        self._fh = s
        self.n_free += 1

    def _rewind(self):
        """Everything was confirmed (or never written): start the file again from its
        header, so the next day is written append-only. On littlefs a write inside a file
        rewrites the blocks after it (CTZ skip-lists); appending does not."""
        if self.n_log or self.n_marks or self.n_ev or not self._fresh or self.logging \
                or self.pboot:
            return
        self._fh = NONE
        self.n_free = 0
        self._fresh = 0
        for i in range(6):
            self._last[i] = NONE
        f = self._f
        f.close()
        f = open(self.path, "w+b")  # truncates (MicroPython files have no truncate())
        self._header(f)
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
            if self.n_plog:  # the previous boot's first: older
                self._evict_plog()
            elif self.n_log:
                self._evict_log()
            elif self.n_pev:
                self._evict_pwindow()
            elif self.n_ev:
                self._evict_window()
            elif self.n_pmk:
                s = self._h[_L_PMK]
                self._unlink(_L_PMK, NONE, s)
                self.n_pmk -= 1
                self._prev_done()
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
        self._log_freed = (seq + cnt) & _M32
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

    # --- the previous boot's packets: evicted first (LOG, windows), as this boot's -------
    def _evict_plog(self):
        s = self._h[_L_PLOG]
        seq, cnt = self._seq_cnt(s)
        self._unlink(_L_PLOG, NONE, s)
        self.n_plog -= 1
        self._plog_freed = (seq + cnt) & _M32
        if self.n_plog:
            self._plog_hs = self._seq_cnt(self._h[_L_PLOG])[0]
        a = self.packed
        if a is None or not _rel((seq + cnt) & _M32, seq) <= _rel(a, seq) < 0x80000000:
            self.prev_dropped_samples += cnt
            if self._pdrop_n and seq == (self._pdrop_first + self._pdrop_n) & _M32 \
                    and self._pdrop_n + cnt <= 0xFFFF:
                self._pdrop_n += cnt
            else:
                self._flush_pdrop()
                self._pdrop_first = seq
                self._pdrop_n = cnt
        if not self.n_plog:
            self._flush_pdrop()

    def _flush_pdrop(self):
        n = self._pdrop_n
        if n:
            self._pdrop_n = 0
            self._pmark(logpack.LOG_DROPPED, n, self._pdrop_first)

    def _pmark(self, kind, b, c):
        """A mark in the previous boot's MARKS (at its newest time: it happened later)."""
        mb = self.pmb
        if mb is not None and mb.add(self.pend_t, kind, 0, b, c):
            self._seal_pmarks()

    def _seal_pmarks(self):
        mb = self.pmb
        cp = self._pmkcopy
        if mb is None or cp is None or not mb.count:
            return
        n = mb.count
        cp[:] = mb.buf
        mb.count = 0
        if self._put(K_PMK, _L_PMK, cp, logpack.MARKS_HDR + n * logpack.MARK_SIZE):
            self.n_pmk += 1
        else:
            self.marks_lost += n

    def _evict_pwindow(self):
        s = self._h[_L_PEV]
        h = self._head(s, 10)
        eid = h[4] | (h[5] << 8)
        total = h[8] | (h[9] << 8)
        self._pev_next = (eid + 1) & 0xFFFF
        while True:
            n = self.nxt[s]
            self._unlink(_L_PEV, NONE, s)
            self.n_pev -= 1
            s = n
            if s == NONE or self.kind[s] != K_PEVC:
                break
        self.prev_windows_dropped += 1
        self._pmark(logpack.EVENT_DROPPED, eid, total)

    def _prev_done(self):
        """Nothing of the previous boot left: it is forgotten (state file), the file may
        start again."""
        if self.pboot and not (self.n_plog or self.n_pmk or self.n_pev or self._pdrop_n
                               or (self.pmb is not None and self.pmb.count)):
            self.pboot = 0
            self.pmb = None
            self._pmkcopy = None
            self.save_state()
            self._rewind()

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
        if self.pboot:
            self._flush_pdrop()
            self._seal_pmarks()

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
        if self.mb.count:  # marks reach flash with the LOG packet: a reboot keeps them
            self._seal_marks()

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
        if not ok or k > self.room() + self.n_log + self.n_ev + self.n_plog + self.n_pev:
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
        self._ev_next = (eid + 1) & 0xFFFF
        return True

    # --- logging: offline state and the 10 Hz samples ----------------------------------------
    def attach(self, pipe):
        """Log from this ``pipeline.Pipeline`` (its ``log`` hook and sequence numbers)."""
        self.pipe = pipe

    def update(self, now_ms, connected):
        """Offline state, from the main loop: log after ``after_ms`` without a central,
        stop at once when one connects. ``now_ms``: a ms clock (the samples' time)."""
        if self._dirty and time.ticks_diff(now_ms, self._saved) >= 2000:
            self._saved = now_ms  # confirmations into the state file, at most every 2 s
            self.save_state()
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
            if self._dirty:
                self.save_state()
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
        return self._log_from(_L_LOG, K_LOG, self._log_hs, self._log_end, seq)

    def _log_from(self, li, k, base, end, seq):
        c = _rel(seq, base)
        if c >= 0x80000000:
            c = 0  # older than anything stored
            seq = base
        if c >= _rel(end, base):
            return None
        s = self._last[li]
        if s == NONE or self.kind[s] != k or _rel(self._seq_cnt(s)[0], base) > c:
            s = self._h[li]
        while s != NONE:
            first, cnt = self._seq_cnt(s)
            if _rel((first + cnt) & _M32, base) > c:
                break
            s = self.nxt[s]
        if s == NONE:
            return None
        self._last[li] = s
        pkt = self._read(s)
        skip = _rel(seq, first)
        if 0 < skip < cnt:
            return trim_log(pkt, skip), seq
        return pkt, first

    def _free_below(self, li, seq):
        """Free the LOG packets of list ``li`` that end at or before ``seq``; returns
        (packets freed, seq after the newest freed or None, new head seq: 0 when none left)."""
        n = 0
        fe = None
        while True:
            s = self._h[li]
            if s == NONE:
                return n, fe, 0
            first, cnt = self._seq_cnt(s)
            end = (first + cnt) & _M32
            if _rel(seq, first) >= 0x80000000 or _rel(end, first) > _rel(seq, first):
                return n, fe, first
            self._unlink(li, NONE, s)
            n += 1
            fe = end

    def release_log(self, seq):
        """The central has every sample before ``seq``: free the LOG packets below it."""
        if self.acked is None or _rel(seq, self.acked) < 0x80000000:
            self.acked = seq
        if not self.n_log:
            return
        n, fe, head = self._free_below(_L_LOG, seq)
        if n:
            self.n_log -= n
            self._log_freed = fe
            self._dirty = True
            if self.n_log:
                self._log_hs = head
            else:
                self._rewind()

    def new_link(self):
        """Streaming (re)starts: MARKS and EVENT windows not acknowledged go again."""
        for i in range(6):
            self._last[i] = NONE

    def pending(self):
        """MARKS or EVENT packets waiting to be sent on this link (seals pending marks)."""
        if not self.logging and (self.mb.count or self._drop_n):
            self.seal()
        return self._next_in(_L_MK) != NONE or self._next_in(_L_EV) != NONE

    def _next_in(self, li):
        s = self._last[li]
        return self._h[li] if s == NONE else self.nxt[s]

    def _send_next(self, li):
        s = self._next_in(li)
        if s == NONE:
            return None
        self._last[li] = s
        return self._read(s)

    def next_marks(self):
        """The next MARKS packet to send on this link (bytes), or None."""
        return self._send_next(_L_MK)

    def next_event(self):
        """The next EVENT packet to send on this link (bytes), or None."""
        return self._send_next(_L_EV)

    def _ack_marks(self, li, mark_id):
        prev = NONE
        s = self._h[li]
        while s != NONE:
            if self._id16(s) == mark_id:
                self._unlink(li, prev, s)
                self._dirty = True
                return True
            prev = s
            s = self.nxt[s]
        return False

    def _ack_event(self, li, k, event_id):
        prev = NONE
        s = self._h[li]
        while s != NONE:
            if self.kind[s] == k and self._id16(s) == event_id:
                n = 0
                while True:
                    nx = self.nxt[s]
                    self._unlink(li, prev, s)
                    n += 1
                    s = nx
                    if s == NONE or self.kind[s] != k + 1:
                        break
                self._dirty = True
                return n
            prev = s
            s = self.nxt[s]
        return 0

    def ack_marks(self, mark_id):
        """The central received the MARKS packet whose first mark is ``mark_id``: free it."""
        if self._ack_marks(_L_MK, mark_id):
            self.n_marks -= 1
            self._rewind()
            return True
        return False

    def ack_event(self, event_id):
        """The central received the whole EVENT window ``event_id``: free it."""
        n = self._ack_event(_L_EV, K_EV, event_id)
        if n:
            self.n_ev -= n
            self._rewind()
            return True
        return False

    # --- sending the previous boot's packets (BACKFILL_PREV; protocol/SPEC.md "Boots") ----
    def prev_oldest_seq(self):
        """First LOG seq kept of the previous boot, or None."""
        return self._plog_hs if self.n_plog else None

    def prev_next_seq(self):
        """Seq after the previous boot's newest LOG sample kept, or None."""
        return self._plog_end if self.n_plog else None

    def prev_packets(self):
        """Packets of the previous boot still kept (its sealed and pending MARKS too)."""
        mb = self.pmb
        if not self.pboot or mb is None:
            return 0
        return self.n_plog + self.n_pmk + self.n_pev + (1 if mb.count or self._pdrop_n else 0)

    def read_prev_log_from(self, seq):
        """As ``read_log_from``, in the previous boot's LOG."""
        if not self.n_plog:
            return None
        return self._log_from(_L_PLOG, K_PLOG, self._plog_hs, self._plog_end, seq)

    def release_prev_log(self, seq):
        """The central has every sample of the previous boot before ``seq`` (PREV_ACK)."""
        if self.packed is None or _rel(seq, self.packed) < 0x80000000:
            self.packed = seq
        if not self.n_plog:
            return
        n, fe, head = self._free_below(_L_PLOG, seq)
        if n:
            self.n_plog -= n
            self._plog_freed = fe
            self._dirty = True
            if self.n_plog:
                self._plog_hs = head
            else:
                self._prev_done()

    def prev_pending(self):
        """The previous boot's MARKS or EVENT packets waiting to be sent on this link."""
        mb = self.pmb
        if self.pboot and mb is not None and (mb.count or self._pdrop_n):
            self._flush_pdrop()
            self._seal_pmarks()
        return self._next_in(_L_PMK) != NONE or self._next_in(_L_PEV) != NONE

    def next_prev_marks(self):
        return self._send_next(_L_PMK)

    def next_prev_event(self):
        return self._send_next(_L_PEV)

    def ack_prev_marks(self, mark_id):
        if self._ack_marks(_L_PMK, mark_id):
            self.n_pmk -= 1
            self._prev_done()
            return True
        return False

    def ack_prev_event(self, event_id):
        n = self._ack_event(_L_PEV, K_PEV, event_id)
        if n:
            self.n_pev -= n
            self._prev_done()
            return True
        return False

    def stats(self):
        return {"slots": self.cap, "free": self.room(), "log": self.n_log, "marks": self.n_marks,
                "event_packets": self.event_packets, "marks_packets": self.marks_packets,
                "event": self.n_ev, "log_packets": self.log_packets,
                "log_dropped_samples": self.log_dropped_samples,
                "windows_stored": self.windows_stored, "windows_dropped": self.windows_dropped,
                "marks_lost": self.marks_lost, "offline_periods": self.offline_periods,
                "rewinds": self.rewinds, "file_slots": self._fresh,
                "prev_boot_id": self.pboot, "prev_log": self.n_plog, "prev_marks": self.n_pmk,
                "prev_event": self.n_pev, "prev_dropped_samples": self.prev_dropped_samples,
                "prev_windows_dropped": self.prev_windows_dropped,
                "older_dropped_packets": self.older_dropped_packets}


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
