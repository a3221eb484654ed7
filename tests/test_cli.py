"""CLI behaviour: help with examples, one-line errors, analyse/info on a real recording."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nape.cli import main
from tests.recording_factory import G, in_car, pitch_quat, write_recording


ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "nape.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def _commands(parser=None, prefix=()):
    """Every (sub)command of the real parser, as (words, parser); aliases once. New commands
    registered by any module are covered without editing this test."""
    from nape.cli import build_parser

    parser = parser or build_parser()
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:
                    continue  # an alias (analyze → analyse)
                seen.add(id(sub))
                out.append(((*prefix, name), sub))
                out += _commands(sub, (*prefix, name))
    return out


COMMANDS = _commands()


def test_the_parser_has_the_documented_commands():
    names = {" ".join(w) for w, _ in COMMANDS}
    assert {"demo", "analyse", "info", "decode", "flash", "import", "export", "sessions", "trends", "scan"} <= names


@pytest.mark.parametrize("words", [w for w, _ in COMMANDS], ids=" ".join)
def test_every_command_has_help_with_example(words, capsys):
    with pytest.raises(SystemExit) as e:
        main([*words, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    m = re.search(r"^examples?:$", out, re.M)
    assert m, f"nape {' '.join(words)} --help has no 'example:' section"
    example = out[m.start():]
    assert f"nape {' '.join(words)}" in example, example


def _bad_argument_cases():
    """Per command: an unknown option, and a value its type rejects for each typed option."""
    cases = []
    for words, sub in COMMANDS:
        cases.append((words, ["--no-such-option-xyz"], None))
        for a in sub._actions:
            if a.option_strings and callable(a.type) and a.nargs in (None, "?") and a.choices is None:
                try:
                    a.type("@@not-valid@@")
                    continue  # accepts any text (a path, a name)
                except Exception:
                    pass
                cases.append((words, [a.option_strings[-1], "@@not-valid@@"], f"argument {'/'.join(a.option_strings)}"))
            elif a.option_strings and a.choices is not None and a.nargs is None:
                cases.append((words, [a.option_strings[-1], "@@not-a-choice@@"], "invalid choice"))
    return cases


@pytest.mark.parametrize("words,extra,needle", _bad_argument_cases(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_wrong_arguments_one_line_exit_2(words, extra, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main([*words, *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    # an unknown option is reported by the top-level parser ("nape: error: unrecognized arguments")
    assert len(lines) == 1 and lines[0].startswith("nape") and ": error: " in lines[0], err
    if needle:
        assert needle in lines[0], lines[0]


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
    p = write_recording(tmp_path / "day.nape", 50.0, pitch_quat(np.zeros(n)), pitch_quat(head), lin_trunk=in_car(lin, 50.0), lin_head=lin)
    assert main(["analyse", str(p), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Neck bent forward more than 20°" in out and "1 jolt" in out
    html = (tmp_path / "rep" / "day.html").read_text()
    assert "Plotly.newPlot" in html or "newPlot" in html
    assert not re.search(r"<script[^>]+src=", html), "report must be self-contained"
    assert "braking" in html
    data = json.loads((tmp_path / "rep" / "day.json").read_text())
    assert data["jolts"][0]["cause"] == "braking" and data["jolts"][0]["grade"] == "moderate"
    assert data["episodes"][0]["kind"] == "neck_flexion"
    assert 115 <= data["episodes"][0]["duration_s"] <= 125
    assert len(data["series"]["time_s"]) == pytest.approx(200, abs=2)


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


def test_scan_virtual_lists_the_virtual_device():
    r = _run("scan", "--virtual", "--timeout", "3")
    assert r.returncode == 0, r.stderr
    assert "Nape" in r.stdout and "yes" in r.stdout


def test_analysis_progress_estimates_the_total(tmp_path):
    """The progress bar's total: estimated from the file size before the end is read."""
    from nape.analysis import analyse

    n = 10_000
    p = write_recording(tmp_path / "long.nape", 50.0, pitch_quat(np.zeros(n)), per_packet=1)  # 3 blocks of packets
    calls = []
    analyse(p, on_progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 3 and [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1][0] == n
    assert all(n <= t <= 1.1 * n for _, t in calls), calls  # framing makes it a slight overestimate
    assert calls[0][0] / calls[0][1] < 0.5  # the first block is shown as a fraction, not as done
