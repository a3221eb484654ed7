"""The virtual board's sample-file app (host only, MicroPython): the board's BLE app
(``ble_app.make_app``: the same security settings as ``main.py`` builds on the board, from
``config``) fed from a file of raw samples instead of the IMU drivers.

Raw samples come in the NSIM format (``simhost.py``: header ``NSIM`` u8 imu_mask, u16
max_value_len (ignored), f32 rate_hz, u32 n, then float32 acc x,y,z, gyr x,y,z per IMU per
sample), paced at ``--speed`` times real time (0 = as fast as possible, but while a central
streams no faster than the link drains), over the ``bluetooth`` shim beside this file
(bridged to a bumble radio by ``nape.ble.peripheral``)::

    micropython nsim_app.py --nsim FILE [--speed 1] [--flash PATH] [--ram-slots N]
                            [--flash-slots N] [--name Nape] [--secrets PATH]
                            [--owner-key PATH] [--pair-window S] [--insecure]

``--secrets`` / ``--owner-key`` name the virtual board's flash files (``config.BLE_SECRETS_FILE``,
``config.BLE_OWNER_KEY_FILE`` on a board); ``--pair-window`` shortens the pairing window
for tests; ``--insecure`` is the development switch ``config.BLE_SECURE = 0``. The pair
button (``config.PIN_PAIR_BUTTON``) is the machine shim's pin, pressed through the bridge.

It prints one line ``NAPE-APP start_unix_ms=<ms> rate_hz=<hz> n=<samples>`` when
sampling starts and ``NAPE-APP source_done next_seq=<seq>`` when the file is
exhausted, then keeps serving (backfill, status) until killed or the radio goes away.
Never flashed to a board (``nape flash`` copies ``firmware/`` only).
"""

import struct
import sys
import time

import asyncio

import config
import ble_buffer
from ble_app import make_app


def _read_exact(f, n):
    buf = f.read(n)
    if buf is None or len(buf) != n:
        raise EOFError("sample file ended early")
    return buf


async def run_nsim(path, speed=1.0, flash_path=None, ram_slots=4096, flash_slots=16384,
                   name=config.BLE_NAME, block=50, secure=None, secrets_path="",
                   owner_key_path="", pair_window_s=None):
    """Virtual device main: stream the samples in ``path`` (simhost format) over BLE."""
    f = open(path, "rb")
    hdr = _read_exact(f, 15)
    if hdr[:4] != b"NSIM":
        raise ValueError("bad sample file header")
    mask, _vl, rate_hz, n = struct.unpack_from("<BHfI", hdr, 4)
    store = ble_buffer.PacketStore(ram_slots, flash_path, flash_slots)
    app = make_app(mask, rate_hz, store=store, name=name, secure=secure, secrets_path=secrets_path,
                   owner_key_path=owner_key_path, pair_window_s=pair_window_s)
    n_imu = (mask & 1) + ((mask >> 1) & 1)
    rec = 24 * n_imu
    fmt = "<" + "f" * (6 * n_imu)
    acc0 = [0.0, 0.0, 0.0]
    gyr0 = [0.0, 0.0, 0.0]
    acc1 = [0.0, 0.0, 0.0]
    gyr1 = [0.0, 0.0, 0.0]
    period_us = app.pipeline.period_us
    t0 = time.ticks_ms()
    print("NAPE-APP start_unix_ms=%d rate_hz=%d n=%d" % (time.time_ns() // 1000000, int(rate_hz), n))
    done = 0
    while done < n:
        if speed > 0:
            due = int(time.ticks_diff(time.ticks_ms(), t0) * speed * rate_hz / 1000) + 1
        elif app.backlog() > 20 * block:
            due = done  # as fast as possible, but no faster than the link drains
        else:
            due = done + block
        k = due - done
        if k > block:
            k = block
        if k > n - done:
            k = n - done
        if k > 0:
            buf = _read_exact(f, k * rec)
            for i in range(k):
                v = struct.unpack_from(fmt, buf, i * rec)
                acc0[0], acc0[1], acc0[2], gyr0[0], gyr0[1], gyr0[2] = v[0], v[1], v[2], v[3], v[4], v[5]
                if n_imu == 2:
                    acc1[0], acc1[1], acc1[2], gyr1[0], gyr1[1], gyr1[2] = v[6], v[7], v[8], v[9], v[10], v[11]
                app.step(((done + i) * period_us) // 1000, acc0, gyr0, acc1, gyr1)
            done += k
        app.tick()
        await asyncio.sleep_ms(0 if due > done else (1 if speed <= 0 else 2))
    f.close()
    app.flush()
    app.service.set_source_done()
    print("NAPE-APP source_done next_seq=%d" % (store.next_seq() or 0))
    while True:
        app.tick()
        await asyncio.sleep_ms(2)


def _main(argv):
    opts = {"--speed": "1", "--flash": None, "--ram-slots": "4096", "--flash-slots": "16384",
            "--name": config.BLE_NAME, "--nsim": None, "--secrets": None, "--owner-key": None,
            "--pair-window": None}
    secure = None  # the board's config.BLE_SECURE
    i = 1
    while i < len(argv):
        if argv[i] in ("--insecure", "--secure"):
            secure = argv[i] == "--secure"
            i += 1
            continue
        if argv[i] not in opts:
            raise SystemExit("unknown option " + argv[i])
        opts[argv[i]] = argv[i + 1]
        i += 2
    if opts["--nsim"] is None:
        raise SystemExit("usage: nsim_app.py --nsim FILE [--speed S] [--flash PATH]")
    asyncio.run(run_nsim(opts["--nsim"], float(opts["--speed"]), opts["--flash"],
                         int(opts["--ram-slots"]), int(opts["--flash-slots"]), opts["--name"],
                         secure=secure, secrets_path=opts["--secrets"] or "",
                         owner_key_path=opts["--owner-key"] or "",
                         pair_window_s=None if opts["--pair-window"] is None
                         else int(opts["--pair-window"])))


if __name__ == "__main__":
    _main(sys.argv)
