"""`nape rom` with a device: the guided test recorded over BLE (bleak) with live prompts.

The virtual Nape (firmware under MicroPython behind a bumble peripheral) streams an
everyday simulated wearer, not a ROM test, so these tests check the plumbing — the
recording spans the protocol, carries its schedule, stops by itself, and is analysed —
not the angles (tests/test_rom.py validates those with the simulated ROM wearer).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator

from nape import wire
from nape.analysis.rom import PROMPTS, Protocol
from nape.cli import main
from nape.recording import open_recording
from nape.rom_session import LIVE_GRACE_S, LiveTestClock

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "rom.schema.json").read_text())


@pytest.fixture(autouse=True)
def _no_user_state(tmp_path, monkeypatch):
    """No test reaches a virtual radio, key store or trends database outside its tmp dir."""
    monkeypatch.setenv("NAPE_VIRTUAL_RADIO", str(tmp_path / "no-radio.sock"))
    monkeypatch.setenv("NAPE_BLE_KEYSTORE", str(tmp_path / "keys.json"))


def _seqs(path) -> list[int]:
    out = []
    for c in open_recording(path).chunks():
        for p in c.packets or []:
            pk = wire.decode_packet(p)
            if isinstance(pk, wire.SamplesPacket):
                out.extend(range(pk.seq, pk.seq + pk.count))
    return out


def test_rom_without_adapter_fails_with_one_line(tmp_path, capsys):
    rc = main(["rom", "--scan-timeout", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("nape: error: "), err
    assert "Traceback" not in err[0]
    assert not (tmp_path / "r" / "rom.nape").exists()


def test_rom_refuses_two_sources(tmp_path, capsys):
    assert main(["rom", "--virtual", "--virtual-radio", "--out", str(tmp_path)]) == 1
    assert "only one of" in capsys.readouterr().err


def test_rom_on_the_virtual_radio_records_the_protocol_and_analyses_it(tmp_path, capsys):
    out = tmp_path / "rom"
    rc = main(["rom", "--virtual-radio", "--speed", "10", "--out", str(out)])
    cap = capsys.readouterr()
    text = cap.out
    assert rc == 0, cap.err
    p = Protocol()
    path = out / "rom.nape"
    rec = open_recording(path)
    assert rec.closed_cleanly and not rec.issues
    meta = rec.metadata
    assert meta["rom_protocol"] == p.schedule() and meta["source"] == "ble"
    assert meta["imu_roles"] == ["trunk", "head"] and meta["sample_rate_hz"] == 100.0
    seqs = _seqs(path)
    n = len(seqs)
    # the whole protocol, stopped by itself shortly after its end (sample clock, 100 Hz)
    assert p.total_s * 100 <= n <= (p.total_s + 3.0) * 100, n
    assert seqs == list(range(seqs[0], seqs[0] + n))  # live data, every sample once, in order
    assert f"recorded {n} samples (0 lost)" in text
    # every prompt was shown, in order
    flat = " ".join((cap.err + cap.out).split())  # shown above the live view (stderr)
    pos = [flat.find(" ".join(PROMPTS[d].split())) for d in p.directions]
    assert all(x >= 0 for x in pos) and pos == sorted(pos)
    # the analysis ran on it and reported
    doc = json.loads((out / "rom.rom.json").read_text())
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))
    assert doc["samples"] == n and doc["lost_samples"] == 0
    assert doc["schedule"] == p.schedule()
    assert {d["direction"] for d in doc["directions"]} == set(p.directions)
    assert doc["series"]["time_s"][0] == 0.0 and doc["series"]["time_s"][-1] >= p.total_s - 0.2
    assert (out / "rom.rom.html").stat().st_size > 10000 and "report:" in text
    # a second run does not overwrite the recording without --overwrite
    assert main(["rom", "--virtual-radio", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and open_recording(path).closed_cleanly


def _stats(samples, lost=0):
    return SimpleNamespace(samples=samples, lost_samples=lost)


def test_test_clock_follows_samples_and_the_wall_clock_when_the_link_stalls():
    p = Protocol()
    v = LiveTestClock(p, transport=None, virtual=False)
    v.rate_hz = 100.0
    assert v.due(1000.0) == [] and not v.done(1e9)  # nothing before the first sample
    v.stats, v.t0 = _stats(100), 0.0
    assert v.clock_s(1.0) == 1.0 and [ph for _t, ph, _x in v.due(1.0)] == ["neutral"]
    # a device streaming faster than real time (virtual, speed > 1): the sample clock leads
    v.stats = _stats(int(p.neutral_s * 100) + 1)
    assert v.clock_s(2.0) == pytest.approx(p.neutral_s + 0.01)
    assert [ph for _t, ph, _x in v.due(2.0)] == [p.directions[0]]
    # the link stalls: prompts keep coming by the wall clock, 11 s per direction
    hold_end = p.neutral_s + p.move_s + p.hold_s
    assert [ph for _t, ph, _x in v.due(hold_end)] == ["return"]
    assert not v.done(p.total_s - 0.1)
    # samples lost and counted as such advance the sample clock; the end of the protocol stops
    v.stats = _stats(int(p.total_s * 100) - 500, lost=500)
    assert v.done(p.total_s * 0.5)
    # samples never come back: stop LIVE_GRACE_S after the end by the wall clock
    v.stats = _stats(1000)
    assert not v.done(p.total_s + LIVE_GRACE_S - 0.5) and v.done(p.total_s + LIVE_GRACE_S)
