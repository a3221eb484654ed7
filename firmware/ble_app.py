"""Board-side BLE application: pipeline + GATT service + offline buffer, MicroPython.

``BleApp`` is what the sampling loop talks to: ``step()`` per raw sample (fusion,
batching into SAMPLES packets, into the offline buffer), ``tick()`` often (BLE events,
commands, sending). The packets the pipeline closes are taken whole from its outbox
into ``ble_buffer.PacketStore``; ``ble_service.NapeService`` sends them from there,
live or as backfill, fragmented for the current MTU.

Run as a script it is the virtual device's firmware: raw samples come from a file in
the ``simhost`` format (header ``NSIM`` u8 imu_mask, u16 max_value_len (ignored),
f32 rate_hz, u32 n, then float32 acc x,y,z, gyr x,y,z per IMU per sample), paced at
``--speed`` times real time (0 = as fast as possible, but while a central streams no
faster than the link drains), over the ``bluetooth`` module
(on the unix port: tests/firmware/shims/bluetooth.py, bridged to a bumble radio)::

    micropython ble_app.py --nsim FILE [--speed 1] [--flash PATH] [--ram-slots N]
                           [--flash-slots N] [--name Nape] [--secure] [--secrets PATH]

It prints one line ``NAPE-APP start_unix_ms=<ms> rate_hz=<hz> n=<samples>`` when
sampling starts and ``NAPE-APP source_done next_seq=<seq>`` when the file is
exhausted, then keeps serving (backfill, status) until killed or the radio goes away.
"""

import struct
import sys
import time

import asyncio
import bluetooth

import config
import pipeline
import power
import ble_buffer
import ble_service


class BleApp:
    """Pipeline + BLE service + offline buffer for one device.

    Args:
        imu_mask: IMUs present (1 trunk, 2 head, 3 both).
        rate_hz: fused stream rate, Hz.
        store: a ``ble_buffer.PacketStore`` (default: RAM only, 4096 slots).
        ble: ``bluetooth.BLE()`` (default: the singleton).
        name: advertised name.
        secure: encrypted, bonded link required (``ble_service.NapeService``).
        secrets_path: file keeping the bonding keys (None: RAM only).
        power_saver: run a power policy (``power_policy``, default ``power.PowerPolicy``):
            the app applies its advertising interval and reports saver mode in the status;
            the sampling loop reads ``app.power.sample_rate_hz`` (rate changes are its job).
    """

    def __init__(self, imu_mask, rate_hz, store=None, ble=None, name=config.BLE_NAME,
                 adv_interval_us=config.ADV_INTERVAL_US, secure=False, secrets_path=None,
                 power_saver=True, power_policy=None):
        self.store = store if store is not None else ble_buffer.PacketStore()
        # whole packets (not fragments) into the store: the service fragments when it sends
        self.pipeline = pipeline.Pipeline(imu_mask, rate_hz, ble_service.MAX_VALUE_LEN,
                                          fragment=False)
        self.settings = {
            "neck_limit_deg": config.POSTURE_NECK_FLEXION_LIMIT_DEG,
            "trunk_limit_deg": config.POSTURE_TRUNK_INCLINATION_LIMIT_DEG,
            "hold_s": config.POSTURE_HOLD_S,
        }
        self.settings_version = 0  # incremented by every accepted SET_POSTURE
        self.calibrate_request_s = None  # set by CALIBRATE; the posture module consumes it
        self.service = ble_service.NapeService(
            ble if ble is not None else bluetooth.BLE(), self.store, name=name,
            fw_version=config.FW_VERSION, imu_mask=imu_mask, rate_hz=rate_hz,
            on_command=self._on_command, on_mtu=self._on_mtu,
            adv_interval_us=adv_interval_us, secure=secure,
            secrets=ble_service.BondStore(secrets_path))
        if power_saver and power_policy is None:
            power_policy = power.PowerPolicy(time.ticks_ms())
        self.power = power_policy if power_saver else None
        self._power_due = time.ticks_ms()

    def _on_mtu(self, value_len):
        self.pipeline.set_mtu_value_len(value_len)
        self._collect()

    def _on_command(self, op, payload):
        if op == ble_service.CMD_CALIBRATE:
            self.calibrate_request_s = payload[0] or config.CALIB_STILL_S
            return ble_service.RES_OK
        if op == ble_service.CMD_SET_POSTURE:
            neck, trunk, hold = struct.unpack("<BBH", payload)
            if not (5 <= neck <= 90 and 5 <= trunk <= 90 and 1 <= hold <= 3600):
                return ble_service.RES_BAD_VALUE
            self.settings["neck_limit_deg"] = neck
            self.settings["trunk_limit_deg"] = trunk
            self.settings["hold_s"] = hold
            self.settings_version += 1
            return ble_service.RES_OK
        return ble_service.RES_UNKNOWN

    def _collect(self):
        """Move closed packets from the pipeline's outbox into the store."""
        ob = self.pipeline.outbox
        if not ob:
            return
        store = self.store
        for pkt in ob:
            store.append(pkt, self.service.delivered_to())
        ob.clear()

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None):
        """One raw sample per IMU (m/s^2, rad/s, sensor frame) at device time t_ms."""
        p = self.pipeline
        p.step(t_ms, acc0, gyr0, acc1, gyr1)
        if p.outbox:
            self._collect()

    def step_wire(self, t_ms, acc0, gyr0, acc1, gyr1, w):
        """``step`` with the packet's acc/gyr as wire-unit ints (``Pipeline.step_wire``;
        the sampling loop's path: no heap objects per sample)."""
        p = self.pipeline
        p.step_wire(t_ms, acc0, gyr0, acc1, gyr1, w)
        if p.outbox:
            self._collect()

    def flush(self):
        """Close the partial packet (end of a source)."""
        self.pipeline.flush()
        self._collect()

    def backlog(self):
        """Samples stored but not yet sent to the streaming central (0 when not streaming)."""
        svc = self.service
        nxt = self.store.next_seq()
        if not svc.streaming or svc.cursor is None or nxt is None:
            return 0
        return (nxt - svc.cursor) & 0xFFFFFFFF

    def tick(self):
        """BLE housekeeping and sending; returns notifications sent."""
        svc = self.service
        svc.poll()
        pol = self.power
        if pol is not None:
            now = time.ticks_ms()
            if time.ticks_diff(now, self._power_due) >= 0:
                self._power_due = time.ticks_add(now, 100)
                f = self.pipeline.fusion
                still = f[0].rest and (len(f) < 2 or f[1].rest)
                pol.update(now, svc.conn is not None, still)
                svc.saver = pol.mode == power.MODE_SAVER
                svc.set_adv_interval(pol.adv_interval_us)
        return svc.pump()


