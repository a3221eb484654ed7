"""Board-side BLE application: pipeline + GATT service + offline buffer, MicroPython.

``BleApp`` is what the sampling loop talks to: ``step()`` per raw sample (fusion,
batching into SAMPLES packets, into the offline buffer), ``tick()`` often (BLE events,
commands, sending). The packets the pipeline closes are taken whole from its outbox
into ``ble_buffer.PacketStore``; ``ble_service.NapeService`` sends them from there,
live or as backfill, fragmented for the current MTU.

``make_app`` builds it with the board's security settings (``config.BLE_*``): the board's
boot (``main.py``) calls it, and the host's virtual board (``nape/boardsim/mpy/board_app.py``)
boots that same ``main.py``, so both run exactly the same security.
"""

import os
import struct
import time

import bluetooth

import config
import pipeline
import power
import ble_buffer
import ble_service
import pair_button

# vibration patterns ((on_ms, off_ms), ...): the pairing window opened (two short), every
# bond forgotten (one long)
WINDOW_PATTERN = ((120, 120), (120, 400))
FORGET_PATTERN = ((900, 300),)


def make_app(imu_mask, rate_hz, store=None, ble=None, name=None, secure=None,
             secrets_path=None, owner_key_path=None, pair_window_s=None, button=True, **kw):
    """The board's ``BleApp``: secure mode, pairing window, bond limit, bonds file, owner
    key and pair button as ``config`` says (``config.BLE_*``, read at call time; arguments
    left None take them). Paths name files on the board's flash (the virtual board gives
    its own; "" keeps the bonds in RAM); ``secure`` False is the development switch
    (``config.BLE_SECURE``); ``button`` False leaves the pair button out. Other keywords
    go to ``BleApp``.

    Raises:
        OSError: the BLE stack cannot start.
    """
    if secure is None:
        secure = config.BLE_SECURE
    if secrets_path is None:
        secrets_path = config.BLE_SECRETS_FILE
    if owner_key_path is None:
        owner_key_path = config.BLE_OWNER_KEY_FILE
    if pair_window_s is None:
        pair_window_s = config.BLE_PAIR_WINDOW_S
    btn = pair_button.PairButton.on_pin() if button else None
    return BleApp(imu_mask, rate_hz, store=store, ble=ble, name=name or config.BLE_NAME,
                  secure=bool(secure), secrets_path=secrets_path or None,
                  pair_window_s=pair_window_s, max_bonds=config.BLE_MAX_BONDS,
                  owner_key=_owner_key(owner_key_path), button=btn, **kw)


