"""firmware/ble_service.py and ble_app.py on the real MicroPython, with the loopback ``bluetooth`` shim.

The shim (nape/boardsim/mpy/bluetooth.py, no NAPE_BLE_BRIDGE set) records what the
firmware sends and lets the test raise IRQs; the host-side decoders (nape.ble.protocol,
nape.wire, the scanner's advertising parser) check the bytes.
"""

import json
import struct

import pytest

from nape import wire
from nape.ble import protocol as P
from nape.ble.bumble_backend import parse_adv
from tests.mpy import run_mpy

_PRELUDE = r"""
import sys, json, struct, binascii, time
import bluetooth, ble_buffer, ble_service
print(sys.implementation.name)
hx = lambda b: binascii.hexlify(bytes(b)).decode()
def emit(obj):
    print(json.dumps(obj))

def mk(seq, count):
    b = bytearray(14 + count * 41)
    struct.pack_into("<BBBBIIH", b, 0, 1, 1, 3, count, seq, seq * 10, 10000)
    for i in range(count):
        for k in range(2):
            struct.pack_into("<h", b, 14 + i * 41 + 1 + 20 * k, 16384)
    return bytes(b)

ble = bluetooth.BLE()
st = ble_buffer.PacketStore(ram_slots=64)
mtus = []
cmds = []
def on_command(op, payload):
    cmds.append((op, hx(payload)))
    return 0
svc = ble_service.NapeService(ble, st, name="Nape", fw_version="0.1.0", imu_mask=3, rate_hz=100,
                              on_command=on_command, on_mtu=mtus.append, fast_adv_ms=50)
def sent(kind=None, handle=None):
    out = [x for x in ble._sent if (kind is None or x[0] == kind)
           and (handle is None or (x[1] is not None and x[1][1] == handle))]
    return out
def connect(mtu=247):
    ble._inject(1, (7, 1, b"\x00" * 6)); svc.poll()
    if mtu:
        ble._inject(21, (7, mtu)); svc.poll()
def write(cmd):
    ble._sent.clear()
    ble._inject(3, (7, svc.h_control, cmd)); svc.poll()
    return [hx(x[1][2]) for x in sent("notify", svc.h_control)]
"""


def _run(body: str, extra_path=None) -> list:
    out = run_mpy(_PRELUDE + body, extra_path=extra_path).decode().splitlines()
    assert out[0] == "micropython", "the test must run under MicroPython, not CPython"
    return [json.loads(line) for line in out[1:] if line]


def test_registers_the_service_and_advertises_name_and_uuid_fast():
    (r,) = _run(r"""
reg = [x for x in ble._sent if x[0] == "register"][0]
adv = [x for x in ble._sent if x[0] == "advertise"][0][1]
emit({"defs": reg[2], "adv": hx(adv[1]), "interval": adv[0], "connectable": adv[3],
      "handles": [svc.h_stream, svc.h_event, svc.h_control, svc.h_status],
      "config": [ble.config("gap_name"), ble.config("mtu")]})
""")
    (svc_uuid, chars), = r["defs"]
    assert P.SERVICE_UUID in svc_uuid
    flags = {c[0].split("'")[1]: c[1] for c in chars}
    assert flags == {P.STREAM_UUID: 0x10, P.EVENT_UUID: 0x10, P.CONTROL_UUID: 0x1C, P.STATUS_UUID: 0x12}
    adv = bytes.fromhex(r["adv"])
    assert len(adv) <= 31
    ad = parse_adv(adv)
    assert ad["name"] == "Nape" and ad["uuids"] == [P.SERVICE_UUID]
    assert r["interval"] == 20000 and r["connectable"] is True
    assert r["config"] == ["Nape", 247]
    assert len(set(r["handles"])) == 4


