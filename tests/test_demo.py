"""The whole path: simulated wearer → firmware (real MicroPython) → wire → .nape → analysis → report."""

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nape.analysis import analyse
from nape.cli import main
from nape.device_sim import SimulatedTransport
from nape.recorder import record
from nape.recording import open_recording
from nape.report import fmt_duration
from nape.sim import simulate_day
from nape import wire

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def day():
    return simulate_day(seed=0)


@pytest.fixture(scope="module")
def recorded(day, tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "day.nape"
    stats = asyncio.run(record(SimulatedTransport(day), path, metadata={"sim_seed": 0}))
    return path, stats


def test_every_sample_arrives_once_in_order(day, recorded):
    path, stats = recorded
    assert stats.samples == len(day.t)
    assert stats.lost_samples == 0 and stats.malformed == 0 and stats.duplicate_samples == 0
    seqs = []
    for _t, p in open_recording(path).iter_packets():
        pkt = wire.decode_packet(p)
        seqs.extend(range(pkt.seq, pkt.seq + pkt.count))
    assert seqs == list(range(len(day.t)))


def test_firmware_orientation_matches_truth(day, recorded):
    """The quaternions in the file came from the firmware's fusion under MicroPython: their
    inclination error against the simulator's truth must be close to the vqf package's on
    the same raw signals (the day includes a drive, hard for any 6D filter)."""
    from vqf import VQF

    path, _ = recorded
    quats = np.concatenate([wire.decode_packet(p).quat for _t, p in open_recording(path).iter_packets()])
    settled = slice(int(10 * day.rate_hz), None)
    for k, role in enumerate(["trunk", "head"]):
        imu = day.imus[role]
        ref = VQF(1 / day.rate_hz).updateBatch(np.ascontiguousarray(imu.gyr), np.ascontiguousarray(imu.acc))["quat6D"]
        rmse = {}
        for name, q in (("firmware", quats[:, k]), ("vqf", ref)):
            err = np.degrees(np.arccos(np.clip((_z_in_sensor(imu.quat_true) * _z_in_sensor(q)).sum(axis=1), -1, 1)))
            rmse[name] = float(np.sqrt(np.mean(err[settled] ** 2)))
        assert rmse["firmware"] <= 1.25 * rmse["vqf"] + 0.2, (role, rmse)
        assert rmse["firmware"] < 4.0, (role, rmse)


def _z_in_sensor(q):
    """World vertical expressed in the sensor frame (the inclination reference)."""
    w, x, y, z = q.T
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def test_analysis_finds_the_scripted_postures_and_jolts(day, recorded):
    path, _ = recorded
    f = analyse(path)
    labels = day.labels
    neck_eps = [e for e in f.episodes if e.kind == "neck_flexion"]
    for kind in ("keyboard_hunch", "phone"):
        lab = next(p for p in labels.postures if p.kind == kind)
        hit = [e for e in neck_eps if e.start_s < lab.t_end and e.end_s > lab.t_start]
        assert hit, f"{kind} not found"
        assert abs(hit[0].start_s - lab.t_start) < 10 and abs(hit[0].end_s - lab.t_end) < 10
    truth = [e for e in labels.events if e.kind != "head_turn" and e.severity != "mild"]
    for ev in truth:
        near = [j for j in f.jolts if abs(j.peak_t_s - ev.t_peak) < 1.5]
        assert near, f"{ev.kind} at {ev.t_peak} s not found"
    # the scripted day has voluntary head turns, and none of them is called a jolt
    turns = [e for e in labels.events if e.kind == "head_turn"]
    assert turns, "the scripted day has no head turn to check"
    for e in turns:
        assert not [j for j in f.jolts if abs(j.peak_t_s - e.t_peak) < 1.5], "a voluntary head turn was called a jolt"


def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((ROOT / "protocol" / "report.schema.json").read_text(encoding="utf-8")))