def _owner_key(path):
    """The owner key at ``path`` or None; ``ble_owner`` is imported only when the file exists."""
    if not path:
        return None
    try:
        os.stat(path)
    except OSError:
        return None
    import ble_owner

    return ble_owner.load_owner_key(path)


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
        pair_window_s, max_bonds, owner_key: pairing window after boot / a long press,
            bond limit, owner key (``ble_service.NapeService``).
        button: a ``pair_button.PairButton`` polled in ``tick`` (None: no button).
        power_saver: run a power policy (``power_policy``, default ``power.PowerPolicy``):
            the app applies its advertising interval and reports saver mode in the status;
            the sampling loop reads ``app.power.sample_rate_hz`` (rate changes are its job).
    """

    def __init__(self, imu_mask, rate_hz, store=None, ble=None, name=config.BLE_NAME,
                 adv_interval_us=config.ADV_INTERVAL_US, secure=False, secrets_path=None,
                 power_saver=True, power_policy=None, pair_window_s=0,
                 max_bonds=config.BLE_MAX_BONDS, owner_key=None, button=None):
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
            secrets=ble_service.BondStore(secrets_path), pair_window_s=pair_window_s,
            max_bonds=max_bonds, owner_key=owner_key)
        self.button = button
        #: a ``buzzer.Buzzer`` (``main.boot`` attaches the board's) for the pairing signals
        self.buzzer = None
        self._signal = WINDOW_PATTERN if self.service.pairing_open() else None
        self.signals = 0  # pairing signals played on the buzzer
        self.clock = time.ticks_ms  # the power policy's clock (use_clock)
        self._own_policy = power_policy is None
        if power_saver and power_policy is None:
            power_policy = power.PowerPolicy(time.ticks_ms())
        self.power = power_policy if power_saver else None
        self._power_due = time.ticks_ms()
        self.daylog = None  # the offline day log (set_daylog)
        self._t_ms = 0  # time of the newest sample (the day log's offline clock)

    def set_daylog(self, dl):
        """Log offline into ``dl`` (``daylog.DayLog``): no central for its ``after_ms``
        -> 10 Hz LOG, MARKS and EVENT windows instead of SAMPLES; sent on reconnection."""
        self.daylog = dl
        if dl is not None:
            dl.attach(self.pipeline)
        self.service.daylog = dl

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

    def step(self, t_ms, acc0, gyr0, acc1=None, gyr1=None, jolt=False):
        """One raw sample per IMU (m/s^2, rad/s, sensor frame) at device time t_ms."""
        p = self.pipeline
        self._t_ms = t_ms
        p.step(t_ms, acc0, gyr0, acc1, gyr1, jolt)
        if p.outbox:
            self._collect()

    def step_wire(self, t_ms, acc0, gyr0, acc1, gyr1, w, jolt=False):
        """``step`` with the packet's acc/gyr as wire-unit ints (``Pipeline.step_wire``;
        the sampling loop's path: no heap objects per sample)."""
        p = self.pipeline
        self._t_ms = t_ms
        p.step_wire(t_ms, acc0, gyr0, acc1, gyr1, w, jolt)
        if p.outbox:
            self._collect()

    def flush(self):
        """Close the partial packet (end of a source)."""
        self.pipeline.flush()
        self._collect()

    def _button(self):
        """Pair button: a long press opens the pairing window, a very long one forgets
        every bond (and keeps the window open, to pair again)."""
        btn = self.button
        if btn is None:
            return
        act = btn.poll(time.ticks_ms())
        if act == pair_button.OPEN_WINDOW:
            self.service.open_pairing()
            self._signal = WINDOW_PATTERN
            print("ble: pair button: pairing open for %d s" % self.service.pair_window_s)
        elif act == pair_button.FORGET_ALL:
            self.service.forget_all()
            self.service.open_pairing()
            self._signal = FORGET_PATTERN
            print("ble: pair button: every bond forgotten")

    def backlog(self):
        """Samples stored but not yet sent to the streaming central (0 when not streaming)."""
        svc = self.service
        nxt = self.store.next_seq()
        if not svc.streaming or svc.cursor is None or nxt is None:
            return 0
        return (nxt - svc.cursor) & 0xFFFFFFFF

    def use_clock(self, clock):
        """Run the power policy on ``clock`` (``() -> ms``) instead of ``time.ticks_ms``:
        the virtual board's board time (on a board they are the same clock). Restarts
        the app's own policy on it."""
        self.clock = clock
        now = clock()
        self._power_due = now
        if self.power is not None and self._own_policy:
            self.power = power.PowerPolicy(now)

    def tick(self):
        """BLE housekeeping and sending; returns notifications sent."""
        svc = self.service
        svc.poll()
        if self.button is not None:
            self._button()
        if self._signal is not None and self.buzzer is not None:
            self.buzzer.play(time.ticks_ms(), self._signal)
            self._signal = None
            self.signals += 1
        dl = self.daylog
        if dl is not None:  # offline day log: on without an authorized central, on sample time
            dl.update(self._t_ms, svc.authorized())
            if self.pipeline.outbox:
                self._collect()
        pol = self.power
        if pol is not None:
            now = self.clock()
            if time.ticks_diff(now, self._power_due) >= 0:
                self._power_due = time.ticks_add(now, 100)
                f = self.pipeline.fusion
                still = f[0].rest and (len(f) < 2 or f[1].rest)
                pol.update(now, svc.conn is not None, still)
                svc.saver = pol.mode == power.MODE_SAVER
                svc.set_adv_interval(pol.adv_interval_us)
        return svc.pump()
