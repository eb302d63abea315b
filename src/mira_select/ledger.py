"""One freshness rule for every stage: a unit of work is current iff its recorded inputs equal its inputs now.

Each stage describes a unit by *named* inputs — a config section, the content digest of an input file, the
recorded fingerprint of an upstream unit, the version of its own logic — and its outputs. The ledger digests every
input, writes the digests into the unit's completion marker (``_done/<stage>/<key>.json``) when the unit finishes,
and later answers, for the same description: current, stale (and *which* inputs changed), or missing. Stages never
compare fingerprints themselves, so `mira run`, `mira status` and every stage give the same answer, and a change
redoes exactly the units whose inputs it touches (and, through their recorded fingerprints, what depends on them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import orjson

from .workspace import Counts, Workspace, file_digest

CURRENT, STALE, MISSING = "current", "stale", "missing"


def _content(value: Any) -> Any:
    """Paths (at any depth) by their content — never their location, so a moved or copied workspace stays current."""
    if isinstance(value, Path):
        return {"file": file_digest(value) if value.is_file() else "absent"}
    if isinstance(value, dict):
        return {k: _content(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_content(v) for v in value]
    return value


def digest(value: Any) -> str:
    """Digest of an input value: files by content, everything else as sorted JSON."""
    if isinstance(value, Path):
        return file_digest(value) if value.is_file() else "absent"
    data = orjson.dumps(_content(value), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class Ref:
    """An input that is another stage's unit: stands for that unit's recorded fingerprint, and makes it a
    dependency, so a stale upstream unit shows its dependents as stale too (`mira status`)."""

    stage: str
    key: str


@dataclass(frozen=True)
class Unit:
    """One unit of a stage: its marker key, its named inputs (digested once, here), the files it writes and the
    upstream units it reads.

    ``private``: names of inputs that only change what no dependent reads (a report flag written beside the labels):
    a change to them redoes this unit but leaves its fingerprint, so its dependents stay current."""

    stage: str
    key: str
    inputs: Mapping[str, str]
    outputs: tuple[Path, ...] = ()
    deps: tuple[tuple[str, str], ...] = ()
    private: frozenset[str] = frozenset()

    @classmethod
    def of(cls, stage: str, key: str, inputs: Mapping[str, Any], outputs: Sequence[Path | str] = (),
           deps: Sequence[tuple[str, str]] = (), private: frozenset[str] = frozenset()) -> "Unit":
        return cls(stage, key, {name: digest(v) for name, v in sorted(inputs.items())},
                   tuple(Path(p) for p in outputs), tuple(deps), frozenset(private))

    @property
    def fingerprint(self) -> str:
        """What dependents name as this unit's input: the digest of every input but the private ones."""
        return digest({n: v for n, v in self.inputs.items() if n not in self.private})


@dataclass(frozen=True)
class Verdict:
    state: str  # current | stale | missing
    changed: tuple[str, ...] = ()  # stale: the inputs whose digest differs from the recorded one
    why: str = ""

    @property
    def current(self) -> bool:
        return self.state == CURRENT

    def reaches_dependents(self, unit: "Unit") -> bool:
        """Redoing ``unit`` can change what its dependents read: it is not current, and not only because of its
        private inputs (those leave its fingerprint as it was)."""
        return not self.current and not (self.changed and set(self.changed) <= unit.private)

    def describe(self) -> str:
        if self.state == STALE:
            return "stale: " + (", ".join(self.changed) + " changed" if self.changed else self.why)
        return self.state + (f": {self.why}" if self.why else "")


@dataclass
class Ledger:
    ws: Workspace
    _markers: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict, repr=False)

    def marker(self, stage: str, key: str) -> dict[str, Any] | None:
        if (stage, key) not in self._markers:
            self._markers[(stage, key)] = self.ws.read_marker(stage, key) if self.ws.is_done(stage, key) else None
        return self._markers[(stage, key)]

    def verdict(self, unit: Unit) -> Verdict:
        marker = self.marker(unit.stage, unit.key)
        if marker is None:
            return Verdict(MISSING, why="never completed")
        recorded = marker.get("inputs")
        if recorded is None:
            return Verdict(STALE, why="completed by a version that did not record its inputs")
        changed = tuple(sorted(n for n in set(recorded) | set(unit.inputs) if recorded.get(n) != unit.inputs.get(n)))
        if changed:
            return Verdict(STALE, changed)
        lost = [p.name for p in unit.outputs if not p.exists()]
        if lost:
            return Verdict(MISSING, why="output removed: " + ", ".join(lost[:3]))
        return Verdict(CURRENT)

    def unit(self, stage: str, key: str, inputs: Mapping[str, Any], outputs: Sequence[Path | str] = (),
             private: frozenset[str] = frozenset()) -> Unit:
        """A unit whose inputs may hold ``Ref`` values (at any depth): each becomes the referenced unit's recorded
        fingerprint (None when it never completed) and one of the unit's dependencies. ``private``: see `Unit`."""
        deps: list[tuple[str, str]] = []

        def resolve(v: Any) -> Any:
            if isinstance(v, Ref):
                deps.append((v.stage, v.key))
                return self.fingerprint(v.stage, v.key)
            if isinstance(v, dict):
                return {k: resolve(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [resolve(x) for x in v]
            return v

        return Unit.of(stage, key, {n: resolve(v) for n, v in inputs.items()}, outputs, deps, private)

    def is_current(self, unit: Unit) -> bool:
        return self.verdict(unit).current

    def record(self, unit: Unit, counts: Counts, **info: Any) -> None:
        """Mark the unit complete for exactly these inputs (call after its outputs are in place)."""
        self.ws.mark_done(unit.stage, unit.key, counts, inputs=dict(unit.inputs), fingerprint=unit.fingerprint,
                          **info)
        self._markers.pop((unit.stage, unit.key), None)

    def fingerprint(self, stage: str, key: str) -> str | None:
        """The recorded fingerprint of an upstream unit (None: not completed) — what downstream units name as input."""
        marker = self.marker(stage, key)
        return None if marker is None else marker.get("fingerprint")

    def info(self, stage: str, key: str) -> dict[str, Any]:
        marker = self.marker(stage, key)
        if marker is None:
            raise KeyError(f"{stage}/{key} has not completed")
        return marker
