"""The pair button (the XIAO's BOOT button, ``config.PIN_PAIR_BUTTON``), MicroPython.

The owner opens the pairing window physically (protocol/SECURITY.md): holding the button
``config.PAIR_PRESS_MS`` opens it, holding on to ``config.FORGET_PRESS_MS`` forgets every
bond. ``poll(now_ms)`` is called from the main loop (``ble_app.BleApp.tick``, every
``config.MAIN_LOOP_MS``): it reads the pin once and never blocks; a press shorter than a
loop pass may be missed, which is harmless for a hold of seconds.
"""

import time

import config

NONE = 0
OPEN_WINDOW = 1  # held PAIR_PRESS_MS: open the pairing window
FORGET_ALL = 2  # held FORGET_PRESS_MS: forget every bond


class PairButton:
    """Long-press detector on one input pin.

    Args:
        pin: a ``machine.Pin`` (input, pull-up when active low) or anything with ``value()``.
        active_low: pressed reads 0 (the BOOT button pulls GPIO0 to GND).
        pair_ms, forget_ms: hold times of the two actions, ms.
    """

    def __init__(self, pin, active_low=True, pair_ms=config.PAIR_PRESS_MS,
                 forget_ms=config.FORGET_PRESS_MS):
        self.pin = pin
        self._pressed_level = 0 if active_low else 1
        self.pair_ms = pair_ms
        self.forget_ms = forget_ms
        self._down_at = None  # ticks_ms when the press began
        self._fired = NONE  # the action already reported for this press

    @classmethod
    def on_pin(cls, gpio=config.PIN_PAIR_BUTTON, active_low=config.PAIR_BUTTON_ACTIVE_LOW):
        """The button on GPIO ``gpio`` (input, internal pull-up when active low)."""
        import machine

        pull = machine.Pin.PULL_UP if active_low else machine.Pin.PULL_DOWN
        return cls(machine.Pin(gpio, machine.Pin.IN, pull), bool(active_low))

    def poll(self, now_ms=None):
        """Read the pin; returns ``OPEN_WINDOW`` or ``FORGET_ALL`` once per press when the
        hold reaches that time, else ``NONE``."""
        if now_ms is None:
            now_ms = time.ticks_ms()
        if self.pin.value() != self._pressed_level:
            self._down_at = None
            self._fired = NONE
            return NONE
        if self._down_at is None:
            self._down_at = now_ms
            return NONE
        held = time.ticks_diff(now_ms, self._down_at)
        if held >= self.forget_ms and self._fired != FORGET_ALL:
            self._fired = FORGET_ALL
            return FORGET_ALL
        if held >= self.pair_ms and self._fired == NONE:
            self._fired = OPEN_WINDOW
            return OPEN_WINDOW
        return NONE
