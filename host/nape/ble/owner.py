"""The owner key: a secret that ``nape flash`` writes to the board over USB and keeps on
this computer, so a central can prove it is the owner's (protocol/SECURITY.md).

The board keeps it in ``config.BLE_OWNER_KEY_FILE`` as hex text; this computer in
``$NAPE_OWNER_KEY`` or ``<user data dir>/nape/owner.key`` (the same format, mode 0600).
One key per computer user: every board that user flashes gets it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import DeviceError

ENV_OWNER_KEY = "NAPE_OWNER_KEY"
KEY_BYTES = 32


def default_owner_key_path() -> Path:
    """``$NAPE_OWNER_KEY`` or ``<user data dir>/nape/owner.key``."""
    env = os.environ.get(ENV_OWNER_KEY)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("nape")) / "owner.key"


def parse_owner_key(text: str, where: str = "owner key") -> bytes:
    """Key bytes from hex text (16..64 bytes, as the firmware accepts).

    Raises:
        DeviceError: not such a key.
    """
    t = text.strip()
    try:
        key = bytes.fromhex(t)
    except ValueError:
        key = b""
    if not 16 <= len(key) <= 64:
        raise DeviceError(f"{where}: not an owner key (hex text of 16 to 64 bytes)")
    return key


def load_owner_key(path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The owner key at ``path`` (default :func:`default_owner_key_path`), or None when
    there is no file.

    Raises:
        DeviceError: the file exists but holds no key.
    """
    p = Path(path) if path is not None else default_owner_key_path()
    try:
        text = p.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DeviceError(f"{p}: cannot read the owner key ({e.strerror})") from None
    return parse_owner_key(text, str(p))


def ensure_owner_key(path: str | os.PathLike[str] | None = None) -> tuple[bytes, Path, bool]:
    """The owner key at ``path``, created (random, readable by this user only) when there
    is none. Returns ``(key, path, created)``.

    Raises:
        DeviceError: the file holds no key, or cannot be written.
    """
    p = Path(path) if path is not None else default_owner_key_path()
    key = load_owner_key(p)
    if key is not None:
        return key, p, False
    key = secrets.token_bytes(KEY_BYTES)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
    except OSError as e:
        raise DeviceError(f"{p}: cannot write the owner key ({e.strerror})") from None
    return key, p, True
