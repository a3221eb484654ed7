"""Soak: one simulated hour through the full BLE path with a fault schedule.

The real firmware (``firmware/ble_app.py`` under the unix MicroPython) runs on the
bumble virtual radio (:class:`nape.ble.VirtualDevice`), streams a still wearer (100 Hz,
trunk + head IMUs) at ``--speed`` times real time (default 5: faster than real time; the
*simulated* time is the samples' own clock, 100 samples = 1 s), and
:func:`nape.recorder.record` writes it through :class:`nape.ble.BleTransport` (bleak
over the bumble backend) into one ``.nape`` file. While it streams, a seeded schedule
injects faults at given points of the simulated hour:

``disconnect``  the radio drops the link (both ends see a supervision timeout); the
                host reconnects at once and backfills.                 Promise: 0 lost.
``radio_drop``  the link drops and the host is out of range (its connection attempts
                fail) for ~20 % of what the on-board buffer holds.    Promise: 0 lost.
``stall``       the host's event loop is blocked for several seconds (``time.sleep``
                in the recorder's progress callback, or a blocking call scheduled on
                the loop).                                             Promise: 0 lost.
``reboot``      the board power-cycles (``VirtualDevice.reboot``): a new boot with
                its own sequence numbers; what it had not yet sent is gone with its RAM
                and spill file (protocol/SPEC.md, "Boots"). Promise: every sample of each
                boot that reached the host is in the file once; the loss at the reboot
                is reported (≥ device's last known ``next_seq`` − received).
``overflow``    the host is out of range for ~1.5x what the on-board buffer holds: the
                device overwrites its oldest unconfirmed samples (by design). Promise:
                the file has exactly one gap there, noted with reason "on-board buffer
                overflow" and its count.

After the run the file is read back: per boot, every sequence number must appear
exactly once except inside gaps explained by an ``overflow`` fault or after the last
received sample of a rebooted boot ("lost where promised" must be 0). It also reports
what ``nape info`` and the analysis (``nape.analysis.analyse`` / its data-quality notes)
say about the gaps.

The on-board buffer is scaled down (``--ram-slots``/``--flash-slots``; the board's
default holds 0.28 h) so that an outage longer than it fits inside the simulated
hour; the mechanism does not depend on its size.

Prints a table; ``--json`` prints one JSON object. Exit status 1 when a promise fails.

Usage: python -m bench.soak [--minutes 60] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402

from nape import wire  # noqa: E402
from nape.ble import BleTransport  # noqa: E402
from nape.errors import DeviceError  # noqa: E402
from nape.recording import open_recording  # noqa: E402

RATE_HZ = 100.0
SAMPLES_PER_PACKET = 5  # two IMUs at MTU 247 (firmware/ble_buffer.py)
KINDS = ("disconnect", "radio_drop", "stall", "reboot", "overflow")
OVERFLOW_REASON = "on-board buffer overflow"
DROP_AWAY = 0.2  # a radio drop's outage, in on-board buffers (of samples at the stream's rate)
OVERFLOW_AWAY = 1.5  # the overflow fault's outage, in on-board buffers


# ------------------------------------------------------------------------------ wearer
class _Imu:
    def __init__(self, acc: np.ndarray, gyr: np.ndarray) -> None:
        self.acc, self.gyr = acc, gyr


class _Wearer:
    """A still, upright wearer (sensor noise only) in the shape ``sim_stdin_blob`` reads."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rate_hz = RATE_HZ
        self.imus = {r: _Imu(np.tile([0.0, 0.0, 9.80665], (n, 1)) + rng.normal(0, 0.02, (n, 3)),
                             rng.normal(0, 0.002, (n, 3))) for r in ("trunk", "head")}

    def blob(self, start: int = 0) -> bytes:
        """The raw samples from ``start`` on (simhost format)."""
        from nape.device_sim import sim_stdin_blob

        cut = _Wearer.__new__(_Wearer)
        cut.rate_hz = self.rate_hz
        cut.imus = {r: _Imu(i.acc[start:], i.gyr[start:]) for r, i in self.imus.items()}
        return sim_stdin_blob(cut)


