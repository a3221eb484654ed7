"""One root exception for everything nape raises on bad input, with typed subclasses.

The CLI turns any :class:`NapeError` into one line on stderr and a non-zero exit.
"""


class NapeError(Exception):
    """Root of all nape errors that a user can cause or fix."""


class PacketError(NapeError):
    """A BLE packet does not follow the wire format (protocol/SPEC.md)."""


class RecordingError(NapeError):
    """A .nape recording cannot be opened or written (protocol/RECORDING.md)."""


class DeviceError(NapeError):
    """A device cannot be reached or misbehaves."""


class FirmwareError(NapeError):
    """The firmware, or the MicroPython interpreter that runs it, failed."""


class NotBondedError(DeviceError):
    """A board in secure mode refuses this computer: no bond it accepts, pairing refused
    outside its pairing window, or its owner key not proved. The message says what to do."""
