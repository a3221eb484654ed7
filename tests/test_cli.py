"""CLI behaviour: help with examples, one-line errors, analyse/info on a real recording."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nape.cli import main
from tests.recording_factory import G, pitch_quat, write_recording


def _run(*args):
    return subprocess.run([sys.executable, "-m", "nape.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cmd", ["demo", "analyse", "info", "decode", "flash", "import", "export", "sessions",
                                 "trends", "scan"])
def test_every_command_has_help_with_example(cmd):
    r = _run(cmd, "--help")
    assert r.returncode == 0
    assert "example:" in r.stdout and f"nape {cmd}" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["demo", "--seed", "abc"], "not an integer"),
    (["demo", "--mtu", "10"], "ATT MTU must be 23..517"),
    (["demo", "--time-scale", "-1"], "must be > 0"),
    (["frobnicate"], "invalid choice"),
    (["analyse"], "required"),
])
def test_bad_arguments_one_line_exit_2(args, needle):
    r = _run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_missing_file_and_bad_setting_one_line_exit_1(tmp_path):
    r = _run("analyse", str(tmp_path / "nope.nape"))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "nape: error:" in r.stderr
    junk = tmp_path / "junk.nape"
    junk.write_bytes(b"hello, not a recording" * 10)
    r = _run("info", str(junk))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    n = 3000
    p = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(n)), pitch_quat(np.zeros(n)))
    r = _run("analyse", str(p), "--set", "neck_angle=3")
    assert r.returncode == 1 and "unknown setting 'neck_angle'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_analyse_writes_html_and_json_report(tmp_path, capsys):
    n = int(200 * 50)
    t = np.arange(n) / 50
    head = np.where((t > 30) & (t < 150), 35.0, 0.0)
    lin = np.zeros((n, 3))
    lin[5000:5075, 0] = -0.5 * G  # 1.5 s harsh brake along +x heading 0
    p = write_recording(tmp_path / "day.nape", 50.0, pitch_quat(np.zeros(n)), pitch_quat(head), lin_trunk=lin, lin_head=lin)
    assert main(["analyse", str(p), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Neck flexed > 20°" in out and "1 jolt" in out
    html = (tmp_path / "rep" / "day.html").read_text()
    assert "Plotly.newPlot" in html or "newPlot" in html
    assert not re.search(r"<script[^>]+src=", html), "report must be self-contained"
    assert "braking" in html
    data = json.loads((tmp_path / "rep" / "day.json").read_text())
    assert data["jolts"][0]["cause"] == "braking" and data["jolts"][0]["grade"] == "moderate"
    assert data["episodes"][0]["kind"] == "neck_flexion"
    assert 115 <= data["episodes"][0]["duration_s"] <= 125
    assert len(data["series"]["t_s"]) == pytest.approx(200, abs=2)


def test_info_reports_damage(tmp_path, capsys):
    n = 3000
    p = write_recording(tmp_path / "r.nape", 50.0, pitch_quat(np.zeros(n)))
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert '"issues"' in out and "crc" in out.lower()


def test_decode_valid_packet_and_malformed_one_line(capsys):
    vectors = json.loads((__import__("pathlib").Path(__file__).parents[1] / "protocol/vectors/decode.json").read_text())
    good = next(c for c in vectors if c["valid"] and c["decoded"]["type"] == "samples")
    assert main(["decode", good["hex"]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seq"] == good["decoded"]["seq"] and out["type"] == "SamplesPacket"
    for case in (c for c in vectors if not c["valid"]):
        r = _run("decode", case["hex"] or "00")
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nape: error:"), r.stderr
        break
    r = _run("decode", "zz")
    assert r.returncode == 1 and "not hexadecimal" in r.stderr


def test_no_command_is_missing_from_the_help_test():
    from nape.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= {"demo", "analyse", "analyze", "info", "decode", "flash", "import", "export",
                                "sessions", "trends", "scan"}, "add new commands to test_every_command_has_help_with_example"


def test_scan_virtual_lists_the_virtual_device():
    r = _run("scan", "--virtual", "--timeout", "3")
    assert r.returncode == 0, r.stderr
    assert "Nape" in r.stdout and "yes" in r.stdout