def test_demo_command_writes_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--time-scale", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "report:" in out
    html = (tmp_path / "report.html").read_text()
    assert "newPlot" in html and "<script src=" not in html
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["samples"] > 0 and data["lost_samples"] == 0
    assert (tmp_path / "demo.nape").stat().st_size > 0
    assert not list(_validator().iter_errors(data))
    # the headline in plain words: "N jolts, 1 severe and 4 moderate: worst hard braking at 08:42 (severe)."
    h = data["headlines"]
    worst = max(data["jolts"], key=lambda j: ({"mild": 0, "moderate": 1, "severe": 2}[j["grade"]], j["peak_trunk_g"]))
    # (first, unless a coverage line comes before it: the drive's reduced-rate span starts
    # a fraction of a second after the full-rate data stops)
    lines = [x for x in h if not x.startswith("The figures below rest on ")]
    m = re.fullmatch(r"(\d+) jolts, (.+): worst (.+) at (\d\d:\d\d) \((\w+)\)\.", lines[0])
    assert m, h
    assert int(m[1]) == len(data["jolts"]) and m[4] == worst["peak_local_time"][:5] and m[5] == worst["grade"]
    # "Neck bent forward more than 20° for 2 h 10 min, longest 34 min (...)": total and longest from the episodes
    neck = next(x for x in h if x.startswith("Neck bent forward more than 20° for "))
    eps = [e["duration_s"] for e in data["episodes"] if e["kind"] == "neck_flexion"]
    if eps:
        assert f"longest {fmt_duration(max(eps))}" in neck, neck
    else:  # the shortened day may hold no posture long enough
        assert "in short spells, never held for 1 min or longer" in neck, neck
    total = fmt_duration(data["exposure_s"]["neck_over_threshold_s"])
    assert neck.startswith((f"Neck bent forward more than 20° for {total},", f"Neck bent forward more than 20° for {total} in short spells")), neck
    assert any(x.startswith("Lying down for ") for x in h)
    for section in ("Time by angle", "ISO 11226 and RULA", "RULA neck score", "In bed", "Calibration and data quality",
                    "Calibration: You did not press calibrate", "No samples lost in transmission", "section class=\"jolt\""):
        assert section in html, section
    # the drive with the host away: the board logged on its own, the recorder found it again
    # through its advertising windows and backfilled everything once
    day = json.loads((tmp_path / "demo.day.json").read_text())
    assert day["complete"] and day["lost_samples"] == 0 and day["duplicate_samples"] == 0
    assert day["log_samples"] > 0 and day["marks"] >= 2  # offline start and end
    assert 0 <= day["reconnect_after_board_s"] <= 10.4  # one advertising period (10 s) and its window
    assert "backfilled" in out and "reduced-rate" in out
    assert data["rates"]["reduced_rate_s"] > 0 and "Reduced rate for " in html
    assert data["rates"]["window_jolts"] >= 1  # a jolt of the drive measured from the board's own window
    assert any(j["source"] == "event window" for j in data["jolts"])


def test_demo_without_head_sensor(tmp_path, capsys):
    """A board without the head IMU: the report says what it cannot measure and validates."""
    assert main(["demo", "--out", str(tmp_path), "--time-scale", "0.3", "--no-head", "--away", "none"]) == 0
    assert not (tmp_path / "demo.day.json").exists()
    capsys.readouterr()
    data = json.loads((tmp_path / "report.json").read_text())
    assert not list(_validator().iter_errors(data))
    assert data["roles"] == ["trunk"] and "neck_bands_s" not in data["exposure_s"] and data["rula_neck_s"] == {}
    assert sum(data["exposure_s"]["trunk_bands_s"].values()) > 0
    assert "No head sensor: neck posture was not measured, only the upper back." in data["headlines"]
    assert not any(x.startswith("Neck bent forward") for x in data["headlines"])
    assert all(j["nic_m2s2"] is None and j["peak_head_g"] is None for j in data["jolts"])
    assert all(j["trace"] is None or set(j["trace"]) == {"source", "rate_hz", "complete", "t_rel_s", "trunk_acc_g",
                                                          "trunk_gyr_dps"} for j in data["jolts"])
    html = (tmp_path / "report.html").read_text()
    assert "RULA neck score: needs the head sensor" in html and "Neck angles need the head sensor" in html


def test_small_mtu_fragments_and_loses_nothing(tmp_path, day):
    from nape.sim import SimSettings
    short = simulate_day(seed=1, settings=SimSettings(time_scale=0.1))
    stats = asyncio.run(record(SimulatedTransport(short, max_value_len=20), tmp_path / "m.nape"))
    assert stats.samples == len(short.t) and stats.lost_samples == 0
    assert stats.notifications >= 3 * stats.packets  # 55-byte packets in 19-byte fragments
