"""Which recordings make a cohort, and whose they are.

Two forms:

* a **CSV manifest** ``path,wearer,group[,label]`` (UTF-8; a header row naming those columns
  is optional; blank lines and lines starting with ``#`` are skipped). Relative paths are
  relative to the manifest's folder; URLs (``scheme://...``) are passed to the workers as
  they are, for shared storage read through fsspec.
* a **folder** of ``.nape`` files, searched recursively. The folders under it name the
  wearer and group: ``DIR/GROUP/WEARER/x.nape``, ``DIR/WEARER/x.nape`` (group ``all``) or
  ``DIR/x.nape`` (wearer: the file name without ``.nape``, group ``all``). Deeper files
  take the two folders just above them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..errors import NapeError

COLUMNS = ("path", "wearer", "group", "label")
DEFAULT_GROUP = "all"
MAX_FIELD_CHARS = 200  # wearer, group and label are names, not documents


class ManifestError(NapeError):
    """The cohort's folder or manifest cannot be used (one line, with the line number)."""


@dataclass(frozen=True)
class Entry:
    """One recording of the cohort: where it is and whose it is."""

    path: str  # absolute local path, or a URL
    wearer: str
    group: str
    label: str = ""
    line: int = 0  # manifest line (0: found in a folder)


def is_url(path: str) -> bool:
    """True for ``scheme://...`` paths that only the workers' fsspec can read (not ``file://``)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.isalnum() and scheme.lower() != "file" and len(scheme) > 1


def read_entries(source: str | Path) -> list[Entry]:
    """The recordings of a cohort from a folder of .nape files or a CSV manifest.

    Raises:
        ManifestError: missing source, a single recording, an empty folder, or a manifest
            line that is malformed (the message names the line).
    """
    p = Path(source)
    if p.is_dir():
        return _from_folder(p)
    if not p.exists():
        raise ManifestError(f"{source}: no such folder or manifest")
    if p.suffix.lower() == ".nape":
        raise ManifestError(f"{source} is one recording; nape cohort takes a folder of .nape files or a CSV "
                            "manifest (nape analyse reads one recording)")
    return _from_csv(p)


def _from_folder(root: Path) -> list[Entry]:
    files = sorted(q for q in root.rglob("*.nape") if q.is_file())
    if not files:
        raise ManifestError(f"{root}: no .nape recordings in this folder or below it")
    out = []
    for f in files:
        parts = f.relative_to(root).parts
        if len(parts) >= 3:
            group, wearer = parts[-3], parts[-2]
        elif len(parts) == 2:
            group, wearer = DEFAULT_GROUP, parts[0]
        else:
            group, wearer = DEFAULT_GROUP, f.stem
        out.append(Entry(str(f.resolve()), wearer, group))
    return out


def _from_csv(path: Path) -> list[Entry]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read the manifest: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a CSV manifest (not UTF-8 text); expected lines path,wearer,group[,label]") from None
    if "\x00" in text:
        raise ManifestError(f"{path}: not a CSV manifest (binary data); expected lines path,wearer,group[,label]")
    base = path.resolve().parent
    out: list[Entry] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise ManifestError(f"{path} line {reader.line_num}: not readable CSV: {e}") from None
        line = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not out and not seen and [c.lower() for c in cells[:3]] == ["path", "wearer", "group"]:
            continue  # header row
        entry = _entry(path, line, cells, base)
        if entry.path in seen:
            raise ManifestError(f"{path} line {line}: {cells[0]} is already listed on line {seen[entry.path]}")
        seen[entry.path] = line
        out.append(entry)
    if not out:
        raise ManifestError(f"{path}: the manifest lists no recordings (expected lines path,wearer,group[,label])")
    return out


def _entry(path: Path, line: int, cells: list[str], base: Path) -> Entry:
    where = f"{path} line {line}"
    if len(cells) not in (3, 4):
        raise ManifestError(f"{where}: expected path,wearer,group[,label], got {len(cells)} field"
                            f"{'s' if len(cells) != 1 else ''}")
    rec, wearer, group = cells[:3]
    label = cells[3] if len(cells) == 4 else ""
    for name, value in (("path", rec), ("wearer", wearer), ("group", group)):
        if not value:
            raise ManifestError(f"{where}: empty {name}")
    for name, value in (("wearer", wearer), ("group", group), ("label", label)):
        if len(value) > MAX_FIELD_CHARS or any(ord(ch) < 32 for ch in value):
            raise ManifestError(f"{where}: {name} must be at most {MAX_FIELD_CHARS} printable characters")
    if rec.lower().startswith("file://"):
        rec = rec[len("file://"):]
    if not is_url(rec):
        rec = str((base / rec).resolve()) if not Path(rec).is_absolute() else str(Path(rec))
    return Entry(rec, wearer, group, label, line)
