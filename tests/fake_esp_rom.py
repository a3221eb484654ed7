"""The part of an ESP32 / ESP32-S3 ROM serial bootloader that chip detection uses, on a pty.

Real ``esptool`` (as a subprocess, with ``--before no-reset --after no-reset`` because a
pty has no DTR/RTS lines) can connect to ``FakeEspRom(chip).port`` and detect the chip,
so ``nape flash``'s detection step and its wrong-chip error are tested against esptool's
real output rather than against a string we made up.

Protocol (esptool's "serial protocol" documentation): SLIP frames (0xC0 delimited, 0xDB
escapes); a request is ``<BBHI`` (0x00, command, data length, checksum) + data; a
response is ``<BBHI`` (0x01, command, data length, value) + data + 4 status bytes
(ESP32 and later ROMs). Implemented:

* ``SYNC`` (0x08): eight responses with a non-zero value (a ROM, not the flasher stub).
* ``READ_REG`` (0x0A): the chip-detect magic word at 0x40001000 for the ESP32
  (0x00F01D83), its UART clock divider for a 40 MHz crystal; 0 for every other address
  (e-fuses read as blank, so the MAC is 00:00:00:00:00:00).
* ``GET_SECURITY_INFO`` (0x14): the ESP32 ROM rejects it (status 1, error 0x05 "invalid
  message", sent eight times and without echoing the command, as the ROM does), which makes esptool fall back to the magic word; the
  ESP32-S3 ROM answers 20 bytes with chip ID 9.
* anything else: an empty success, e.g. ``CHANGE_BAUDRATE`` or ``SPI_ATTACH``.

It cannot erase or write flash: that needs the flasher stub, which esptool uploads into
the chip's RAM and runs there. Only a real board checks erase and write.
"""

from __future__ import annotations

import os
import pty
import select
import struct
import threading
import tty

SYNC, READ_REG, GET_SECURITY_INFO = 0x08, 0x0A, 0x14
CHIP_DETECT_MAGIC_REG_ADDR = 0x40001000
ESP32_MAGIC = 0x00F01D83
ESP32_UART_CLKDIV_REG = 0x3FF40014  # esptool estimates the ESP32's crystal from it
ESP32S3_CHIP_ID = 9


def slip_encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def slip_decode(frame: bytes) -> bytes:
    return frame.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")


class FakeEspRom:
    """A pty that answers like an ESP32 (``chip="esp32"``) or ESP32-S3 ROM bootloader.

    ``port`` is the ``/dev/pts/N`` path; ``commands`` lists the command bytes received.
    """

    def __init__(self, chip: str):
        if chip not in ("esp32", "esp32s3"):
            raise ValueError(chip)
        self.chip = chip
        self.commands: list[int] = []
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._keep_slave = slave  # no EIO on the master between clients
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-esp-rom", daemon=True)
        self._thread.start()

    def _respond(self, op: int, value: int = 0, data: bytes = b"", status: bytes = b"\x00\x00\x00\x00") -> None:
        body = data + status
        os.write(self._master, slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body))

    def _handle(self, packet: bytes) -> None:
        if len(packet) < 8 or packet[0] != 0:
            return
        _, op, size, _chk = struct.unpack("<BBHI", packet[:8])
        data = packet[8:8 + size]
        self.commands.append(op)
        if op == SYNC:
            for _ in range(8):
                self._respond(op, value=0x20120707)
        elif op == READ_REG:
            (addr,) = struct.unpack("<I", data[:4])
            value = 0
            if self.chip == "esp32" and addr == CHIP_DETECT_MAGIC_REG_ADDR:
                value = ESP32_MAGIC
            elif self.chip == "esp32" and addr == ESP32_UART_CLKDIV_REG:
                value = round(40e6 / 115200)  # 40 MHz crystal at the ROM's 115200 Bd
            self._respond(op, value=value)
        elif op == GET_SECURITY_INFO:
            if self.chip == "esp32":  # not in the ESP32 ROM: "invalid message" error
                for _ in range(8):  # (the ROM does not echo the command it cannot parse)
                    self._respond(0, status=b"\x01\x05\x00\x00")
            else:
                info = struct.pack("<IB7BII", 0, 0, *([0] * 7), ESP32S3_CHIP_ID, 0)
                self._respond(op, data=info)
        else:
            self._respond(op)

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._master], [], [], 0.1)
                if not r:
                    continue
                buf += os.read(self._master, 4096)
            except (OSError, ValueError):
                return
            while True:  # every complete frame: C0 ... C0
                start = buf.find(b"\xc0")
                if start < 0:
                    buf = b""
                    break
                end = buf.find(b"\xc0", start + 1)
                if end < 0:
                    buf = buf[start:]
                    break
                frame, buf = buf[start + 1:end], buf[end:]
                if frame:  # (two delimiters in a row make an empty frame: skip it)
                    self._handle(slip_decode(frame))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._keep_slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "FakeEspRom":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
