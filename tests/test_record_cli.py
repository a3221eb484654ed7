"""``nape record`` end to end through ``nape.cli.main``: no adapter, the virtual radio,
a SIGKILLed recorder, and a device reboot mid-stream.

The virtual Nape is the firmware under MicroPython behind a bumble peripheral
(nape.ble.VirtualDevice); the recorder reaches it through bleak with the bumble backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from bench.kill_recorder import kill_recorder_once
from nape import wire
from nape.ble import BleTransport, VirtualDevice, nsim_blob
from nape.cli import main
from nape.recorder import record
from nape.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_user_state(tmp_path, monkeypatch):
    """No test reaches a virtual radio or key store outside its tmp dir."""
    monkeypatch.setenv("NAPE_VIRTUAL_RADIO", str(tmp_path / "no-radio.sock"))
    monkeypatch.setenv("NAPE_BLE_KEYSTORE", str(tmp_path / "keys.json"))


def _samples(path) -> list[tuple[int, int]]:
    """(boot number, seq) of every sample in file order (boot 0: before any boot note)."""
    out, boot = [], 0
    for c in open_recording(path).chunks():
        if c.note is not None and c.note.get("event") == "boot":
            boot = c.note["n"]
        for p in c.packets or []:
            pk = wire.decode_packet(p)
            if isinstance(pk, wire.SamplesPacket):
                out.extend((boot, s) for s in range(pk.seq, pk.seq + pk.count))
    return out


def test_record_without_adapter_or_virtual_fails_with_one_line(tmp_path, capsys):
    out = tmp_path / "x.nape"
    rc = main(["record", str(out), "--scan-timeout", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("nape: error: ")
    assert "Traceback" not in err[0] and "--virtual" in err[0]
    assert not out.exists()


def test_record_virtual_for_a_short_duration(tmp_path, capsys):
    out = tmp_path / "v.nape"
    rc = main(["record", str(out), "--virtual", "--duration", "3", "--speed", "4", "--time-scale", "0.1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    samples = _samples(out)
    n = len(samples)
    assert n >= 300  # 3 s at 4 x 100 Hz, minus start-up
    assert [s for _b, s in samples] == list(range(n))  # every sample once, in order
    assert f"{n} samples" in text
    rec = open_recording(out)
    assert rec.closed_cleanly and rec.metadata["source"] == "ble" and rec.metadata["imu_roles"] == ["trunk", "head"]
    # the session totals are in the file, and `nape info` shows them
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["session"]["stats"]["samples"] == n and info["session"]["stats"]["lost_samples"] == 0
    assert info["session"]["link"]["mtu"] == 247 and len(info["session"]["link"]["boot_ids"]) == 1


def test_record_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "exists.nape"
    out.write_bytes(b"keep me")
    assert main(["record", str(out), "--virtual"]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"


def test_help_has_examples(capsys):
    for cmd in ("record", "pair"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert f"nape {cmd} " in capsys.readouterr().out


def test_sigkill_mid_stream_loses_at_most_the_last_second(tmp_path):
    async def go():
        async with VirtualDevice(nsim_blob(n=60000), speed=1.0, secure=False) as vd:
            return [await kill_recorder_once(vd, tmp_path / f"k{i}.nape", random.Random(i), 1.0, 3.0)
                    for i in range(2)]

    for i, r in enumerate(asyncio.run(go())):
        rec = open_recording(tmp_path / f"k{i}.nape")  # opens; the reader resyncs past a torn chunk
        assert not rec.closed_cleanly  # it really was killed
        assert r["gapless"] and r["file_samples"] >= 100
        assert r["file_next_seq"] >= r["sent_1s_before"], r  # all but the last second is in the file
        assert r["lost_samples"] <= 100, r


def test_ctrl_c_stops_the_recording_with_the_file_closed(tmp_path):
    out = tmp_path / "int.nape"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "host"))

    async def go():
        async with VirtualDevice(nsim_blob(n=60000), speed=1.0, secure=False) as vd:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nape.cli", "record", str(out), "--virtual", "--radio", str(vd.radio_path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
            while not (out.exists() and out.stat().st_size > 3000):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode, stdout.decode()

    rc, text = asyncio.run(go())
    assert rc == 0 and "stopped (file closed)" in text
    rec = open_recording(out)
    assert rec.closed_cleanly and not rec.issues
    (end,) = [n for _t, n in rec.iter_notes() if n.get("event") == "session_end"]
    assert end["stopped"] == "interrupted" and "error" not in end
    n = len(_samples(out))
    assert n == end["stats"]["samples"] and n >= 100 and f"{n} samples" in text


def test_peripheral_reboot_mid_stream_keeps_both_boots(tmp_path):
    n = 6000
    path = tmp_path / "reboot.nape"

    async def go():
        async with VirtualDevice(nsim_blob(n=n), speed=0, secure=False) as vd:
            tr = BleTransport(bumble=vd.bumble_args)
            got = []

            async def reboot_when_streaming():
                while tr.stats.notifications < 100:
                    await asyncio.sleep(0.05)
                got.append(await vd.reboot())

            rebooter = asyncio.create_task(reboot_when_streaming())
            stats = await record(tr, path)
            await rebooter
            return stats, tr.stats

    stats, link = asyncio.run(go())
    samples = _samples(path)
    first = [s for b, s in samples if b == 1]
    second = [s for b, s in samples if b == 2]
    assert len(first) >= 400 and first == list(range(len(first)))  # boot 1: what arrived, in order
    assert second == list(range(n))  # boot 2: every sample once, though its seqs repeat boot 1's
    assert stats.boots == 2 and stats.duplicate_samples == 0 and stats.lost_samples == 0
    assert len(link.boots) == 2 and link.boots[0] != link.boots[1]
    notes = [nt for _t, nt in open_recording(path).iter_notes()]
    assert any(nt.get("event") == "reboot" for nt in notes)
    assert any(nt.get("event") == "disconnected" for nt in notes)