# ------------------------------------------------------------------------------ schedule
def make_schedule(minutes: float, seed: int, stall_s: float = 4.0, buffer_samples: int = 0,
                  samples_per_wall_s: float = 500.0) -> list[dict]:
    """Faults at points of the simulated run (``at``: the wearer's sample index, i.e.
    simulated time x 100 Hz, as the host has it: the current boot's first sample's index
    in the wearer's hour + the sequence number the host expects next).

    Per simulated hour: 6 disconnects, 3 radio drops, 3 host stalls (at least one of
    each), one reboot (at ~40 %), one buffer overflow (at ~75 %, after the reboot;
    earlier when its outage, 1.5 buffers + up to 5.5 s of reconnect back-off at
    ``samples_per_wall_s``, would not end before the wearer's hour does).
    """
    n = int(minutes * 60 * RATE_HZ)
    rng = random.Random(seed)
    per_h = {"disconnect": 6, "radio_drop": 3, "stall": 3}
    others = [k for k, c in per_h.items() for _ in range(max(1, round(c * minutes / 60)))]
    rng.shuffle(others)
    kinds = list(others)
    kinds.insert(round(0.4 * len(kinds)), "reboot")
    k = len(kinds)
    out = []
    for i, kind in enumerate(kinds):
        frac = 0.05 + 0.8 * (i + 0.5 + 0.5 * (rng.random() - 0.5)) / k
        f = {"kind": kind, "at": int(frac * n)}
        if kind == "stall":
            f["seconds"] = round(stall_s * (0.75 + 0.5 * rng.random()), 2)
            f["how"] = ("sleep in the recorder's progress callback", "blocking call on the event loop")[
                sum(1 for o in out if o["kind"] == "stall") % 2]
        out.append(f)
    # the overflow outage must end before the wearer's hour does
    at_ov = int(min(0.75 * n, 0.95 * n - OVERFLOW_AWAY * buffer_samples - 5.5 * samples_per_wall_s))
    if at_ov < 0.05 * n:
        raise ValueError(f"the on-board buffer ({buffer_samples} samples) is too big for {minutes} min")
    out.append({"kind": "overflow", "at": at_ov})
    return sorted(out, key=lambda f: f["at"])


class SoakTransport(BleTransport):
    """``BleTransport`` whose connection attempts fail while the host is "out of range"
    (``away_until``, monotonic s): the device sees no central, keeps sampling into its
    offline buffer and advertising; the host retries with its normal back-off."""

    away_until = 0.0

    async def _open(self):
        if time.monotonic() < self.away_until:
            await asyncio.sleep(0.02)
            raise DeviceError("out of range (soak)")
        return await super()._open()