def test_commands_get_responses_in_the_documented_format():
    rows = _run(r"""
for k in range(4):
    st.append(mk(k * 5, 5))
connect()
for c in (b"\x01", b"\x02", b"\x03" + struct.pack("<I", 7), b"\x08", b"\x06" + struct.pack("<Q", 1700000000123),
          b"\x04\x05", b"\x05" + struct.pack("<BBH", 30, 20, 45), b"\x07", b"\x01\x00", b"\x99", b"",
          b"\x09" + struct.pack("<I", 11)):
    emit({"cmd": hx(c), "resp": write(c)})
emit({"cmds": cmds, "time_set": svc.time_offset_ms is not None, "calibrated": svc.calibrated,
      "acked": svc.acked})
""")
    *resps, last = rows
    by_cmd = {r["cmd"]: [P.parse_control(bytes.fromhex(x)) for x in r["resp"]] for r in resps}
    start = by_cmd["01"][0]
    assert (start.opcode, start.result, start.oldest_seq, start.next_seq) == (P.CMD_START, 0, 0, 20)
    assert by_cmd["02"][0].opcode == P.CMD_STOP and by_cmd["02"][0].ok
    assert by_cmd[P.cmd_backfill(7).hex()][0].ok
    assert by_cmd[P.cmd_backfill_all().hex()][0].ok
    assert by_cmd[P.cmd_set_time(1700000000123).hex()][0].ok
    assert by_cmd[P.cmd_calibrate(5).hex()][0].ok
    assert by_cmd[P.cmd_set_posture(30, 20, 45).hex()][0].ok
    assert by_cmd["07"][0].ok  # GET_STATUS answers, then the status is notified
    assert by_cmd["0100"][0].result == 2  # bad length
    assert by_cmd["99"][0].result == 1  # unknown
    assert by_cmd[""] == []  # an empty write is ignored
    assert by_cmd[P.cmd_ack(11).hex()] == []  # ACK: no response
    assert last["acked"] == 11
    assert last["cmds"] == [[P.CMD_CALIBRATE, "05"], [P.CMD_SET_POSTURE, struct.pack("<BBH", 30, 20, 45).hex()]]
    assert last["time_set"] and last["calibrated"]


def test_packets_resize_with_the_mtu_and_backfill_is_flagged_before_live_data():
    (r,) = _run(r"""
for k in range(6):
    st.append(mk(k * 5, 5))
connect(mtu=0)                       # default MTU 23: 20-byte values
at23 = list(mtus)
ble._inject(21, (7, 247)); svc.poll()
write(b"\x03" + struct.pack("<I", 12))   # backfill from the middle of a packet
ble._sent.clear()
svc.pump()
st.append(mk(30, 5))                 # produced after streaming started: live
svc.pump()
vals = [hx(x[1][2]) for x in sent("notify", svc.h_stream)]
emit({"mtus": at23 + mtus[len(at23):], "vals": vals})
""")
    assert r["mtus"] == [20, 244]
    ra = wire.Reassembler()
    pkts = [wire.decode_packet(p) for v in r["vals"] if (p := ra.feed(bytes.fromhex(v)))]
    assert all(len(bytes.fromhex(v)) <= 244 for v in r["vals"])
    seqs = [s for p in pkts for s in range(p.seq, p.seq + p.count)]
    assert seqs == list(range(12, 35))
    for p in pkts:
        backfill = bool(p.flags[0] & 0x40)
        assert backfill == (p.seq < 30), p.seq
        assert all(bool(f & 0x40) == backfill for f in p.flags)


def test_small_mtu_fragments_and_a_busy_stack_loses_nothing():
    (r,) = _run(r"""
for k in range(10):
    st.append(mk(k * 5, 5))
connect(mtu=0)
write(b"\x08")
ble._sent.clear()
ble._fail_notify = 3
n1 = svc.pump()                      # refused at once: retried on the next pump
busy = svc.notify_busy
for _ in range(200):
    svc.pump()
vals = [hx(x[1][2]) for x in sent("notify", svc.h_stream)]
emit({"n1": n1, "busy": busy, "vals": vals})
""")
    assert r["n1"] == 0 and r["busy"] >= 1
    assert all(len(bytes.fromhex(v)) <= 20 for v in r["vals"])
    ra = wire.Reassembler()
    pkts = [wire.decode_packet(p) for v in r["vals"] if (p := ra.feed(bytes.fromhex(v)))]
    assert ra.dropped == 0
    assert [s for p in pkts for s in range(p.seq, p.seq + p.count)] == list(range(50))


