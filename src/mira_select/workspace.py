"""The workspace: a directory where every stage's output is a file, written atomically, marked when complete.

Why files and markers: a stage killed at any point must resume without duplicates or loss. Every artifact is
written to a temporary name in the same directory and renamed into place (rename is atomic on POSIX), and a
shard counts as done only when its marker in ``_done/<stage>/`` exists. The marker is written last and carries
the counts, so ``in == kept + dropped + quarantined`` is checked before anything is declared finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from .config import check_safe_name
from .errors import WorkspaceError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise WorkspaceError(f"missing workspace file {path}; run the stage that writes it first") from None
    except orjson.JSONDecodeError as exc:
        raise WorkspaceError(f"corrupt workspace file {path}: {exc}") from None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On failure the temporary file is removed and ``path`` is untouched, so readers never see a half file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temp_files(dirs) -> int:
    """Remove the temporary files (``.tmp-*``) that writers killed mid-write left in these directories.

    Call only while no unit writes there (before a stage's units start, or after they all finished): a killed
    worker's half file is garbage once its unit has been re-run and renamed its own output into place."""
    n = 0
    for d in {Path(d) for d in dirs}:
        for tmp in d.glob(".tmp-*") if d.is_dir() else ():
            tmp.unlink(missing_ok=True)
            n += 1
    return n


@dataclass
class Counts:
    """What a unit of work did with its input. ``n_in`` must equal the sum of the three outcomes."""

    n_in: int = 0
    kept: int = 0
    dropped: int = 0
    quarantined: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, what: str) -> None:
        if self.n_in != self.kept + self.dropped + self.quarantined:
            raise AssertionError(
                f"{what}: counts do not add up: in={self.n_in} != kept={self.kept} + dropped={self.dropped}"
                f" + quarantined={self.quarantined}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Counts":
        return cls(**d)


class Workspace:
    """Paths of every artifact, and the marker protocol. Stages ask it for paths instead of building them."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    # ---- layout -----------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "mira.yaml"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def records_dir(self, source: str) -> Path:
        return self.root / "records" / check_safe_name(source)

    def record_shard(self, source: str, index: int) -> Path:
        return self.records_dir(source) / f"part-{index:05d}.parquet"

    def record_shards(self, source: str) -> list[Path]:
        return sorted(self.records_dir(source).glob("part-*.parquet"))

    def quarantine_path(self, source: str) -> Path:
        return self.root / "quarantine" / f"{check_safe_name(source)}.jsonl"

    def work_dir(self, stage: str, *parts: str) -> Path:
        """Scratch artifacts a stage keeps between runs (e.g. per-shard quarantine parts before merging)."""
        return self.root / "_work" / stage / Path(*parts) if parts else self.root / "_work" / stage

    # ---- markers ----------------------------------------------------------------------------------------------
    def marker_path(self, stage: str, key: str) -> Path:
        return self.root / "_done" / stage / f"{key}.json"

    def is_done(self, stage: str, key: str) -> bool:
        return self.marker_path(stage, key).exists()

    def read_marker(self, stage: str, key: str) -> dict[str, Any]:
        return read_json(self.marker_path(stage, key))

    def mark_done(self, stage: str, key: str, counts: Counts, **info: Any) -> None:
        counts.check(f"{stage}/{key}")
        write_json(self.marker_path(stage, key), {"counts": counts.to_dict(), **info})

    def clear_stage(self, stage: str) -> None:
        """Forget a stage's completion (used by --force); its outputs are overwritten as it re-runs."""
        d = self.root / "_done" / stage
        if d.exists():
            for p in d.rglob("*.json"):
                p.unlink()

    def write_config(self, resolved: dict[str, Any]) -> None:
        import yaml

        atomic_write_bytes(self.config_path, yaml.safe_dump(resolved, sort_keys=False).encode())

    def manifest(self) -> dict[str, Any]:
        return read_json(self.manifest_path)


def file_digest(path: Path) -> str:
    """Content hash of a file (what a unit's freshness rests on: not its name, size or time)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