def _read_exact(f, n):
    buf = f.read(n)
    if buf is None or len(buf) != n:
        raise EOFError("sample file ended early")
    return buf


async def run_nsim(path, speed=1.0, flash_path=None, ram_slots=4096, flash_slots=16384,
                   name=config.BLE_NAME, block=50, secure=False, secrets_path=None):
    """Virtual device main: stream the samples in ``path`` (simhost format) over BLE."""
    f = open(path, "rb")
    hdr = _read_exact(f, 15)
    if hdr[:4] != b"NSIM":
        raise ValueError("bad sample file header")
    mask, _vl, rate_hz, n = struct.unpack_from("<BHfI", hdr, 4)
    store = ble_buffer.PacketStore(ram_slots, flash_path, flash_slots)
    app = BleApp(mask, rate_hz, store=store, name=name, secure=secure, secrets_path=secrets_path)
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
            "--name": config.BLE_NAME, "--nsim": None, "--secrets": None}
    secure = False
    i = 1
    while i < len(argv):
        if argv[i] == "--secure":
            secure = True
            i += 1
            continue
        if argv[i] not in opts:
            raise SystemExit("unknown option " + argv[i])
        opts[argv[i]] = argv[i + 1]
        i += 2
    if opts["--nsim"] is None:
        raise SystemExit("usage: ble_app.py --nsim FILE [--speed S] [--flash PATH]")
    asyncio.run(run_nsim(opts["--nsim"], float(opts["--speed"]), opts["--flash"],
                         int(opts["--ram-slots"]), int(opts["--flash-slots"]), opts["--name"],
                         secure=secure, secrets_path=opts["--secrets"]))


if __name__ == "__main__":
    _main(sys.argv)
