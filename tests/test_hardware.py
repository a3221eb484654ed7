"""Hardware docs, pin map, firmware config and power budget agree with each other.

- The pin map exists three times: hardware/pinmap.json, the delimited tables in
  hardware/WIRING.md (and the axis table in MOUNTING.md), firmware/config.py. The config
  is read by running it under the real MicroPython interpreter.
- hardware/POWER.md's generated block must equal hardware/power_budget.py's output.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from tests.mpy import run_mpy

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hardware"

# ESP32-S3 facts (ESP32-S3 Series Datasheet v2.1): strapping pins (§3), USB D-/D+,
# ADC1 channels GPIO1-10, RTC GPIOs 0-21; XIAO ESP32S3 header GPIOs + user LED.
STRAPPING = {0, 3, 45, 46}
USB = {19, 20}
ADC1 = set(range(1, 11))
RTC_GPIO = set(range(0, 22))
XIAO_GPIOS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 43, 44, 21}
# on-board parts wired to strapping pins, read only after boot: the BOOT button (GPIO0)
ON_BOARD = {"PIN_PAIR_BUTTON": 0}


@lru_cache(maxsize=1)
def mpy_config() -> dict:
    """Every upper-case setting of firmware/config.py, as MicroPython sees it."""
    code = r"""
import sys, json
import config
print(sys.implementation.name)
d = {}
for k in dir(config):
    if k.isupper():
        v = getattr(config, k)
        if isinstance(v, (int, str, tuple)):
            d[k] = v
