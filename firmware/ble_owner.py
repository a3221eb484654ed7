"""The owner key on the board (protocol/SECURITY.md), MicroPython: loading it and checking
a central's proof. Imported only when the board holds a key (``ble_app.make_app``,
``ble_service.NapeService._prove``), so a board without one spends no heap on it.
"""

import hashlib


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) of ``msg`` under ``key`` (MicroPython has ``hashlib`` but
    no ``hmac`` module)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def same_bytes(a, b):
    """Compare two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def load_owner_key(path):
    """The owner key in ``path`` (hex text, 16..64 bytes), or None when there is none.
    A file that is not such a key is reported and ignored (no proof asked)."""
    if not path:
        return None
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    try:
        key = bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))
    except ValueError:
        key = b""
    if len(text) % 2 or not 16 <= len(key) <= 64:
        print("ble: %s is not an owner key (hex, 16..64 bytes): ignored" % path)
        return None
    return key
