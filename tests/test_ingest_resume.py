"""Kill -9 mid-ingest, re-run: same shards as a clean run, finished shards untouched; a finished run is a no-op."""

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import zstandard

from .conftest import DEMO_CORPUS, run_mira, write_config, write_jsonl

N_FILES = 6


def _multi_file_source(dst: Path) -> None:
    """Real records (Python files from the demo corpus) split over several input files, with a duplicate id."""
    with open(DEMO_CORPUS / "code_python_pypi.jsonl.zst", "rb") as fh:
        lines = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8").read().splitlines()
    per = len(lines) // N_FILES
    for i in range(N_FILES):
        chunk = [l.encode() for l in lines[i * per:(i + 1) * per]]
        if i == 3:
            chunk.append(lines[0].encode())  # same id as a record of file 0: quarantined after a resume too
        write_jsonl(dst / f"part{i}.jsonl.zst", chunk, compress="zst")


def _snapshot(ws: Path) -> dict[str, list]:
    return {p.name: pq.read_table(p).to_pylist() for p in sorted((ws / "records" / "py").glob("part-*.parquet"))}


def test_kill_during_ingest_then_resume_equals_clean_run(tmp_path: Path):
    _multi_file_source(tmp_path / "in")
    sources = [{"name": "py", "paths": ["in/*.jsonl.zst"]}]
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    for d in (clean_dir, killed_dir):
        d.mkdir()
        shutil.copytree(tmp_path / "in", d / "in")
        write_config(d, sources, ingest={"exclude_fields": ["group", "format", "meta.lowq_kind"]})
    run_mira("ingest", "-c", str(clean_dir / "mira.yaml"), "-w", "1", "-q", check=True)

    done_before = _kill_after_units(killed_dir, 2, poll=0.05)
    assert 2 <= len(done_before) < N_FILES, "the kill must land mid-run"
    shard_dir = killed_dir / "ws" / "records" / "py"
    mtimes = {name: (shard_dir / f"{name}.parquet").stat().st_mtime_ns for name in done_before}

    again = run_mira("ingest", "-c", str(killed_dir / "mira.yaml"), "-w", "1", check=True)
    assert f"{N_FILES - len(done_before)} file(s) processed, {len(done_before)} already complete" in again.stdout
    for name, mtime in mtimes.items():
        if name != "part-00003":  # the only shard the cross-file duplicate pass may rewrite
            assert (shard_dir / f"{name}.parquet").stat().st_mtime_ns == mtime, name

    clean, resumed = _snapshot(clean_dir / "ws"), _snapshot(killed_dir / "ws")
    assert list(resumed) == [f"part-{i:05d}.parquet" for i in range(N_FILES)]
    assert resumed == clean
    ids = [r["id"] for rows in resumed.values() for r in rows]
    assert len(ids) == len(set(ids))
    assert not list(shard_dir.glob(".tmp-*")), "temporary files of the killed run are cleaned up"
    m_clean = (clean_dir / "ws" / "quarantine" / "py.jsonl").read_text().splitlines()
    m_res = (killed_dir / "ws" / "quarantine" / "py.jsonl").read_text().splitlines()
    assert m_clean == m_res and len(m_res) == 1 and "duplicate id" in m_res[0]


def test_rerun_of_completed_ingest_does_no_work(tmp_path: Path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": str(i), "text": f"text {i}"} for i in range(10)])
    cfg = write_config(tmp_path, [{"name": "a", "paths": ["a.jsonl"]}])
    first = run_mira("ingest", "-c", str(cfg), check=True)
    assert "1 file(s) processed" in first.stdout
    ws = tmp_path / "ws"
    stamps = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file() and p.name != "mira.yaml"}
    second = run_mira("ingest", "-c", str(cfg), check=True)
    assert "nothing to do" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # Changing how a source is read invalidates its shards: the next run redoes them.
    cfg.write_text(cfg.read_text().replace("name: a", "name: a\n  format: code"))
    third = run_mira("ingest", "-c", str(cfg), check=True)
    assert "1 file(s) processed" in third.stdout
    assert pq.read_table(ws / "records" / "a" / "part-00000.parquet").column("format").unique().to_pylist() == ["code"]


def test_kill_while_a_split_file_is_half_done_then_resume_equals_clean_run(tmp_path: Path):
    """One plain JSONL file cut into units; SIGKILL after a few of them: the rest run, nothing is redone twice."""
    with open(DEMO_CORPUS / "code_python_pypi.jsonl.zst", "rb") as fh:
        lines = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh)).read().splitlines()[:1000]
    lines.insert(900, lines[30])  # a repeat in a late unit of an id of the first: quarantined after the resume too
    sources = [{"name": "py", "paths": ["in/big.jsonl"]}]
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    for d in (clean_dir, killed_dir):
        write_jsonl(d / "in" / "big.jsonl", lines)
        write_config(d, sources, ingest={"exclude_fields": ["group", "format", "meta.lowq_kind"],
                                         "unit_bytes": 400_000})
    run_mira("ingest", "-c", str(clean_dir / "mira.yaml"), "-w", "1", "-q", check=True)
    n_units = len(list((clean_dir / "ws" / "records" / "py").glob("part-00000-*.parquet")))
    assert n_units >= 10

    done_before = _kill_after_units(killed_dir, 3, poll=0.005)
    assert 3 <= len(done_before) < n_units, "the kill must land while the file is half done"
    shard_dir = killed_dir / "ws" / "records" / "py"
    mtimes = {name: (shard_dir / f"{name}.parquet").stat().st_mtime_ns for name in done_before}

    again = run_mira("ingest", "-c", str(killed_dir / "mira.yaml"), "-w", "1", check=True)
    assert f"1 file(s) processed, 0 already complete ({n_units - len(done_before)} unit(s) run)" in again.stdout
    for name, mtime in mtimes.items():  # finished units are not redone (the first holds no repeat to remove)
        assert (shard_dir / f"{name}.parquet").stat().st_mtime_ns == mtime, name
    assert _snapshot(killed_dir / "ws") == _snapshot(clean_dir / "ws")
    assert not list(shard_dir.glob(".tmp-*"))
    q_clean = (clean_dir / "ws" / "quarantine" / "py.jsonl").read_text().splitlines()
    assert (killed_dir / "ws" / "quarantine" / "py.jsonl").read_text().splitlines() == q_clean
    assert len(q_clean) == 1 and '"line":901' in q_clean[0] and "(first at line 31)" in q_clean[0]


def _kill_after_units(d, units: int, poll: float) -> list[str]:
    """Start `mira ingest` in ``d`` as a real process, SIGKILL it once ``units`` units of source "py" are marked
    done; -> the units finished before the kill."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mira_select", "ingest", "-c", str(d / "mira.yaml"), "-w", "1",
                             "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = d / "ws" / "_done" / "ingest" / "py"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(markers.glob("part-*.json"))) < units:
        time.sleep(poll)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return sorted(p.stem for p in markers.glob("part-*.json"))