def test_end_of_data_is_announced_once_everything_was_sent():
    (r,) = _run(r"""
st.append(mk(0, 5))
connect()
write(b"\x01")
svc.pump()
svc.set_source_done()
ble._sent.clear()
svc.pump(); svc.pump()
emit([hx(x[1][2]) for x in sent("notify", svc.h_control)])
""")
    assert [P.parse_control(bytes.fromhex(v)) for v in r] == [P.Response(P.EVT_END_OF_DATA, 0, next_seq=5)]


def test_status_layout_matches_the_host_decoder():
    (r,) = _run(r"""
for k in range(3):
    st.append(mk(k * 5, 5))
connect()
svc.battery_pct = 87
svc.battery_mv = 3987
svc.imu_errors = 3
write(b"\x01")
emit({"status": hx(svc.status_bytes()), "read": hx(ble.gatts_read(svc.h_status))})
""")
    s = P.parse_status(bytes.fromhex(r["status"]))
    assert s.streaming and s.imu_mask == 3 and s.battery_pct == 87 and s.battery_mv == 3987
    assert (s.oldest_seq, s.next_seq, s.mtu, s.imu_errors, s.connections) == (0, 15, 247, 3, 1)
    assert s.firmware_version == "0.1.0" and s.rate_hz == 100
    assert P.parse_status(bytes.fromhex(r["read"])).next_seq == 15  # refreshed on connect
    # a notification at MTU 23 is cut to 20 bytes: the decoder still gets the essentials
    t = P.parse_status(bytes.fromhex(r["status"])[:20])
    assert (t.oldest_seq, t.next_seq, t.imu_mask) == (0, 15, 3)


def test_every_boot_has_its_own_random_boot_id_in_the_status():
    (r,) = _run(r"""
ids = [ble_service.new_boot_id() for _ in range(50)]
emit({"ids": ids, "status": hx(svc.status_bytes()), "svc": svc.boot_id,
      "fixed": ble_service.NapeService(ble, st, boot_id=0x1234ABCD).boot_id})
""")
    ids = r["ids"]
    assert len(set(ids)) == 50 and all(0 < i <= 0xFFFFFFFF for i in ids)
    assert max(ids) > 0xFFFF  # 32 random bits, not a small counter
    s = P.parse_status(bytes.fromhex(r["status"]))
    assert s.boot_id == r["svc"] and s.firmware_version == "0.1.0"
    assert bytes.fromhex(r["status"])[0] == P.STATUS_VERSION == 4
    assert r["fixed"] == 0x1234ABCD


def test_disconnect_stops_streaming_and_readvertises_fast_then_slow():
    (r,) = _run(r"""
connect()
write(b"\x01")
ble._sent.clear()
ble._inject(2, (7, 1, b"\x00" * 6)); svc.poll()
fast = [x[1][0] for x in sent("advertise")]
time.sleep_ms(80)
svc.poll()
emit({"fast": fast, "then": [x[1][0] for x in sent("advertise")][len(fast):],
      "streaming": svc.streaming, "mtus": mtus})
""")
    assert r["fast"] == [20000] and r["then"] == [100000] and r["streaming"] is False
    assert r["mtus"][-1] == 244  # back to buffer-sized packets while offline


def test_app_moves_pipeline_packets_into_the_buffer_and_streams_them():
    rows = run_mpy(r"""
import sys, json, binascii, bluetooth, ble_app, ble_buffer
print(sys.implementation.name)
ble = bluetooth.BLE()
app = ble_app.BleApp(3, 100, store=ble_buffer.PacketStore(ram_slots=64))
a = [0.0, 0.0, 9.80665]; g = [0.0, 0.0, 0.0]
for i in range(23):
    app.step(i * 10, a, g, a, g)
ble._inject(1, (3, 1, b"\x00" * 6)); app.tick()
ble._inject(21, (3, 247)); app.tick()
for i in range(23, 40):
    app.step(i * 10, a, g, a, g)
ble._sent.clear()
ble._inject(3, (3, app.service.h_control, b"\x08")); app.tick()
app.flush(); app.tick()
print(json.dumps([binascii.hexlify(x[1][2]).decode() for x in ble._sent
                  if x[0] == "notify" and x[1][1] == app.service.h_stream]))
""").decode().splitlines()
    assert rows[0] == "micropython"
    vals = json.loads(rows[1])
    ra = wire.Reassembler()
    pkts = [wire.decode_packet(p) for v in vals if (p := ra.feed(bytes.fromhex(v)))]
    assert [s for p in pkts for s in range(p.seq, p.seq + p.count)] == list(range(40))
    assert all(len(bytes.fromhex(v)) <= 244 for v in vals)
    assert all(abs(float(p.quat[0, 0, 0]) - 1.0) < 0.01 for p in pkts)  # still, upright


