"""A day away from any host, sped up: the whole firmware logs on its own, then backfills.

``python -m bench.offline_day [--json] [--quick] [--away-s S]``

The virtual board (``nape.ble.VirtualDevice``: ``main.boot`` under MicroPython on the
register-level fake IMUs at 500 Hz, the bumble radio) runs a synthetic wearer with no
central in range: upright and still, a 2 g trunk bump every ``--jolt-every-s`` (the jolt
screen's EVENT windows) and a 35 deg forward hunch held past the posture alert's hold time
every 300 s (ALERT_START / ALERT_END marks). After ``--offline-after-s`` of board time the
day log (``firmware/daylog.py``) takes over from the SAMPLES buffer. When the wearer file
is used up (``source_done``) the host connects over the virtual radio at MTU 247
(``nape.ble.BleTransport``: BACKFILL_ALL, ACK and LOG_ACK) and takes everything.

Counted at the packet level with the host decoders (``nape.wire`` for SAMPLES / EVENT,
``nape.wire_log`` for LOG, MARKS by its spec layout): every ``seq`` of the boot, SAMPLES
and LOG, once (``lost_samples``, ``duplicate_samples``); the EVENT windows received whole
against the bumps sent while offline (``jolt windows kept / expected``); the marks.

Reboot (``reboot`` in the output): the board logs alone, is power-cycled, logs alone
again, then the host records both boots (``_run_reboot``): the earlier boot's LOG samples
received against what its day-log file held on flash before the reboot (read on the host),
the later boot's whole seq line, both boots in the analysis.

Capacity: the flash the day log used per second of offline time (LOG and the EVENT
windows of this wearer, in 244-byte slots, from the firmware's ``DAYLOG`` line and the
packets received) extrapolated to the day-log file of each board: the XIAO ESP32S3's
``config.DAYLOG_KIB`` and a plain 4 MiB ESP32's 1600 KiB (``firmware/daylog.py``). The
simulation cannot run hours of 500 Hz IMU data in minutes, so the away time is minutes and
the capacity is this extrapolation (stated in the output). ``backfill_x_realtime``: board
time covered by the backfill over the wall time from the BACKFILL answer to the last packet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time

import numpy as np

G = 9.80665
RATE = 500.0
SLOT = 244
XIAO_KIB = 3968  # config.DAYLOG_KIB
EVICT_KIB = 24  # the eviction run: 99 slots, about 6 min of LOG, for 4 min away with 4 jolts
ESP32_KIB = 1600  # plain 4 MiB ESP32: 2 MiB VFS less ~320 KiB firmware and bonds, DAYLOG_FREE_KIB (daylog.plan)
TARGETS = {"capacity_hours_xiao": 16.0, "backfill_x_realtime": 20.0, "lost_samples": 0,
           "duplicate_samples": 0, "jolt_windows_missing": 0, "evict_lost_samples_unmarked": 0,
           "evict_windows_untold": 0, "day_log_packets_sent_twice": 0,
           "reboot_earlier_boot_lost_samples": 0, "reboot_earlier_boot_duplicate_samples": 0,
           "reboot_later_boot_lost_samples": 0}


class _Imu:
    def __init__(self, acc, gyr):
        self.acc = acc
        self.gyr = gyr


class Wearer:
    """Still and upright; a 2 g, 30 ms trunk bump every ``jolt_every_s`` from 20 s on; a
    35 deg forward hunch of ``hunch_s`` every ``hunch_every_s`` from 100 s on."""

    def __init__(self, total_s, jolt_every_s=60.0, hunch_every_s=300.0, hunch_s=90.0, seed=5):
        n = int(total_s * RATE)
        t = np.arange(n) / RATE
        rng = np.random.default_rng(seed)
        ph = (t - 100.0) % hunch_every_s
        up = np.clip(ph, 0.0, 1.0) - np.clip(ph - hunch_s, 0.0, 1.0)
        up[t < 100.0] = 0.0
        pitch = np.deg2rad(35.0) * up
        rate = np.gradient(pitch, 1.0 / RATE)
        acc = np.stack([-G * np.sin(pitch), np.zeros(n), G * np.cos(pitch)], axis=1)
        gyr = np.stack([np.zeros(n), rate, np.zeros(n)], axis=1)
        self.bumps = np.arange(20.0, total_s - 2.0, jolt_every_s)
        trunk_acc = acc + rng.normal(0, 0.02, (n, 3))
        for b in self.bumps:
            i = int(b * RATE)
            trunk_acc[i:i + int(0.03 * RATE), 2] += 2.0 * G
        self.rate_hz = RATE
        self.imus = {"trunk": _Imu(trunk_acc, gyr + rng.normal(0, 0.002, (n, 3))),
                     "head": _Imu(acc + rng.normal(0, 0.02, (n, 3)), gyr + rng.normal(0, 0.002, (n, 3)))}


_COST = r"""
import gc, json, time, array, daylog
class B:
    def __init__(s):
        s.seq = 0
        s.count = 0