print(json.dumps(d))
"""
    out = run_mpy(code).decode().splitlines()
    assert out[0] == "micropython", "config must be read by MicroPython, not CPython"
    return json.loads(out[1])


def pinmap() -> dict:
    return json.loads((HW / "pinmap.json").read_text(encoding="utf-8"))


def md_table(path: Path, marker: str) -> list[list[str]]:
    """Rows (cells) of the markdown table between <!-- marker:begin --> and :end."""
    text = path.read_text(encoding="utf-8")
    m = re.search(r"<!-- %s:begin -->(.*?)<!-- %s:end -->" % (marker, marker), text, re.S)
    assert m, "%s: no %s markers" % (path.name, marker)
    rows = [ln.strip() for ln in m.group(1).strip().splitlines() if ln.strip().startswith("|")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert len(cells) >= 3 and set(cells[1][0]) <= set("-: "), "not a markdown table"
    return cells[2:]


def parse_int(s: str) -> int:
    return int(s.replace(",", ""), 0)


def parse_map(s: str) -> list[int]:
    return [int(x) for x in s.strip("()[] ").split(",")]


def load_budget():
    spec = importlib.util.spec_from_file_location("nape_power_budget", HW / "power_budget.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# --- pin map: three copies agree ----------------------------------------------------


def test_pin_table_pinmap_json_and_config_agree():
    cfg, pm = mpy_config(), pinmap()
    rows = md_table(HW / "WIRING.md", "pinmap")
    table = {r[0]: {"gpio": parse_int(r[1]), "board_pin": r[2], "function": r[3]} for r in rows}
    assert len(table) == len(rows), "duplicate names in the WIRING.md pin table"
    assert table == pm["pins"]
    cfg_pins = {k: v for k, v in cfg.items() if k.startswith("PIN_")}
    assert cfg_pins == {k: v["gpio"] for k, v in pm["pins"].items()}
    # the minimum set the firmware needs
    for name in ("PIN_I2C_SDA", "PIN_I2C_SCL", "PIN_MOTOR_PWM", "PIN_VBAT_ADC", "PIN_STATUS_LED",
                 "PIN_IMU_TRUNK_INT", "PIN_IMU_HEAD_INT"):
        assert name in cfg_pins


def test_values_table_pinmap_json_and_config_agree():
    cfg, pm = mpy_config(), pinmap()
    table = {r[0]: parse_int(r[1]) for r in md_table(HW / "WIRING.md", "values")}
    for k, v in pm["values"].items():
        assert cfg[k] == v, k
        assert table[k] == v, k
    for k, v in pm["hardware_only"].items():
        assert table[k] == v, k
        assert k not in cfg, "%s is hardware-only but also in config.py" % k
    assert set(table) == set(pm["values"]) | set(pm["hardware_only"])


def test_axis_maps_agree_and_are_proper_rotations():
    cfg, pm = mpy_config(), pinmap()
    table = {r[0]: parse_map(r[1]) for r in md_table(HW / "MOUNTING.md", "axes")}
    for name in ("TRUNK_AXIS_MAP", "HEAD_AXIS_MAP"):
        assert cfg[name] == pm["mounting"][name] == table[name], name
        m = np.zeros((3, 3))
        for i, k in enumerate(cfg[name]):
            m[i, abs(k) - 1] = np.sign(k)
        assert sorted(abs(k) for k in cfg[name]) == [1, 2, 3]
        assert np.linalg.det(m) == pytest.approx(1.0)
        assert np.allclose(m @ m.T, np.eye(3))


# --- electrical sanity -----------------------------------------------------------


def test_pins_are_usable_esp32s3_gpios():
    cfg = mpy_config()
    pins = {k: v for k, v in cfg.items() if k.startswith("PIN_")}
    assert len(set(pins.values())) == len(pins), "two functions on one GPIO"
    for name, gpio in pins.items():
        if ON_BOARD.get(name) == gpio:
            continue
        assert gpio in XIAO_GPIOS, "%s=GPIO%d is not on the XIAO ESP32S3" % (name, gpio)
        assert gpio not in STRAPPING | USB, "%s=GPIO%d is a strapping/USB pin" % (name, gpio)
    assert cfg["PIN_VBAT_ADC"] in ADC1  # ADC2 conflicts with Wi-Fi; ADC1 only
    assert cfg["PIN_IMU_TRUNK_INT"] in RTC_GPIO and cfg["PIN_IMU_HEAD_INT"] in RTC_GPIO
    assert (cfg["PIN_I2C_SDA"], cfg["PIN_I2C_SCL"]) == (5, 6)  # XIAO's marked SDA/SCL


def test_i2c_addresses_and_pullups():
    cfg, pm = mpy_config(), pinmap()
    assert cfg["IMU_ADDR_TRUNK"] == 0x68 and cfg["IMU_ADDR_HEAD"] == 0x69  # AD0 low / high
    assert cfg["I2C_FREQ_HZ"] <= 400000  # MPU-6050/6500 are Fast-mode (400 kHz) parts
    assert (cfg["WHOAMI_MPU6050"], cfg["WHOAMI_MPU6500"], cfg["WHOAMI_ICM42688P"]) == (0x68, 0x70, 0x47)
    hw = pm["hardware_only"]
    r_min = (3.3 - 0.4) / 3e-3  # UM10204: V_OL 0.4 V at 3 mA
    for r, c_bus in ((hw["I2C_PULLUP_MINIMAL_OHM"], 40e-12), (hw["I2C_PULLUP_FULL_OHM"], 100e-12)):
        assert r >= r_min
        assert 0.8473 * r * c_bus <= 300e-9  # Fast-mode rise time


def test_battery_divider_scale_and_adc_range():
    cfg = mpy_config()
    rt, rb = cfg["VBAT_R_TOP_OHM"], cfg["VBAT_R_BOT_OHM"]
    assert cfg["VBAT_SCALE_X10000"] == round(10000 * (rt + rb) / rb) == 31277
    # ESP32-S3 calibrated ADC effective ranges (datasheet v2.1 Table 5-6), mV
    full_scale_mv = {0: 850, 2: 1100, 2.5: 1100, 6: 1600, 11: 2900, 12: 2900}[cfg["VBAT_ADC_ATTEN_DB"]]
    for vbat_mv in (3000, 4200, 4350):  # empty, full, high-voltage LiPo full
        v_adc = vbat_mv * rb / (rt + rb)
        assert 0 < v_adc < full_scale_mv
    assert 4200 * rb / (rt + rb) == pytest.approx(1342.9, abs=0.1)
    assert 3700 / (rt + rb) * 1e3 < 5  # µA of always-on leakage


def test_firmware_settings():
    cfg = mpy_config()
    assert cfg["FW_VERSION"] == "0.1.0"
    assert cfg["BLE_NAME"] == "Nape"
    assert cfg["STREAM_RATE_HZ"] == 100
    assert cfg["RAW_ODR_HZ"] >= 400
    # the fusion runs at >= 32 Hz: the saver's still rate may equal its rate (config.py)
    assert 32 <= cfg["SAVER_STILL_RATE_HZ"] <= cfg["SAVER_RATE_HZ"] < cfg["STREAM_RATE_HZ"]
    assert cfg["SAVER_AFTER_S"] > 0 and cfg["POWER_SAVER_ENABLED"] in (0, 1)
    for k in ("ADV_INTERVAL_US", "SAVER_ADV_INTERVAL_US"):  # BLE: 20 ms..10.24 s, 0.625 ms units
        assert 20000 <= cfg[k] <= 10240000 and cfg[k] % 625 == 0, k
    assert cfg["SAVER_ADV_INTERVAL_US"] >= 1000000 > cfg["ADV_INTERVAL_US"]
    assert cfg["SAVER_CPU_FREQ_HZ"] in (80000000, 160000000, 240000000)
    assert cfg["ACTIVE_CPU_FREQ_HZ"] in (80000000, 160000000, 240000000)
    assert 0 < cfg["MOTOR_DUTY_PCT"] <= 100


# --- power budget ------------------------------------------------------------------


@lru_cache(maxsize=1)
def budget_result():
    pb = load_budget()
    return pb, pb.run_all()


def test_power_md_block_equals_script_output():
    pb, res = budget_result()
    assert pb.doc_block() == pb.markdown(res), (
        "hardware/POWER.md is out of date: run `python hardware/power_budget.py --write`")


def test_script_cli_json_and_markdown_match_the_doc():
    out = subprocess.run([sys.executable, str(HW / "power_budget.py"), "--json"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    data = json.loads(out)
    doc = (HW / "POWER.md").read_text(encoding="utf-8")
    rows = [r for r in md_table_from_block(doc)]
    assert len(rows) == len(data["rows"]) == 9
    for r, d in zip(rows, data["rows"]):
        c, o = d["conservative"], d["optimistic"]
        want = [c["total_ma"], c["hours"]["400"], c["hours"]["1000"],
                o["total_ma"], o["hours"]["400"], o["hours"]["1000"]]
        # the doc shows one decimal of the unrounded value, the JSON keeps four: equal within
        # the doc's rounding (a value like 49.0500 may print either way)
        assert [abs(float(x) - w) <= 0.05 + 1e-4 for x, w in zip(r[3:], want)] == [True] * 6, (r[3:], want)
    md = subprocess.run([sys.executable, str(HW / "power_budget.py"), "--markdown"],
                        capture_output=True, text=True, check=True, timeout=60).stdout
    assert md.strip() in doc


def md_table_from_block(doc: str) -> list[list[str]]:
    block = doc[doc.index("<!-- power_budget:begin"): doc.index("<!-- power_budget:end -->")]
    lines = [ln for ln in block.splitlines() if ln.startswith("| ")]
    first = [ln for ln in lines if ln.split("|")[1].strip() in ("default", "offline", "saver, no sleep")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in first]


def test_budget_reads_the_same_settings_as_micropython():
    pb, _ = budget_result()
    cfg_ast, cfg_mpy = pb.load_config(), mpy_config()
    for k, v in cfg_mpy.items():
        want = list(v) if isinstance(v, (list, tuple)) else v
        got = list(cfg_ast[k]) if isinstance(cfg_ast[k], tuple) else cfg_ast[k]
        assert got == want, k


def test_power_table_rows_cite_a_source():
    pb, _ = budget_result()
    table = pb.load_table()
    for key, (value, unit, source) in table.items():
        assert value >= 0 and unit, key
        cited = ("§", "table", "specification", "datasheet", "programming guide", "fifo packet")
        assert "ASSUMPTION" in source or any(w in source.lower() for w in cited) or unit == "V", key
    # the figures the brief asks for are all there
    for key in ("soc_run_160mhz_typ2", "soc_waiti_160mhz_typ2", "soc_light_sleep", "ble_tx_0dbm", "ble_rx",
                "imu_icm42688p_6axis", "imu_mpu6050_6axis", "imu_mpu6500_6axis", "motor_on", "board_quiescent"):
        assert key in table


def test_budget_hand_checks():
    pb, res = budget_result()
    rows = {(r["scenario"], r["build"], r["chip"]): r for r in res["rows"]}
    d = rows[("default", "full", "icm42688p")]["conservative"]
    # CPU: the whole loops measured by bench/firmware_cost.py (hardware/firmware_cost.json),
    # core share x 10 ms/s at 160 MHz; nothing typed into the budget
    saved = json.loads((HW / "firmware_cost.json").read_text())["whole_loop"]
    stream_ms = 10 * saved["board_psram"]["esp32_core_pct"]
    saver_ms = 10 * saved["saver"]["esp32_core_pct"]
    offline_ms = 10 * saved["offline"]["esp32_core_pct"]
    assert res["measured_cpu"]["stream"] == stream_ms and res["measured_cpu"]["saver"] == saver_ms
    assert res["measured_cpu"]["offline"] == offline_ms
    assert d["cpu_busy_ms"] == pytest.approx(stream_ms)
    assert d["parts_ma"]["SoC, CPU busy"] == pytest.approx(stream_ms / 1000 * 54.6)
    assert d["parts_ma"]["IMU, trunk"] == d["parts_ma"]["IMU, head"] == pytest.approx(0.88)
    assert d["parts_ma"]["Battery divider"] == pytest.approx(3.7 / 1.47e6 * 1e3)
    # a repeat every POSTURE_REPEAT_S = 120 s: 30 alerts/h of 3 x 200 ms at 60 mA
    assert d["parts_ma"]["Vibration motor"] == pytest.approx(60 * 30 * 3 * 0.2 / 3600)
    # one 5-sample SAMPLES packet per notification: 20 notifications/s of 220 B
    assert d["radio"]["samples_per_packet"] == 5 and d["radio"]["notify_bytes"] == 220
    assert d["radio"]["tx_ms"] == pytest.approx((20 * (227 + 10) + (1000 / 30 - 20) * 10) * 8e-3)
    assert sum(d["parts_ma"].values()) == pytest.approx(d["total_ma"])
    s = rows[("saver", "full", "icm42688p")]["conservative"]
    assert s["cpu_mhz"] == 80 and s["rate_hz"] == 50
    # CPU: the measured saver loop at 160 MHz, scaled to the saver's 80 MHz clock
    assert s["cpu_busy_ms"] == pytest.approx(saver_ms * 160 / 80)
    assert s["parts_ma"]["IMU, head"] == pytest.approx(0.88)  # the head keeps 6-axis fusion
    for r in res["rows"]:
        c, o = r["conservative"], r["optimistic"]
        assert o["total_ma"] < c["total_ma"]
        assert c["hours"]["1000"] == pytest.approx(2.5 * c["hours"]["400"])
        assert c["hours"]["400"] == pytest.approx(400 * 0.85 / c["total_ma"])
    for chip in ("icm42688p", "mpu6500", "mpu6050"):
        assert rows[("offline", "full", chip)]["conservative"]["hours"]["400"] > \
            rows[("default", "full", chip)]["conservative"]["hours"]["400"]
    # offline logging: the measured loop scaled to OFFLINE_CPU_FREQ_HZ; the second is CPU
    # busy + advertising windows and wake-ups (awake, idle) + light sleep at 3.3 + 0.14 mA
    cfg = pb.load_config()
    o = rows[("offline", "full", "icm42688p")]["conservative"]
    mhz = cfg["OFFLINE_CPU_FREQ_HZ"] // 1000000
    assert o["cpu_mhz"] == mhz and o["raw_odr_hz"] == cfg["SAVER_RAW_ODR_HZ"] >= 200
    assert o["cpu_busy_ms"] == pytest.approx(offline_ms * 160 / mhz)
    win = cfg["OFFLINE_ADV_WINDOW_MS"] / cfg["OFFLINE_ADV_EVERY_S"]
    assert o["idle_ms"] == pytest.approx(win + saved["offline"]["wakes_per_s"] * 1.0)
    assert o["parts_ma"]["SoC, light sleep"] == pytest.approx(o["light_sleep_ms"] / 1000 * 3.44)
    assert o["cpu_busy_ms"] + o["idle_ms"] + o["light_sleep_ms"] + o["radio"]["tx_ms"] + o["radio"]["rx_ms"] \
        == pytest.approx(1000)
    # advertising only in the windows: window / interval events every OFFLINE_ADV_EVERY_S
    assert o["radio"]["events_s"] == pytest.approx(
        cfg["OFFLINE_ADV_WINDOW_MS"] * 1000 / cfg["OFFLINE_ADV_INTERVAL_US"] / cfg["OFFLINE_ADV_EVERY_S"])
    assert o["total_ma"] < s["total_ma"]
    # the clock sweep: the measured work at 80 / 160 / 240 MHz; config picks the cheapest
    clocks = res["offline_clocks"]
    assert [c["cpu_mhz"] for c in clocks] == [80, 160, 240]
    best = min(clocks, key=lambda c: c["typ2_ma"])
    assert best["cpu_mhz"] == mhz and best["typ2_ma"] == pytest.approx(o["total_ma"])
    assert res["day"]["offline"]["mah_day"] == pytest.approx(o["total_ma"] * 16 / 0.85)
    # streaming per clock: the same measured work; the configured clock is the default row
    sc = {c["cpu_mhz"]: c for c in res["stream_clocks"]}
    assert sc[80]["cpu_busy_ms"] == pytest.approx(2 * sc[160]["cpu_busy_ms"])
    assert sc[80]["cpu_busy_ms"] == pytest.approx(3 * sc[240]["cpu_busy_ms"])
    assert sc[cfg["ACTIVE_CPU_FREQ_HZ"] // 1000000]["typ2_ma"] == pytest.approx(d["total_ma"])
    # the day table: the streaming floor (no CPU work, 80 MHz, 100 ms interval) is below
    # the measured stream but above what 10 h on 400 mAh allows
    day = res["day"]
    assert day["stream_floor"]["total_ma"] < day["default"]["total_ma"]
    assert day["stream_floor"]["hours"]["400"] < 10
    assert day["offline"]["total_ma"] < day["mixed"]["total_ma"] < day["default"]["total_ma"]
    assert rows[("default", "full", "icm42688p")]["conservative"]["total_ma"] < \
        rows[("default", "full", "mpu6050")]["conservative"]["total_ma"]
    # the headline figures quoted in the docs
    assert 5 < d["hours"]["400"] < 8 and 6 < s["hours"]["400"] < 10 and 20 < o["hours"]["400"] < 40


def test_connection_interval_sweep_and_advertising_cost():
    _, res = budget_result()
    sweep = res["conn_sweep"]
    assert [w["conn_interval_ms"] for w in sweep] == [7.5, 15.0, 30.0, 50.0, 100.0]
    radio = [w["radio_ma"] for w in sweep]
    assert radio == sorted(radio, reverse=True)  # longer interval, cheaper link
    assert sweep[2]["radio_ma"] == pytest.approx(
        next(r for r in res["rows"] if r["scenario"] == "default" and r["build"] == "full"
             and r["chip"] == "icm42688p")["conservative"]["parts_ma"]["BLE radio"])
    ad = res["advertising"]
    # 3 x ADV_IND of 43 B at 8 us/B; 3 x 0.3 ms listen + 1 ms overhead at RX current
    assert ad["event_tx_ms"] == pytest.approx(3 * 43 * 8e-3)
    assert ad["event_charge_uc"] == pytest.approx(3 * 43 * 8e-3 * 176 + 1.9 * 93)
    assert [x["adv_interval_us"] for x in ad["intervals"]] == [100000, 1022500]
    assert ad["intervals"][0]["radio_ma"] == pytest.approx(10 * ad["event_charge_uc"] / 1000)


def test_budget_rejects_an_impossible_duty_cycle():
    pb, _ = budget_result()
    with pytest.raises(pb.BudgetError):
        pb.budget("default", "full", "icm42688p", "typ2", pb.Params(cpu_ms_default=990.0))
    with pytest.raises(pb.BudgetError):
        pb.budget("default", "full", "nosuchchip", "typ2")


def test_budget_packet_size_matches_the_firmware_encoder():
    pb, _ = budget_result()
    code = r"""
import sys, json, wire
print(sys.implementation.name)
print(json.dumps([[wire.samples_per_packet(m, mtu - 3) for m in (1, 3)] for mtu in (23, 185, 247)]))
"""
    out = run_mpy(code).decode().splitlines()
    assert out[0] == "micropython"
    fw = json.loads(out[1])
    assert fw == [[pb.samples_per_packet(n, mtu) for n in (1, 2)] for mtu in (23, 185, 247)]


def test_budget_without_the_measured_costs_says_how_to_make_them(tmp_path):
    pb, _ = budget_result()
    with pytest.raises(pb.BudgetError, match="bench.firmware_cost --save"):
        pb.load_measured(tmp_path / "firmware_cost.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(pb.BudgetError, match="lacks the whole-loop figures"):
        pb.load_measured(tmp_path / "bad.json")
