"""protocol/vectors/boots.json on the host side: the status version 4 fields (the previous
boot's day log the board kept over a reboot), the BACKFILL_PREV / PREV_ACK / LOG_ACK
commands and the PREV_END event (the firmware side: tests/firmware/test_ble_service.py)."""

from __future__ import annotations

import json
from pathlib import Path

from nape.ble import protocol as P

CASES = json.loads((Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "boots.json").read_text())


def test_status_versions_read_the_previous_boot_fields():
    for c in (c for c in CASES if c["kind"] == "status"):
        st = P.parse_status(bytes.fromhex(c["hex"]))
        got = {k: getattr(st, k) for k in c["decoded"]}
        assert got == c["decoded"], c["name"]


def test_commands_and_the_event_are_the_vector_bytes():
    by = {c["name"]: c for c in CASES}
    assert P.cmd_backfill_prev(587).hex() == by["cmd_backfill_prev"]["hex"]
    assert P.cmd_prev_ack(4712).hex() == by["cmd_prev_ack"]["hex"]
    assert P.cmd_log_ack(4, 65535, prev=True).hex() == by["cmd_log_ack_prev_marks"]["hex"]
    assert P.cmd_log_ack(2, 3, prev=True).hex() == by["cmd_log_ack_prev_event"]["hex"]
    e = P.parse_control(bytes.fromhex(by["evt_prev_end"]["hex"]))
    assert e.is_event and e.opcode == P.EVT_PREV_END and e.next_seq == 4712


def test_a_newer_status_version_says_to_update_nape_in_one_line():
    import pytest

    from nape.errors import DeviceError

    v = bytearray.fromhex(CASES[0]["hex"])
    v[0] = P.STATUS_VERSION + 1
    with pytest.raises(DeviceError, match=r"newer than this nape reads .*update nape"):
        P.parse_status(bytes(v))