class P:
    def __init__(s):
        s.batcher = B()
        s.rate_hz = 50
        s.feedback = None
        s.log = None
    def flush(s):
        s.batcher.count = 0
q0 = array.array("f", (0.9, 0.1, -0.3, 0.2))
q1 = array.array("f", (0.7, -0.2, 0.1, 0.6))
p = P()
dl = daylog.DayLog(PATH, 4000, 3, after_ms=0, verbose=False)
dl.attach(p)
dl.update(0, False)
t = 0
for _ in range(500):
    t += 20
    dl.fused(t, q0, q1)
S = 600
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(50 * S):
    t += 20
    dl.fused(t, q0, q1)
us = time.ticks_diff(time.ticks_us(), t0)
a1 = gc.mem_alloc()
gc.enable()
print(json.dumps({"us_per_s": us / S, "bytes_per_s": (a1 - a0) / S, "packets": dl.log_packets}))
"""


def logging_cost() -> dict:
    """Per second of offline logging (50 Hz fused samples in, 10 Hz LOG out, a file write
    per packet): CPU microseconds and heap bytes, under the unix MicroPython on this host
    (an ESP32-S3 at 80-160 MHz is tens of times slower: ``bench.firmware_cost`` scales)."""
    import subprocess
    import tempfile

    from nape import micropython

    with tempfile.TemporaryDirectory() as d:
        code = _COST.replace("PATH", repr(d + "/day.log"))
        proc = subprocess.run(micropython.command("-c", code, heap="16m"), capture_output=True,
                              env=micropython.env(), timeout=300)
    if proc.returncode:
        raise RuntimeError("logging cost run failed: " + micropython.last_error_line(proc.stderr.decode()))
    return json.loads(proc.stdout.decode().splitlines()[-1])


def _marks(pkt: bytes) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """(first mark_id, [(t_ms, kind, a, b, c)]) of a MARKS packet (protocol/SPEC.md, type 4)."""
    if len(pkt) < 8 or pkt[1] != 4:
        raise ValueError("not a MARKS packet")
    _v, _t, _mask, count, mark_id, reserved = struct.unpack_from("<BBBBHH", pkt, 0)
    if not 1 <= count <= 19 or len(pkt) != 8 + 12 * count or reserved:
        raise ValueError("bad MARKS packet")
    return mark_id, [struct.unpack_from("<IBBHI", pkt, 8 + 12 * i) for i in range(count)]


async def _run(away_s: float, offline_after_s: float, jolt_every_s: float, timeout_s: float,
               daylog_kib: int = XIAO_KIB) -> dict:
    from nape import wire
    from nape.ble import BleTransport, VirtualDevice
    from nape.ble.virtual import nsim_blob
    from nape.wire_log import decode_log_packet

    wearer = Wearer(away_s, jolt_every_s=jolt_every_s)
    blob = nsim_blob(wearer)
    out: dict = {}
    async with VirtualDevice(blob, speed=0, secure=False, quiet_hours=False, flash=True,
                             daylog_kib=daylog_kib, offline_after_s=offline_after_s,
                             start_timeout=120.0) as vd:
        t0 = time.monotonic()
        while True:  # the host is away: the board runs the whole wearer file alone
            lines = [e.get("line", "") for e in vd.events if e.get("event") == "fw"]
            done = [ln for ln in lines if ln.startswith("NAPE-APP source_done")]
            if done:
                break
            if time.monotonic() - t0 > timeout_s:
                raise SystemExit("offline_day: the virtual board did not finish the wearer in %.0f s" % timeout_s)
            await asyncio.sleep(0.5)
        out["offline_wall_s"] = time.monotonic() - t0
        next_seq = int(done[0].split("next_seq=")[1])
        tr = BleTransport(bumble=vd.bumble_args)
        reasm = {"stream": wire.Reassembler(), "event": wire.Reassembler()}
        seqs: list[int] = []
        log_samples = samples = 0
        windows: dict[int, dict[int, int]] = {}
        totals: dict[int, int] = {}
        marks: dict[int, tuple] = {}
        mark_dups = 0
        t_first = t_last = None
        t_min = t_max = None
        async with tr:
            async for note in tr.notifications():
                if note.channel not in reasm:
                    continue
                pkt = reasm[note.channel].feed(note.value)
                if pkt is None:
                    continue
                now = time.monotonic()
                t_first = now if t_first is None else t_first
                t_last = now
                if pkt[1] == 3:
                    lp = decode_log_packet(pkt)
                    seqs.extend(range(lp.seq, lp.seq + lp.count))
                    log_samples += lp.count
                    t_end = lp.t_ms + lp.period_ms * lp.count
                    t_min = lp.t_ms if t_min is None else min(t_min, lp.t_ms)
                    t_max = t_end if t_max is None else max(t_max, t_end)
                elif pkt[1] == 4:
                    mid, ms = _marks(pkt)
                    for i, m in enumerate(ms):
                        k = (mid + i) & 0xFFFF
                        mark_dups += k in marks
                        marks[k] = m
                else:
                    p = wire.decode_packet(pkt)
                    if isinstance(p, wire.EventPacket):
                        windows.setdefault(p.event_id, {})[p.first_index] = p.count
                        totals[p.event_id] = p.total
                    else:
                        seqs.extend(range(p.seq, p.seq + p.count))
                        samples += p.count
            stats = tr.link_summary()
        # a second host session: what the board still sends after the first confirmed
        # everything (ACK, LOG_ACK): the SAMPLES ring keeps what it holds until it needs
        # room, the day log must send nothing again
        tr2 = BleTransport(bumble=vd.bumble_args)
        again = {"log": 0, "marks": 0, "event": 0, "samples": 0}
        re2 = {"stream": wire.Reassembler(), "event": wire.Reassembler()}
        async with tr2:
            async for note in tr2.notifications():
                if note.channel not in re2:
                    continue
                pkt = re2[note.channel].feed(note.value)
                if pkt is not None:
                    again[{1: "samples", 2: "event", 3: "log", 4: "marks"}[pkt[1]]] += 1
        out["second_session_packets"] = again
    lines = [e.get("line", "") for e in vd.events if e.get("event") == "fw"]
    uniq = set(seqs)
    out["next_seq"] = next_seq
    missing = {s for s in range(next_seq) if s not in uniq}
    out["lost_samples"] = len(missing)
    # what the board said it dropped (LOG_DROPPED: b samples from seq c; EVENT_DROPPED: id b)
    told = set()
    for m in marks.values():
        if m[1] == 4:
            told.update(range(m[4], m[4] + m[3]))
    out["dropped_samples_marked"] = len(told)
    out["lost_samples_unmarked"] = len(missing - told)
    out["marked_but_received"] = len(told & uniq)
    out["windows_dropped_marked"] = sorted(m[3] for m in marks.values() if m[1] == 5)
    out["duplicate_samples"] = len(seqs) - len(uniq)
    out["samples_packets_samples"] = samples
    out["log_samples"] = log_samples
    whole = [e for e, got in windows.items() if sum(got.values()) == totals[e]]
    out["windows_incomplete"] = {e: [totals[e], sum(got.values()), len(got)] for e, got in windows.items()
                                 if sum(got.values()) != totals[e]}
    kinds = [m[1] for m in marks.values()]
    off = [m for m in marks.values() if m[1] == 6]
    end = [m for m in marks.values() if m[1] == 7]
    off_t0 = off[0][0] / 1000 if off else None
    off_t1 = end[0][0] / 1000 if end else None
    # bumps while the day log ran (the screen's 1 s refractory and 0.75 s window fit)
    expected = [b for b in wearer.bumps if off_t0 is not None and b >= off_t0 + 0.5]
    out["jolt_windows_expected"] = len(expected)
    out["jolt_windows_kept"] = len(whole)
    out["jolt_windows_missing"] = max(0, len(expected) - len(whole) - len(out["windows_dropped_marked"]))
    out["windows_marked_and_received"] = len(set(out["windows_dropped_marked"]) & set(whole))
    out["marks"] = {name: kinds.count(k) for k, name in ((1, "alert_start"), (2, "alert_end"), (3, "calibrated"),
                                                         (4, "log_dropped"), (5, "event_dropped"),
                                                         (6, "offline_start"), (7, "offline_end"))}
    out["duplicate_marks"] = mark_dups
    span_s = ((t_max - t_min) / 1000) if t_min is not None and t_max is not None else 0.0
    wall = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
    out["backfill_wall_s"] = wall
    out["backfill_board_s"] = span_s
    out["backfill_x_realtime"] = span_s / wall if wall > 0 else 0.0
    offline_s = (off_t1 - off_t0) if off_t0 is not None and off_t1 is not None else 0.0
    out["offline_board_s"] = offline_s
    out["sim_x_realtime"] = away_s / out["offline_wall_s"]
    # flash used while offline: LOG packets (the log's own count) + the EVENT packets stored
    dl = [ln for ln in lines if ln.startswith("DAYLOG ")]
    log_pk = ev_pk = None
    if dl:
        st = json.loads(dl[-1][len("DAYLOG "):])
        log_pk, ev_pk = st["log_packets"], st["event_packets"]
        out["daylog"] = st
    if log_pk is None:  # no stats line: count what arrived
        log_pk = (log_samples + 37) // 38
        ev_pk = sum(len(v) for v in windows.values())
    n_marks_pk = (len(marks) + 18) // 19
    log_per_s = (log_pk + n_marks_pk) / offline_s if offline_s else 0.0
    all_per_s = (log_pk + ev_pk + n_marks_pk) / offline_s if offline_s else 0.0
    out["log_bytes_per_s"] = log_per_s * SLOT
    out["event_slots_per_window"] = ev_pk / max(1, len(whole))
    for name, kib in (("xiao", XIAO_KIB), ("esp32", ESP32_KIB)):
        slots = min(kib * 1024 // SLOT - 1, 65534)
        # orientation and marks (the day log's target), and with this wearer's jolt windows
        out["capacity_hours_" + name] = slots / log_per_s / 3600 if log_per_s else 0.0
        out["capacity_hours_%s_with_jolts" % name] = slots / all_per_s / 3600 if all_per_s else 0.0
        # a window costs its slots' worth of LOG time
        out["minutes_per_jolt_window"] = (out["event_slots_per_window"] / log_per_s / 60) if log_per_s else 0.0
    out["jolts_per_hour"] = 3600 / jolt_every_s
    out["link"] = stats
    return out


def flash_log(path) -> dict:
    """What a day-log file (firmware/daylog.py, format 2: slots of a length byte, a boot tag
    byte and the packet) holds, read on the host: LOG seqs and EVENT windows per boot tag."""
    from pathlib import Path

    data = Path(path).read_bytes()
    out: dict = {}
    for i in range(SLOT, len(data) - SLOT + 1, SLOT):
        n, tag = data[i], data[i + 1]
        pkt = data[i + 2:i + 2 + n]
        if n < 8 or pkt[0] != 1:
            continue
        d = out.setdefault(tag, {"log": [], "windows": set()})
        if pkt[1] == 3:
            seq, = struct.unpack_from("<I", pkt, 4)
            d["log"].extend(range(seq, seq + pkt[3]))
        elif pkt[1] == 2:
            d["windows"].add(struct.unpack_from("<H", pkt, 4)[0])
    return out


async def _run_reboot(away_s: float, offline_after_s: float, jolt_every_s: float, timeout_s: float,
                      path=None) -> dict:
    """A reboot while the host is away: the board logs the wearer file alone (boot A), is
    power-cycled (``{"cmd": "reboot"}``), logs it again alone (boot B), then ``nape record``
    connects. Counted in the ``.nape`` file per boot (its ``boot`` notes): boot A's LOG
    against what its day-log file held on flash before the reboot (read here), B's whole
    seq line; jolt windows whole per boot; the analysis' boots."""
    import tempfile
    from pathlib import Path

    from nape import wire
    from nape.analysis import analyse
    from nape.analysis.stream import BlockReader
    from nape.ble import BleTransport, VirtualDevice
    from nape.ble.virtual import nsim_blob
    from nape.recorder import record
    from nape.recording import open_recording

    wearer = Wearer(away_s, jolt_every_s=jolt_every_s)
    blob = nsim_blob(wearer)
    out: dict = {}
    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "reboot.nape"

    async def source_done(vd, k: int) -> int:
        t0 = time.monotonic()
        while True:
            done = [e["line"] for e in vd.events if e.get("event") == "fw"
                    and e.get("line", "").startswith("NAPE-APP source_done")]
            if len(done) >= k:
                return int(done[k - 1].split("next_seq=")[1])
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError("the virtual board did not finish the wearer in %.0f s" % timeout_s)
            await asyncio.sleep(0.5)

    try:
        async with VirtualDevice(blob, speed=0, secure=False, quiet_hours=False, flash=True,
                                 offline_after_s=offline_after_s, start_timeout=120.0) as vd:
            out["a_next_seq"] = await source_done(vd, 1)
            files = [f for f in vd.workdir.iterdir() if f.is_file() and not f.name.endswith(".st")
                     and f.read_bytes()[:8] == b"NAPEDLG2"]
            on_flash = flash_log(files[0]) if files else {}
            a_flash = next(iter(on_flash.values()), {"log": [], "windows": set()})
            await vd.reboot(timeout=120.0)  # a power cycle mid-away: boot B logs on its own
            out["b_next_seq"] = await source_done(vd, 2)
            kept = [e["line"] for e in vd.events if e.get("event") == "fw" and "kept" in e.get("line", "")]
            out["board_kept_line"] = kept[-1] if kept else None
            tr = BleTransport(bumble=vd.bumble_args)
            stats = await asyncio.wait_for(record(tr, path), timeout_s)
            out["link"] = tr.link_summary()
        rec = open_recording(path)
        boots: list[dict] = []
        for ch in rec.chunks():
            if ch.note is not None and ch.note.get("event") == "boot":
                boots.append({"boot_id": ch.note["boot_id"], "epoch_from": ch.note.get("epoch_from"),
                              "seqs": [], "log": 0, "samples": 0, "windows": {}})
            for pkt in ch.packets or ():
                b = boots[-1]
                if pkt[1] == 3:
                    seq, = struct.unpack_from("<I", pkt, 4)
                    b["seqs"].extend(range(seq, seq + pkt[3]))
                    b["log"] += pkt[3]
                elif pkt[1] == 1:
                    p = wire.decode_packet(pkt)
                    b["seqs"].extend(range(p.seq, p.seq + p.count))
                    b["samples"] += p.count
                elif pkt[1] == 2:
                    p = wire.decode_packet(pkt)
                    w = b["windows"].setdefault(p.event_id, [p.total, 0])
                    w[1] += p.count
        out["boots_in_file"] = len(boots)
        a = boots[0] if boots else {"seqs": [], "log": 0, "samples": 0, "windows": {}}
        b = boots[1] if len(boots) > 1 else {"seqs": [], "log": 0, "samples": 0, "windows": {}}
        fa = set(a_flash["log"])
        out["a_flash_log_samples"] = len(fa)
        out["a_received_log_samples"] = a["log"]
        out["a_lost_samples"] = len(fa - set(a["seqs"]))  # on flash before the reboot, not received
        out["a_duplicate_samples"] = len(a["seqs"]) - len(set(a["seqs"]))
        out["a_not_on_flash"] = out["a_next_seq"] - len(fa)  # RAM at the reboot: SAMPLES before logging, a partial LOG packet
        out["a_windows_on_flash"] = len(a_flash["windows"])
        out["a_windows_whole"] = sum(1 for w in a["windows"].values() if w[0] == w[1])
        out["a_epoch_from"] = boots[0].get("epoch_from") if boots else None
        out["b_lost_samples"] = len(set(range(out["b_next_seq"])) - set(b["seqs"]))
        out["b_duplicate_samples"] = len(b["seqs"]) - len(set(b["seqs"]))
        out["b_log_samples"] = b["log"]
        out["b_windows_whole"] = sum(1 for w in b["windows"].values() if w[0] == w[1])
        out["recorder_lost_samples"] = stats.lost_samples
        out["recorder_duplicate_samples"] = stats.duplicate_samples
        rep = analyse(path)
        out["analysis_samples"] = rep.samples
        out["analysis_duration_s"] = rep.duration_s
        out["analysis_gaps"] = [(g["reason"], g["boot_number"]) for g in rep.gaps]
        reader = BlockReader(open_recording(path), 3)
        for _ in reader:
            pass
        out["analysis_boots"] = [{"boot_id": x.boot_id, "samples": x.samples} for x in reader.boots if x.samples]
        out["analysis_duplicates"] = reader.duplicates + reader.late
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.offline_day", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="one JSON object: values, targets, pass")
    ap.add_argument("--quick", action="store_true", help="4 board minutes away instead of 30")
    ap.add_argument("--away-s", type=float, default=None, help="board seconds with no host")
    ap.add_argument("--offline-after-s", type=float, default=10.0,
                    help="board seconds without a central before the day log runs (board: 60)")
    ap.add_argument("--jolt-every-s", type=float, default=60.0, help="a trunk bump this often")
    ap.add_argument("--timeout-s", type=float, default=900.0)
    a = ap.parse_args(argv)
    away = a.away_s if a.away_s is not None else (240.0 if a.quick else 1800.0)
    try:
        v = asyncio.run(_run(away, a.offline_after_s, a.jolt_every_s, a.timeout_s))
        # a day log too small for the time away: eviction end to end, every loss told
        ev = asyncio.run(_run(240.0, a.offline_after_s, a.jolt_every_s, a.timeout_s, daylog_kib=EVICT_KIB))
        v["evict"] = {k: ev[k] for k in ("next_seq", "lost_samples", "dropped_samples_marked",
                                         "lost_samples_unmarked", "marked_but_received", "duplicate_samples",
                                         "jolt_windows_expected", "jolt_windows_kept",
                                         "windows_dropped_marked", "jolt_windows_missing",
                                         "windows_marked_and_received", "marks")}
        # a reboot while away: the earlier boot's day log survives and arrives as its own boot
        rb = asyncio.run(_run_reboot(min(away, 240.0), a.offline_after_s, a.jolt_every_s, a.timeout_s))
        v["reboot"] = {k: rb[k] for k in rb if k != "link"}
        cost = logging_cost()
        v["logging_us_per_s"] = cost["us_per_s"]
        v["logging_heap_bytes_per_s"] = cost["bytes_per_s"]
    except (OSError, RuntimeError, ValueError) as e:
        print("offline_day: %s" % e, file=sys.stderr)
        return 1
    ok = (v["capacity_hours_xiao"] >= TARGETS["capacity_hours_xiao"]
          and v["backfill_x_realtime"] >= TARGETS["backfill_x_realtime"]
          and v["lost_samples"] == 0 and v["duplicate_samples"] == 0
          and v["jolt_windows_missing"] == 0 and v["duplicate_marks"] == 0
          and v["evict"]["lost_samples_unmarked"] == 0 and v["evict"]["marked_but_received"] == 0
          and v["evict"]["duplicate_samples"] == 0 and v["evict"]["jolt_windows_missing"] == 0
          and v["evict"]["windows_marked_and_received"] == 0 and v["evict"]["lost_samples"] > 0
          and v["second_session_packets"]["log"] == v["second_session_packets"]["marks"]
          == v["second_session_packets"]["event"] == 0
          and v["reboot"]["boots_in_file"] == 2 and v["reboot"]["a_flash_log_samples"] > 0
          and v["reboot"]["a_lost_samples"] == 0 and v["reboot"]["a_duplicate_samples"] == 0
          and v["reboot"]["a_windows_whole"] == v["reboot"]["a_windows_on_flash"]
          and v["reboot"]["b_lost_samples"] == 0 and v["reboot"]["b_duplicate_samples"] == 0
          and len(v["reboot"]["analysis_boots"]) == 2)
    if a.json:
        print(json.dumps({"values": v, "targets": TARGETS, "pass": ok}))
        return 0 if ok else 1
    print("offline day (virtual board, whole firmware): %.0f board s away, day log after %.0f s"
          % (away, a.offline_after_s))
    print("  simulation ran at %.1fx real time (%.0f s wall)" % (v["sim_x_realtime"], v["offline_wall_s"]))
    rows = [
        ("capacity_hours XIAO ESP32S3 (%d KiB)" % XIAO_KIB, "%.1f h" % v["capacity_hours_xiao"],
         ">= 16 h", "%.1f h with %.0f jolts/h" % (v["capacity_hours_xiao_with_jolts"], v["jolts_per_hour"])),
        ("capacity_hours plain ESP32 (%d KiB)" % ESP32_KIB, "%.1f h" % v["capacity_hours_esp32"], "-",
         "%.1f h with %.0f jolts/h" % (v["capacity_hours_esp32_with_jolts"], v["jolts_per_hour"])),
        ("backfill_x_realtime", "%.0fx" % v["backfill_x_realtime"], ">= 20x",
         "%.0f board s in %.1f s" % (v["backfill_board_s"], v["backfill_wall_s"])),
        ("lost_samples", str(v["lost_samples"]), "0", "of %d seqs" % v["next_seq"]),
        ("duplicate_samples", str(v["duplicate_samples"]), "0", ""),
        ("jolt windows kept / expected", "%d / %d" % (v["jolt_windows_kept"], v["jolt_windows_expected"]),
         "all", "%.0f jolts/h" % v["jolts_per_hour"]),
        ("logging cost per second (unix port)", "%.0f us" % v["logging_us_per_s"], "",
         "%.0f heap bytes" % v["logging_heap_bytes_per_s"]),
        ("eviction (%d KiB day log, 240 s away): lost" % EVICT_KIB, str(v["evict"]["lost_samples"]), "all told",
         "%d told by LOG_DROPPED, %d untold; windows kept %d, told dropped %s of %d" % (
             v["evict"]["dropped_samples_marked"], v["evict"]["lost_samples_unmarked"],
             v["evict"]["jolt_windows_kept"], v["evict"]["windows_dropped_marked"],
             v["evict"]["jolt_windows_expected"])),
        ("day log sent again to a second session", "%d" % sum(
            v["second_session_packets"][k] for k in ("log", "marks", "event")), "0",
         "packets (after ACK / LOG_ACK; SAMPLES ring: %d)" % v["second_session_packets"]["samples"]),
        ("marks", " ".join("%s %d" % kv for kv in v["marks"].items() if kv[1]), "", ""),
        ("reboot mid-away: earlier boot lost / duplicate", "%d / %d" % (
            v["reboot"]["a_lost_samples"], v["reboot"]["a_duplicate_samples"]), "0 / 0",
         "of %d LOG samples on flash; %d in RAM at the reboot (SAMPLES before its log, a partial "
         "LOG packet); windows %d / %d whole" % (
             v["reboot"]["a_flash_log_samples"], v["reboot"]["a_not_on_flash"],
             v["reboot"]["a_windows_whole"], v["reboot"]["a_windows_on_flash"])),
        ("reboot mid-away: later boot lost / duplicate", "%d / %d" % (
            v["reboot"]["b_lost_samples"], v["reboot"]["b_duplicate_samples"]), "0 / 0",
         "of %d seqs; analysis: %d boots, %s" % (
             v["reboot"]["b_next_seq"], len(v["reboot"]["analysis_boots"]),
             ", ".join("%s %d samples" % (b["boot_id"], b["samples"]) for b in v["reboot"]["analysis_boots"]))),
    ]
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print("  %-*s  %-12s %-8s %s" % (w, r[0], r[1], r[2], r[3]))
    print("  capacity: flash the day log used per offline second (LOG and MARKS %.0f B/s; each "
          "jolt window %.0f slots = %.1f min of LOG) extrapolated to the board's day-log file"
          % (v["log_bytes_per_s"], v["event_slots_per_window"], v["minutes_per_jolt_window"]))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