# ------------------------------------------------------------------------------ the run
async def soak(path: Path, minutes: float = 60.0, seed: int = 0, *, ram_slots: int = 512,
               flash_slots: int = 2048, speed: float = 5.0, stall_s: float = 4.0,
               progress=None) -> dict:
    """Record ``minutes`` of simulated wear into ``path`` with the fault schedule;
    return the raw figures (see :func:`evaluate`).

    Raises:
        nape.errors.DeviceError: the recording failed (link never came back).
    """
    from nape.ble import VirtualDevice
    from nape.recorder import record

    n = int(minutes * 60 * RATE_HZ)
    wearer = _Wearer(n, seed)
    capacity = (ram_slots + flash_slots) * SAMPLES_PER_PACKET  # samples the device buffers
    schedule = make_schedule(minutes, seed, stall_s, capacity, speed * RATE_HZ if speed > 0 else 1000.0)
    state = {"received": 0, "stall": None, "done": False}
    links: list[tuple[str, dict]] = []
    history: list[tuple[float, int]] = []  # (monotonic s, samples received) for the rate
    faults: list[dict] = []
    boot_plan = [{"first_global": 0, "nsim_start": 0}]

    def on_progress(st) -> None:
        state["received"] = st.samples
        history.append((time.monotonic(), st.samples))
        del history[:-60]
        s = state["stall"]
        if s is not None:
            state["stall"] = None
            time.sleep(s)  # the host's event loop blocked in a callback
        if progress:
            progress(st.samples, n)

    def rate() -> float:
        """Samples/s wall the stream runs at (the last few seconds)."""
        if len(history) < 2:
            return 500.0
        t1, s1 = history[-1]
        t0, s0 = next(((t, s) for t, s in history if t1 - t >= 3.0), history[0])
        return max(50.0, (s1 - s0) / max(t1 - t0, 1e-3))

    def clock() -> int:
        """The wearer's sample index the host has reached (simulated time x 100 Hz)."""
        return boot_plan[-1]["nsim_start"] + (tr._next_seq or 0)

    async def link_up() -> None:
        while not links or links[-1][0] not in ("connected", "reconnected"):
            if state["done"]:
                return
            await asyncio.sleep(0.01)

    async def caught_up() -> None:
        """Until the link is up and the host has what the device had at its last status
        (notified every second): the buffer holds only the last second or so."""
        while not state["done"]:
            await link_up()
            st, nxt = tr.stats.last_status, tr._next_seq
            if st is not None and nxt is not None and st.boot_id == tr._boot_id:
                behind = (st.next_seq - nxt) & 0xFFFFFFFF
                if behind == 0 or behind >= 0x80000000:
                    return
            await asyncio.sleep(0.05)

    async def wait_reconnect(after: int) -> dict | None:
        while not state["done"]:
            for ev, kw in links[after:]:
                if ev == "reconnected":
                    return kw
            await asyncio.sleep(0.01)
        return None

    async with VirtualDevice(wearer.blob(), speed=speed, secure=False, ram_slots=ram_slots,  # data path only
                             flash_slots=flash_slots) as vd:
        tr = SoakTransport(bumble=vd.bumble_args,
                           on_link=lambda ev, **kw: links.append((ev, dict(kw, _t=time.monotonic()))))

        async def injector() -> None:
            loop = asyncio.get_running_loop()
            for f in schedule:
                while clock() < f["at"] and not state["done"]:
                    await asyncio.sleep(0.02)
                await caught_up()  # each fault hits a working stream with the backfill done
                if state["done"]:
                    return
                kind = f["kind"]
                rec = dict(f, boot=len(tr.stats.boots), sim_s=round(clock() / RATE_HZ, 1),
                           wall=time.monotonic())
                st0 = tr.stats.last_status
                rec["device_overflow_before"] = st0.overflow_samples if st0 else 0
                nl = len(links)
                if kind == "disconnect":
                    rec["dropped"] = await vd.drop_link()
                    rec["from_seq"] = tr._next_seq
                    rc = await wait_reconnect(nl)
                elif kind in ("radio_drop", "overflow"):
                    r = rate()
                    away = (DROP_AWAY if kind == "radio_drop" else OVERFLOW_AWAY) * capacity / r
                    rec.update(away_s=round(away, 2), rate_samples_per_s=round(r))
                    tr.away_until = time.monotonic() + away
                    rec["dropped"] = await vd.drop_link()
                    rec["from_seq"] = tr._next_seq
                    rc = await wait_reconnect(nl)
                    if rc is not None:  # back in range -> streaming again
                        rec["in_range_to_streaming_s"] = round(rc["_t"] - tr.away_until, 3)
                elif kind == "stall":
                    t = time.monotonic()
                    if f["how"].startswith("sleep"):
                        state["stall"] = f["seconds"]
                        while state["stall"] is not None and not state["done"]:
                            await asyncio.sleep(0.01)
                    else:
                        loop.call_soon(time.sleep, f["seconds"])
                        await asyncio.sleep(0)
                    rec["blocked_s"] = round(time.monotonic() - t, 2)
                    rc = None
                else:  # reboot
                    st = tr.stats.last_status
                    sent = await vd.stats()
                    rec["received_next_seq"] = tr._next_seq
                    rec["device_next_seq_last_status"] = st.next_seq if st else None
                    rec["sent_next_seq"] = sent.get("sent_next_seq")
                    # the wearer goes on: the new boot streams the rest of the hour
                    start = boot_plan[-1]["nsim_start"] + max(rec["device_next_seq_last_status"] or 0,
                                                              rec["sent_next_seq"] or 0)
                    start = min(start, n - 1000)
                    tmp = vd.workdir / "samples.next"
                    tmp.write_bytes(wearer.blob(start))
                    os.replace(tmp, vd.workdir / "samples.nsim")  # the old firmware keeps its inode
                    boot_plan.append({"first_global": state["received"], "nsim_start": start})
                    ev = await vd.reboot()
                    rec["booted_start_unix_ms"] = ev.get("start_unix_ms")
                    rc = await wait_reconnect(nl)
                down = next((kw for ev, kw in links[nl:] if ev == "disconnected"), None)
                if down is not None and kind != "reboot":  # what the host had when the link went
                    rec["from_seq"] = down.get("next_seq")
                if rc is not None:
                    rec["reconnect_s"] = round(rc.get("seconds", float("nan")), 3)
                    rec["attempts"] = rc.get("attempts")
                st1 = tr.stats.last_status
                if st1 is not None:
                    rec["device_overflow_after"] = st1.overflow_samples
                    rec["device_oldest_seq_after"] = st1.oldest_seq
                rec["wall"] = round(time.monotonic() - rec["wall"], 2)
                faults.append(rec)

        t0 = time.monotonic()
        task = asyncio.create_task(injector())
        try:
            stats = await record(tr, path, on_progress=on_progress, progress_interval_s=0.25)
        finally:
            state["done"] = True
            task.cancel()
            with _suppress():
                await task
        wall = time.monotonic() - t0
        source_done = [e["line"] for e in vd.events
                       if e.get("event") == "fw" and e.get("line", "").startswith("NAPE-APP source_done")]
    final_next = int(source_done[-1].split("next_seq=")[1]) if source_done else None
    return {"path": str(path), "minutes": minutes, "seed": seed, "samples_planned": n,
            "ram_slots": ram_slots, "flash_slots": flash_slots, "buffer_samples": capacity,
            "speed": speed, "wall_s": wall, "schedule": schedule, "faults": faults,
            "record_stats": stats.as_dict(), "link": tr.link_summary(),
            "reconnect_s": list(tr.stats.reconnect_s), "final_boot_next_seq": final_next,
            "first_connect_s": tr.stats.connect_s[0] if tr.stats.connect_s else None,
            "boot_plan": boot_plan}


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True


