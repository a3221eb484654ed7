"""The virtual radio's bond key store: where it lives and forgetting bonds in it.

A real adapter keeps its bonds in BlueZ; the bumble central of the virtual radio keeps them
in a JSON key store, by default ``<user data dir>/nape/ble-keys.json`` (``$NAPE_BLE_KEYSTORE``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import safe_write
from ..errors import DeviceError

ENV_KEYSTORE = "NAPE_BLE_KEYSTORE"


def default_keystore() -> Path:
    """Where the virtual radio's central keeps bonding keys: ``$NAPE_BLE_KEYSTORE`` or
    ``<user data dir>/nape/ble-keys.json``."""
    env = os.environ.get(ENV_KEYSTORE)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("nape")) / "ble-keys.json"


def check_keystore(keystore: Path) -> Path:
    """``keystore`` if it is missing (made on the first bond) or a JSON object file; else one clear
    error here, before the scan (the BLE stack's own failure read as a missing adapter).

    Raises:
        DeviceError: a folder, not a regular file, unreadable, or not a JSON object.
    """
    if not keystore.exists():
        return keystore
    if keystore.is_dir():
        raise DeviceError(f"{keystore}: is a folder, not a key store (a JSON file; give another --keystore)")
    if not keystore.is_file():
        raise DeviceError(f"{keystore}: not a regular file, not a key store (give another --keystore)")
    try:
        data = json.loads(keystore.read_text() or "{}")
    except (OSError, ValueError) as e:
        raise DeviceError(f"{keystore}: not a key store ({e})") from None
    if not isinstance(data, dict):
        raise DeviceError(f"{keystore}: not a key store (a JSON object of bonds expected)")
    return keystore


def forget_bonds(keystore: Path, address: str | None) -> int:
    """Remove the bond with ``address`` (every bond when None) from a bumble JSON key
    store; returns how many were removed.

    Raises:
        DeviceError: the key store is not a JSON object file (:func:`check_keystore`).
    """
    if not keystore.exists():
        return 0
    data = json.loads(check_keystore(keystore).read_text() or "{}")
    n = 0
    for ns, peers in data.items():
        if not isinstance(peers, dict):
            continue
        for peer in list(peers):
            if address is None or peer.split("/")[0].upper() == address.upper():
                del peers[peer]
                n += 1
    safe_write.write_text(keystore, json.dumps(data, indent=2))
    return n
