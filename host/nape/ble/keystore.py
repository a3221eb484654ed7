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


def forget_bonds(keystore: Path, address: str | None) -> int:
    """Remove the bond with ``address`` (every bond when None) from a bumble JSON key
    store; returns how many were removed.

    Raises:
        DeviceError: the key store is not valid JSON.
    """
    if not keystore.exists():
        return 0
    try:
        data = json.loads(keystore.read_text() or "{}")
    except ValueError as e:
        raise DeviceError(f"{keystore}: not a key store ({e})") from None
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