def test_power_policy_slows_advertising_without_a_central():
    rows = run_mpy(r"""
import sys, json, time, bluetooth, ble_app, ble_buffer, power
print(sys.implementation.name)
ble = bluetooth.BLE()
# without light sleep (SLEEP_ENABLED 0) the saver advertises slowly all the time; with it,
# in short fast windows between sleeps (tests/firmware/test_power.py)
pol = power.PowerPolicy(time.ticks_ms(), saver_after_s=0.2, sleep=0)
app = ble_app.BleApp(3, 100, store=ble_buffer.PacketStore(ram_slots=64), power_policy=pol)
app.service.fast_adv_ms = 50
def adv():
    return [x[1][0] for x in ble._sent if x[0] == "advertise" and x[1]]
for _ in range(40):
    app.tick(); time.sleep_ms(10)
saver = (adv(), app.service.saver, app.service.status_bytes()[1])
ble._inject(1, (3, 1, b"\x00" * 6)); app.tick(); time.sleep_ms(120); app.tick()
print(json.dumps([saver, app.service.saver, pol.mode]))
""").decode().splitlines()
    assert rows[0] == "micropython"
    (advs, saver, flags), saver_after, mode = json.loads(rows[1])
    assert advs[0] == 20000 and advs[-1] == 1022500 and saver is True and flags & P.ST_SAVER
    assert saver_after is False and mode == "active"  # a central brings it back at once


def test_a_response_refused_by_a_busy_stack_still_precedes_the_stream():
    (r,) = _run(r"""
for k in range(4):
    st.append(mk(k * 5, 5))
connect()
ble._sent.clear()
ble._fail_notify = 1                 # the BACKFILL_ALL answer is refused once
ble._inject(3, (7, svc.h_control, b"\x08")); svc.poll()
svc.pump(); svc.pump()
emit({"sent": [(x[1][1], hx(x[1][2])) for x in ble._sent if x[0] == "notify"],
      "control": svc.h_control, "stream": svc.h_stream})
""")
    kinds = [("control" if h == r["control"] else "stream" if h == r["stream"] else "other", v)
             for h, v in r["sent"]]
    kinds = [(k, v) for k, v in kinds if k != "other"]
    assert kinds[0][0] == "control"
    assert P.parse_control(bytes.fromhex(kinds[0][1])).opcode == P.CMD_BACKFILL_ALL
    assert [k for k, _ in kinds[1:]] == ["stream"] * 4


# --- secure mode under the real MicroPython, with NimBLE's order of events -------------------
# (the virtual radio's bumble peripheral reports encryption before it stores the keys;
# NimBLE stores them first: tests/test_ble_secure_board.py covers the other order)

_SECURE = r"""
import sys, json, struct, binascii, time, hashlib
import bluetooth, ble_buffer, ble_service, ble_owner
print(sys.implementation.name)
hx = lambda b: binascii.hexlify(bytes(b)).decode()
def emit(obj):
    print(json.dumps(obj))
ble = bluetooth.BLE()
st = ble_buffer.PacketStore(ram_slots=64)
for k in range(4):
    b = bytearray(14 + 5 * 41)
    struct.pack_into("<BBBBIIH", b, 0, 1, 1, 3, 5, 5 * k, 50 * k, 10000)
    st.append(bytes(b))
svc = ble_service.NapeService(ble, st, secure=True, pair_window_s=60, max_bonds=2,
                              owner_key=OWNER)
conn = [0]
def connect():
    conn[0] += 1
    ble._inject(1, (conn[0], 1, b"\x00" * 6)); ble._inject(21, (conn[0], 247)); svc.poll()
def disconnect():
    ble._inject(2, (conn[0], 1, b"\x00" * 6)); svc.poll()
def pair(peer):   # NimBLE: our + peer keys stored (both keyed by the peer), then encryption
    a = svc._irq(30, (1, peer, b"ltk"))
    b = svc._irq(30, (2, peer, b"keys"))
    ble._inject(28, (conn[0], True, False, True, 16)); svc.poll()
    return bool(a) and bool(b)
def restore(peer):  # a bonded reconnection: the stack looks the keys up
    v = svc._irq(29, (1, 0, peer))
    ble._inject(28, (conn[0], True, False, True, 16)); svc.poll()
    return v is not None
def cmd(c):
    ble._sent.clear()
    ble._inject(3, (conn[0], svc.h_control, c)); svc.poll(); svc.pump()
    return [hx(x[1][2]) for x in ble._sent if x[0] == "notify" and x[1][1] == svc.h_control]
def stream_sent():
    return len([x for x in ble._sent if x[0] == "notify" and x[1][1] == svc.h_stream])
def dropped():
    return any(x[0] == "disconnect" for x in ble._sent)
def sec():
    s = svc.status_bytes()
    return list(s[41 + s[40]:])
"""