# ------------------------------------------------------------------------------ checking
def file_boots(path: Path) -> tuple[list[dict], list[dict]]:
    """Per boot in file order: ``{"boot_id", "seqs"}``; and every NOTE (dicts)."""
    boots: list[dict] = [{"boot_id": None, "seqs": []}]
    notes: list[dict] = []
    for chunk in open_recording(path).chunks():
        if chunk.note is not None:
            notes.append(chunk.note)
            if chunk.note.get("event") == "boot":
                if boots[-1]["seqs"] or boots[-1]["boot_id"] is not None:
                    boots.append({"boot_id": chunk.note.get("boot_id"), "seqs": []})
                else:
                    boots[-1]["boot_id"] = chunk.note.get("boot_id")
        for p in chunk.packets or []:
            pk = wire.decode_packet(p)
            if isinstance(pk, wire.SamplesPacket):
                boots[-1]["seqs"].extend(range(pk.seq, pk.seq + pk.count))
    return [b for b in boots if b["seqs"] or b["boot_id"]], notes


def evaluate(run: dict) -> dict:
    """Compare the file with what the device produced; figures + pass/fail (boots
    numbered from 1 in file order)."""
    path = Path(run["path"])
    boots, notes = file_boots(path)
    faults = run["faults"]
    reboots = [f for f in faults if f["kind"] == "reboot"]
    overflows = [f for f in faults if f["kind"] == "overflow"]
    dup = 0
    lost_promised = 0
    by_design: list[dict] = []
    unexplained: list[dict] = []
    received = 0
    for b_i, b in enumerate(boots):
        seqs = np.asarray(b["seqs"], np.int64)
        received += len(seqs)
        uniq = np.unique(seqs)
        dup += len(seqs) - len(uniq)
        if not len(uniq):
            continue
        out_of_order = int((np.diff(seqs) <= 0).sum())
        if out_of_order:
            unexplained.append({"boot": b_i + 1, "out_of_order": out_of_order})
        # expected: 0 .. last for every boot after the first (a new boot starts at 0
        # during the recording); the first boot from its first received sample
        first = 0 if b_i > 0 else int(uniq[0])
        have = np.zeros(int(uniq[-1]) - first + 1, bool)
        have[uniq - first] = True
        missing = np.flatnonzero(~have) + first
        gaps = []
        if len(missing):
            cut = np.flatnonzero(np.diff(missing) > 1) + 1
            for part in np.split(missing, cut):
                gaps.append((int(part[0]), int(part[-1]) + 1))
        for a, z in gaps:
            ov = [f for f in overflows if f["boot"] == b_i + 1 and f.get("from_seq") == a]
            if ov:
                f = ov[0]
                rose = f.get("device_overflow_after", 0) - f.get("device_overflow_before", 0)
                by_design.append({"boot": b_i + 1, "from_seq": a, "to_seq": z, "samples": z - a,
                                  "reason": OVERFLOW_REASON, "device_overflow_rose_by": rose})
            else:
                unexplained.append({"boot": b_i + 1, "from_seq": a, "to_seq": z, "samples": z - a})
                lost_promised += z - a
    # the end of each rebooted boot: what the board had but never sent
    reboot_loss = []
    for r in reboots:
        b_i = r["boot"] - 1
        last = (max(boots[b_i]["seqs"]) + 1) if b_i < len(boots) and boots[b_i]["seqs"] else 0
        if r.get("received_next_seq") is not None and last < r["received_next_seq"]:
            lost_promised += r["received_next_seq"] - last  # received by the host, not in the file
            unexplained.append({"boot": b_i + 1, "received_not_in_file": r["received_next_seq"] - last})
        dev = max(r.get("device_next_seq_last_status") or 0, r.get("sent_next_seq") or 0)
        reboot_loss.append({"boot": b_i + 1, "in_file_next_seq": last, "sent_on_air_next_seq": r.get("sent_next_seq"),
                            "device_next_seq_last_known": r.get("device_next_seq_last_status"),
                            "lost_at_least": max(0, dev - last)})
    # the last boot must be complete up to the end of its source
    final = run.get("final_boot_next_seq")
    if final is not None and boots:
        last = max(boots[-1]["seqs"]) + 1 if boots[-1]["seqs"] else 0
        if last < final:
            lost_promised += final - last
            unexplained.append({"boot": len(boots), "tail_missing": final - last})
    gap_notes = [n for n in notes if n.get("event") == "gap"]
    reboot_notes = [n for n in notes if n.get("event") == "reboot"]
    counts = {k: sum(1 for f in faults if f["kind"] == k) for k in KINDS}
    rs = sorted(run["reconnect_s"])
    # produced (a lower bound: a rebooted boot's last samples are known only to its last status)
    sent = sum(max(b["seqs"]) + 1 if b["seqs"] else 0 for b in boots[:-1])
    sent += sum(x["lost_at_least"] for x in reboot_loss)
    sent += max(final or 0, max(boots[-1]["seqs"]) + 1 if boots and boots[-1]["seqs"] else 0)
    res = {
        "simulated_min": round(sent / RATE_HZ / 60, 2),
        "wall_s": round(run["wall_s"], 1),
        "speedup": None,
        "faults_planned": {k: sum(1 for f in run["schedule"] if f["kind"] == k) for k in KINDS},
        "faults_injected": counts,
        "boots_in_file": len(boots),
        "first_seq_in_file": boots[0]["seqs"][0] if boots and boots[0]["seqs"] else None,
        "first_connect_s": run.get("first_connect_s"),
        "samples_sent": sent,
        "samples_received": received,
        "duplicates_in_file": dup,
        "recorder_duplicates_dropped": run["record_stats"]["duplicate_samples"],
        "recorder_lost_samples": run["record_stats"]["lost_samples"],
        "lost_where_promised": lost_promised,
        "unexplained": unexplained[:10],
        "gaps_by_design": by_design,
        "reboot_losses": reboot_loss,
        "gap_notes_in_file": gap_notes,
        "reboot_notes_in_file": reboot_notes,
        "overflow_reason_in_file": any(n.get("reason") == OVERFLOW_REASON for n in gap_notes),
        "reconnects": len(rs),
        "reconnect_ms_median": round(1000 * rs[len(rs) // 2], 1) if rs else None,
        "reconnect_ms_p90": round(1000 * rs[int(0.9 * (len(rs) - 1))], 1) if rs else None,
        "reconnect_ms_max": round(1000 * rs[-1], 1) if rs else None,
        "stalls_s": [f.get("blocked_s") for f in faults if f["kind"] == "stall"],
        "reconnect_ms_by_kind": {k: [round(1000 * f["reconnect_s"]) for f in faults
                                     if f["kind"] == k and "reconnect_s" in f]
                                 for k in ("disconnect", "radio_drop", "reboot", "overflow")},
        "in_range_to_streaming_ms": [round(1000 * f["in_range_to_streaming_s"]) for f in faults
                                     if "in_range_to_streaming_s" in f],
        "outages_s": {k: [f.get("away_s") for f in faults if f["kind"] == k] for k in ("radio_drop", "overflow")},
        "device_overflow_samples_end": run["link"].get("device_overflow_samples"),
        "buffer_samples": run["buffer_samples"],
        "buffer_s": run["buffer_samples"] / RATE_HZ,
        "faults": faults,
        "target_lost_where_promised": 0,
    }
    res["speedup"] = round(res["simulated_min"] * 60 / max(run["wall_s"], 1e-9), 1)
    res["all_faults_injected"] = all(counts[k] >= 1 for k in KINDS) and counts == res["faults_planned"]
    noted = {(n.get("from_seq"), n.get("missing_samples")) for n in gap_notes if n.get("reason") == OVERFLOW_REASON}
    res["overflow_gap_reported"] = bool(by_design) and all((g["from_seq"], g["samples"]) in noted for g in by_design)
    res["reboot_loss_reported"] = len(reboot_notes) == counts["reboot"] and all(
        "lost_samples_at_least" in n for n in reboot_notes)
    res["target_met"] = (lost_promised == 0 and dup == 0 and res["all_faults_injected"]
                         and res["reboot_loss_reported"]
                         and len(by_design) == counts["overflow"] and res["overflow_gap_reported"]
                         and res["boots_in_file"] == 1 + counts["reboot"])
    return res


def reporting(path: Path) -> dict:
    """What ``nape info`` and the analysis say about the gaps in ``path``."""
    out: dict = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "nape.cli", "info", str(path)], capture_output=True,
                       text=True, env=env, timeout=300)
    try:
        info = json.loads(p.stdout)
    except ValueError:
        info = {}
    sess = info.get("session", {})
    out["info_lost_samples"] = sess.get("stats", {}).get("lost_samples")
    out["info_device_overflow_samples"] = sess.get("link", {}).get("device_overflow_samples")
    out["info_gaps"] = info.get("gaps")
    out["info_mentions_overflow"] = any(g.get("reason") == OVERFLOW_REASON for g in info.get("gaps") or [])
    try:
        from nape.analysis import analyse
        from nape.report import quality_notes

        f = analyse(path)
        notes = quality_notes(f)
        out.update(analysis_samples=f.samples, analysis_lost_samples=f.lost_samples,
                   analysis_gaps=f.gaps, analysis_notes=[n for n in notes if "lost" in n or "Gap" in n
                                                         or "overflow" in n or "reboot" in n.lower()],
                   analysis_mentions_overflow=any("overflow" in n for n in notes))
    except Exception as e:  # the analysis is another module's; report, do not fail the soak
        out["analysis_error"] = f"{type(e).__name__}: {e}"
    return out


