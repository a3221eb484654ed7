"""The cohort's output folder: layout, the per-cohort key, pseudonyms and the resume state.

Layout of ``OUT``::

    recordings.parquet  epochs.parquet  episodes.parquet  jolts.parquet  rom.parquet
    cohort.json  cohort.html
    reports/RID.html, RID.json           one report per recording (RID: recording id)
    parts/TABLE/RID.parquet              what each task wrote (merged into TABLE.parquet)
    .nape-cohort/key                     per-cohort secret (pseudonyms, recording ids); never in a report
    .nape-cohort/state.jsonl             one line per finished task: hashes, status, reason

Recording ids and pseudonyms are keyed hashes (HMAC-SHA-256) with the per-cohort key, so
they are stable across reruns into the same ``OUT`` and cannot be reversed by guessing
file names or wearer ids without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from .. import safe_write
from ..errors import NapeError

TABLES = ("recordings", "epochs", "episodes", "jolts", "rom")
HASH_CHUNK = 1 << 20  # bytes read at a time when hashing a recording


class OutputError(NapeError):
    """The cohort's output folder cannot be used."""


def prepare(out: Path) -> Path:
    """Create ``out`` and its subfolders.

    Raises:
        OutputError: ``out`` exists and is not a folder.
        OSError: it cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder: give --out a folder for the cohort")
    for sub in ["reports", ".nape-cohort", *(f"parts/{t}" for t in TABLES)]:
        (out / sub).mkdir(parents=True, exist_ok=True)
    return out


def cohort_key(out: Path) -> bytes:
    """The per-cohort secret, created on first use (32 random bytes, hex in ``.nape-cohort/key``)."""
    path = Path(out) / ".nape-cohort" / "key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise OutputError(f"{path} is damaged (not hex); delete it to start a new cohort (new ids)") from None
    key = secrets.token_bytes(32)
    safe_write.check_target(path)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    os.replace(tmp, path)
    return key


def keyed_id(key: bytes, kind: str, text: str, chars: int = 12) -> str:
    """A stable keyed hash of ``text``: ``chars`` hex characters of HMAC-SHA-256."""
    return hmac.new(key, f"{kind}\0{text}".encode(), hashlib.sha256).hexdigest()[:chars]


def recording_id(key: bytes, path: str) -> str:
    """The recording's id in this cohort (file names of its report and parts)."""
    return "r" + keyed_id(key, "recording", path, 15)


def pseudonym(key: bytes, wearer: str) -> str:
    """A stable pseudonym for ``wearer`` in this cohort, e.g. ``W-3fa94c1b``."""
    return "W-" + keyed_id(key, "wearer", wearer, 8)


def file_sha256(path: str | os.PathLike[str], opener=open) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB pieces (bounded memory).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        while block := f.read(HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


def settings_sha256(settings: dict, versions: dict) -> str:
    """Hash of everything besides the file that decides a recording's results."""
    text = json.dumps({"settings": settings, "versions": versions}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class State:
    """What earlier runs into this folder finished: recording id → the task's summary.

    An append-only JSON-lines log (a killed client loses at most its last line); the last
    line of a recording wins; :meth:`compact` rewrites it with one line per recording.
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / ".nape-cohort" / "state.jsonl"
        self.done: dict[str, dict] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for ln in lines:
            try:
                row = json.loads(ln)
            except ValueError:
                continue  # a line cut short by a crash: that task runs again
            if isinstance(row, dict) and isinstance(row.get("recording_id"), str):
                self.done[row["recording_id"]] = row

    def record(self, row: dict) -> None:
        """Remember one finished task (appended at once)."""
        self.done[row["recording_id"]] = row
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")

    def forget(self, rid: str) -> None:
        self.done.pop(rid, None)

    def compact(self) -> None:
        safe_write.check_target(self.path)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in self.done.values()), encoding="utf-8")
        os.replace(tmp, self.path)