def _secure(body: str, owner: bytes | None = None) -> list:
    out = run_mpy((_SECURE + body).replace("OWNER", repr(owner))).decode().splitlines()
    assert out[0] == "micropython"
    return [json.loads(line) for line in out[1:] if line]


def test_secure_window_limit_refusal_and_restore_in_nimble_order():
    (r,) = _secure(r"""
out = {}
connect()
out["unbonded"] = cmd(b"\x08")                      # not encrypted: refused
out["pair_in_window"] = pair(b"peer-a")
out["authorized"] = svc.authorized()
ble._sent.clear(); cmd(b"\x08"); out["stream_after_backfill"] = stream_sent()
disconnect()
svc.close_pairing()
connect(); ble._sent.clear()
out["pair_outside"] = pair(b"peer-b")                # refused: not stored
out["outside_authorized"] = svc.authorized()
out["outside_dropped"] = dropped()
out["outside_cmd"] = cmd(b"\x08")
out["outside_stream"] = stream_sent()
disconnect()
connect()
out["restore_a"] = restore(b"peer-a"); out["restore_authorized"] = svc.authorized()
out["restore_b"] = restore(b"peer-b")
disconnect()
svc.open_pairing()
connect(); out["pair_b_in_window"] = pair(b"peer-b"); disconnect()
ble._sent.clear()
connect(); out["pair_c_over_limit"] = pair(b"peer-c"); out["c_authorized"] = svc.authorized()
out["bonds"] = svc.secrets.count(2)
out["c_dropped"] = dropped()
disconnect()
connect(); restore(b"peer-a")
out["sec"] = sec()
out["forget"] = cmd(b"\x0a\x00")
time.sleep_ms(350); ble._sent.clear(); svc.poll(); out["forget_dropped"] = dropped()
out["bonds_after"] = svc.secrets.count(2)
out["scan_resp"] = [hx(x[1][2]) for x in ble._sent if x[0] == "advertise" and x[1]][-1:]
emit(out)
""")
    assert r["unbonded"] == ["8805"]  # BACKFILL_ALL answered 5 NOT_AUTHORIZED
    assert r["pair_in_window"] is True and r["authorized"] is True and r["stream_after_backfill"] > 0
    assert r["pair_outside"] is False and r["outside_authorized"] is False
    assert r["outside_cmd"] in (["8805"], [])  and r["outside_dropped"] and r["outside_stream"] == 0
    assert r["restore_a"] is True and r["restore_authorized"] is True and r["restore_b"] is False
    assert r["pair_b_in_window"] is True
    assert r["pair_c_over_limit"] is False and r["c_authorized"] is False and r["bonds"] == 2 and r["c_dropped"]
    sec_flags, bonds, limit = r["sec"][:3]
    assert sec_flags & P.SEC_AUTHORIZED and sec_flags & P.SEC_BONDED and sec_flags & P.SEC_WINDOW_OPEN
    assert (bonds, limit) == (2, 2)
    assert r["forget"] == ["8a00"] and r["forget_dropped"] and r["bonds_after"] == 1