def run(minutes: float = 60.0, seed: int = 0, *, ram_slots: int = 512, flash_slots: int = 2048,
        speed: float = 5.0, stall_s: float = 4.0, keep: str | None = None, analysis: bool = True,
        progress=None) -> dict:
    """Soak + evaluation (+ reporting checks); the file is kept at ``keep`` if given."""
    with tempfile.TemporaryDirectory(prefix="nape-soak-") as d:
        path = Path(keep) if keep else Path(d) / "soak.nape"
        if path.exists():
            path.unlink()
        raw = asyncio.run(soak(path, minutes, seed, ram_slots=ram_slots, flash_slots=flash_slots,
                               speed=speed, stall_s=stall_s, progress=progress))
        res = evaluate(raw)
        if analysis:
            res["reporting"] = reporting(path)
    res.update(minutes=minutes, seed=seed, command=(
        f"python -m bench.soak --minutes {minutes:g} --seed {seed} --ram-slots {ram_slots} "
        f"--flash-slots {flash_slots} --speed {speed:g} --stall-s {stall_s:g}"))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="example: python -m bench.soak --minutes 60 --seed 0 --json")
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="fault schedule and wearer noise (default 0)")
    ap.add_argument("--ram-slots", type=int, default=512, help="device RAM ring, packets (default 512)")
    ap.add_argument("--flash-slots", type=int, default=2048, help="device spill file, packets (default 2048)")
    ap.add_argument("--speed", type=float, default=5.0,
                    help="times real time (default 5: the firmware keeps up on a loaded 2-core machine); "
                         "0 = as fast as it runs (uneven: much faster with no central)")
    ap.add_argument("--stall-s", type=float, default=4.0, help="host stall length, wall s (±25 %%, default 4)")
    ap.add_argument("--keep", default=None, help="keep the recording at this path")
    ap.add_argument("--no-analysis", action="store_true", help="skip the nape info / analysis checks")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    if a.minutes <= 0 or a.ram_slots < 32 or a.flash_slots < 16 or a.speed < 0:
        ap.error("--minutes must be > 0, --ram-slots >= 32, --flash-slots >= 16, --speed >= 0")
    try:  # an outage longer than the buffer must fit in the run
        make_schedule(a.minutes, a.seed, a.stall_s, (a.ram_slots + a.flash_slots) * SAMPLES_PER_PACKET,
                      a.speed * RATE_HZ if a.speed > 0 else 1000.0)
    except ValueError as e:
        ap.error(f"{e}: use more --minutes or fewer --ram-slots / --flash-slots")
    kw = dict(ram_slots=a.ram_slots, flash_slots=a.flash_slots, speed=a.speed, stall_s=a.stall_s,
              keep=a.keep, analysis=not a.no_analysis)
    if a.json:
        res = run(a.minutes, a.seed, **kw)
        print(json.dumps(res, indent=1, default=str))
        return 0 if res["target_met"] else 1
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task("soak (samples received)", total=int(a.minutes * 60 * RATE_HZ))
        res = run(a.minutes, a.seed, progress=lambda i, n: prog.update(task, completed=i), **kw)
    print_table(res)
    return 0 if res["target_met"] else 1