def test_owner_key_proof_over_the_control_characteristic():
    key = bytes(range(32))
    (r,) = _secure(r"""
out = {}
connect(); pair(b"peer-a")
out["before"] = [svc.authorized(), cmd(b"\x01")]
ch = cmd(b"\x0b")[0]
nonce = binascii.unhexlify(ch)[2:]
out["nonce_len"] = len(nonce)
out["wrong"] = cmd(b"\x0c" + bytes(32))
time.sleep_ms(350); ble._sent.clear(); svc.poll(); out["wrong_dropped"] = dropped()
disconnect()
connect(); restore(b"peer-a")
nonce = binascii.unhexlify(cmd(b"\x0b")[0])[2:]
out["replay"] = cmd(b"\x0c" + ble_owner.hmac_sha256(OWNER, b"nape-owner-v1" + bytes(16)))
disconnect()
connect(); restore(b"peer-a")
nonce = binascii.unhexlify(cmd(b"\x0b")[0])[2:]
out["nonce"] = hx(nonce)
out["right"] = cmd(b"\x0c" + ble_owner.hmac_sha256(OWNER, b"nape-owner-v1" + nonce))
out["after"] = svc.authorized()
out["start"] = cmd(b"\x01")[:1]
out["sec"] = sec()[0]
emit(out)
""", owner=key)
    assert r["before"] == [False, ["8105"]] and r["nonce_len"] == 16
    assert r["wrong"] == ["8c06"] and r["wrong_dropped"]
    assert r["replay"] == ["8c06"]
    assert r["right"] == ["8c00"] and r["after"] is True and r["start"][0].startswith("8100")
    assert r["sec"] & P.SEC_OWNER_KEY and r["sec"] & P.SEC_PROVED
    assert P.owner_proof(key, bytes.fromhex(r["nonce"])) is not None


def test_pair_button_opens_the_window_and_forgets_every_bond_with_a_buzz():
    out = run_mpy(_PRELUDE + r"""
import ble_app, pair_button
class Pin:
    level = 1
    def value(self):
        return Pin.level
class Buz:
    def __init__(self):
        self.played = []
    def play(self, now, pattern=None):
        self.played.append(pattern)
pin = Pin()
btn = pair_button.PairButton(pin, active_low=True, pair_ms=60, forget_ms=200)
app = ble_app.BleApp(3, 100, store=ble_buffer.PacketStore(ram_slots=64), ble=ble, secure=True,
                     pair_window_s=0, button=btn, power_saver=False)
app.buzzer = Buz()
s = app.service
s.pair_window_s = 60  # (built with 0: no window at boot; the button opens 60 s)
s.secrets.set(2, b"peer-a", b"k"); s.secrets.set(1, b"peer-a", b"l")
out = {"open_at_boot": s.pairing_open()}
def hold(ms):
    Pin.level = 0
    t = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t) < ms:
        app.tick(); time.sleep_ms(5)
    Pin.level = 1
    app.tick()
hold(20)
out["short_press"] = [s.pairing_open(), len(app.buzzer.played)]
hold(100)
out["long_press"] = [s.pairing_open(), app.buzzer.played[-1] == ble_app.WINDOW_PATTERN, s.secrets.count(2)]
s.close_pairing()
hold(260)
out["very_long"] = [s.pairing_open(), app.buzzer.played[-1] == ble_app.FORGET_PATTERN, s.secrets.count(2),
                    len(s.secrets.entries)]
emit(out)
""").decode().splitlines()
    assert out[0] == "micropython"
    assert "ble: pair button: pairing open for 60 s" in out and "ble: pair button: every bond forgotten" in out
    (r,) = [json.loads(line) for line in out if line.startswith("{")]
    assert r["open_at_boot"] is False  # built with pair_window_s=0: only the button opens it
    assert r["short_press"] == [False, 0]
    assert r["long_press"] == [True, True, 1]
    assert r["very_long"] == [True, True, 0, 0]


def test_previous_boot_status_fields_and_commands_match_the_vectors():
    """protocol/vectors/boots.json: the status version 4 block the firmware packs, and the
    lengths of the commands it accepts."""
    from pathlib import Path

    cases = {c["name"]: c for c in json.loads(
        (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "boots.json").read_text())}
    (r,) = _run(r"""
class DL:
    pboot = 0x898CBE44
    pend_t = 471850
    pepoch = 1796655190462
    def prev_oldest_seq(s):
        return 587
    def prev_next_seq(s):
        return 4712
    def prev_packets(s):
        return 131
svc.daylog = DL()
a = svc._prev_status()
svc.daylog = None
emit({"prev": hx(a), "none": hx(svc._prev_status()), "len_e": ble_service._CMD_LEN[0x0E],
      "len_f": ble_service._CMD_LEN[0x0F], "len_d": ble_service._CMD_LEN[0x0D],
      "evt": ble_service.EVT_PREV_END, "ver": ble_service.STATUS_VERSION})
""")
    assert r["prev"] == cases["status_v4_previous_boot_log"]["hex"][-52:]
    assert r["none"] == cases["status_v4_none_kept"]["hex"][-52:]
    assert r["len_e"] * 2 == len(cases["cmd_backfill_prev"]["hex"]) and r["len_f"] * 2 == len(cases["cmd_prev_ack"]["hex"])
    assert r["len_d"] * 2 == len(cases["cmd_log_ack_prev_marks"]["hex"])
    assert r["evt"] == cases["evt_prev_end"]["decoded"]["opcode"] and r["ver"] == 4


def test_backfill_prev_sends_the_kept_boot_only_then_prev_end_and_acks_free_it(tmp_path):
    (r,) = _run(r"""
import daylog
from array import array
Q = array("f", (0.9, 0.1, -0.3, 0.2))
class B:
    seq = 0
    count = 0
class Pipe:
    def __init__(s):
        s.batcher = B()
        s.rate_hz = 50
        s.feedback = None
        s.log = None
    def flush(s):
        s.batcher.count = 0
def alone(dl, seconds):
    p = Pipe()
    dl.attach(p)
    dl.update(0, False)
    t = 0
    for _ in range(seconds * 50):
        t += 20
        dl.fused(t, Q, Q)
    return p
dl = daylog.DayLog("DLPATH", 100, 3, boot_id=0xA1, after_ms=0, verbose=False)
alone(dl, 20)  # 200 LOG samples: 5 full packets on flash (190), 10 in RAM (lost)
dl.close()  # power lost
dl = daylog.DayLog("DLPATH", 100, 3, boot_id=0xB2, after_ms=0, verbose=False)
p = alone(dl, 8)  # this boot logs too (its own seq line from 0)
dl.update(0, True)
svc.daylog = dl
connect(247)
st = svc.status_bytes()
ans = write(struct.pack("<BI", 0x0E, 100))  # BACKFILL_PREV from seq 100
ble._sent.clear()
for _ in range(20):
    svc.pump()
stream = [hx(x[1][2]) for x in sent("notify", svc.h_stream)]
ctrl = [hx(x[1][2]) for x in sent("notify", svc.h_control)]
write(struct.pack("<BI", 0x0F, dl.prev_next_seq()))  # PREV_ACK everything
write(struct.pack("<BBH", 0x0D, 0x84, 0))  # its MARKS packet (mark 0)
emit({"status": hx(st), "ans": ans, "stream": stream, "ctrl": ctrl, "after": dl.pboot,
      "cur_log": dl.n_log, "status2": hx(svc.status_bytes())})
""".replace("DLPATH", str(tmp_path / "day.log")))
    st = P.parse_status(bytes.fromhex(r["status"]))
    assert st.prev_boot_id == 0xA1 and st.prev_oldest_seq == 0 and st.prev_next_seq == 190
    resp = P.parse_control(bytes.fromhex(r["ans"][0]))
    assert resp.opcode == P.CMD_BACKFILL_PREV and resp.ok and resp.oldest_seq == 76  # packets below 100 freed
    pk = [bytes.fromhex(h)[1:] for h in r["stream"]]  # one notification per packet at MTU 247
    assert [p[1] for p in pk][0] == 4 and all(p[1] == 3 for p in pk[1:])  # its MARKS, then its LOG
    seqs = [s for p in pk[1:] for s in range(struct.unpack_from("<I", p, 4)[0], struct.unpack_from("<I", p, 4)[0] + p[3])]
    assert seqs == list(range(100, 190))  # from 100, once, in order; nothing of the current boot
    end = [P.parse_control(bytes.fromhex(h)) for h in r["ctrl"]]
    assert [(e.opcode, e.next_seq) for e in end] == [(P.EVT_PREV_END, 190)]
    assert r["after"] == 0 and r["cur_log"] > 0  # confirmed: forgotten; this boot's log untouched
    assert P.parse_status(bytes.fromhex(r["status2"])).prev_boot_id is None