def print_table(res: dict) -> None:
    """The readable table of :func:`run`'s result."""
    from rich.console import Console
    from rich.table import Table

    a = argparse.Namespace(seed=res["seed"])
    t = Table(title=f"soak: {res['simulated_min']:.1f} simulated min through the BLE path (seed {a.seed})")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    ok = "✓" if res["lost_where_promised"] == 0 else "✗"
    fi = res["faults_injected"]
    rows = [
        ("simulated duration", f"{res['simulated_min']:.1f} min", ""),
        ("wall time", f"{res['wall_s']:.0f} s ({res['speedup']:.1f}x real time)", ""),
        ("faults injected", ", ".join(f"{k} {v}" for k, v in fi.items()), "one of each"),
        ("on-board buffer", f"{res['buffer_samples']} samples ({res['buffer_s']:.0f} s)", ""),
        ("boots in the file", str(res["boots_in_file"]), str(1 + fi["reboot"])),
        ("samples sent (produced, lower bound)", str(res["samples_sent"]), ""),
        ("samples received (in the file)", str(res["samples_received"]), ""),
        ("duplicates in the file", str(res["duplicates_in_file"]), "0"),
        ("duplicates dropped by the recorder", str(res["recorder_duplicates_dropped"]), ""),
        ("lost where promised", str(res["lost_where_promised"]), f"0 {ok}"),
    ]
    for g in res["gaps_by_design"]:
        rows.append((f"gap, boot {g['boot']} ({g['reason']})", f"{g['samples']} samples "
                     f"({g['samples'] / RATE_HZ:.0f} s), device counter +{g['device_overflow_rose_by']}", "reported"))
    for r in res["reboot_losses"]:
        rows.append((f"lost at the reboot (boot {r['boot']})", f"≥ {r['lost_at_least']} samples", "reported"))
    for n in res["reboot_notes_in_file"]:
        rows.append(("reboot note in the file", f"received to seq {n.get('previous_received_next_seq')}, device "
                     f"had ≥ {n.get('previous_device_next_seq')}: lost ≥ {n.get('lost_samples_at_least')}", ""))
    rows.append(("gap notes in the file (reason)", ", ".join(
        f"{n.get('missing_samples')} ({n.get('reason')})" for n in res["gap_notes_in_file"]) or "none",
        OVERFLOW_REASON))
    rows.append(("reconnects: n, median / p90 / max", f"{res['reconnects']}, {res['reconnect_ms_median']} / "
                 f"{res['reconnect_ms_p90']} / {res['reconnect_ms_max']} ms", ""))
    rows.append(("host stalls (s)", ", ".join(f"{s}" for s in res["stalls_s"]), ""))
    for k, v in res["reconnect_ms_by_kind"].items():
        if v:
            rows.append((f"reconnect after {k} (ms)", ", ".join(map(str, v)), ""))
    if res["in_range_to_streaming_ms"]:
        rows.append(("back in range -> streaming (ms)", ", ".join(map(str, res["in_range_to_streaming_ms"])), ""))
    rep = res.get("reporting", {})
    if rep:
        rows.append(("nape info: lost / device overflow", f"{rep.get('info_lost_samples')} / "
                     f"{rep.get('info_device_overflow_samples')}", ""))
        rows.append(("nape info lists the gap with its reason", "yes" if rep["info_mentions_overflow"] else "no",
                     "yes"))
        if "analysis_error" in rep:
            rows.append(("analysis", rep["analysis_error"][:80], ""))
        else:
            rows.append(("analysis: samples / lost", f"{rep['analysis_samples']} / {rep['analysis_lost_samples']}", ""))
            rows.append(("analysis names the overflow", "yes" if rep["analysis_mentions_overflow"] else "no", "yes"))
    for r in rows:
        t.add_row(*r)
    Console(width=max(120, Console().width)).print(t)
    for u in res["unexplained"]:
        print("unexplained:", u)
    print("target met" if res["target_met"] else "TARGET NOT MET")


if __name__ == "__main__":
    sys.exit(main())
