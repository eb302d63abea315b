from pathlib import Path

import pytest

from mira_select.config import check_safe_name, load_config, parse_config
from mira_select.errors import ConfigError

from .conftest import run_mira, write_config, write_jsonl

BAD = """\
workspace: ws
sources:
  - name: good
    paths: [a.jsonl]
    formatt: code
  - name: other
    paths: "not-a-list"
    format: spreadsheet
ingest:
  max_record_chars: lots
budget:
  fraction: 2
"""


def test_every_problem_is_listed_with_path_and_line():
    with pytest.raises(ConfigError) as exc:
        parse_config(BAD, where="mira.yaml")
    msg = str(exc.value)
    assert "5 problem(s)" in msg
    assert "mira.yaml:5: sources[0].formatt: unknown key" in msg
    assert "mira.yaml:7: sources[1].paths" in msg
    assert "mira.yaml:8: sources[1].format" in msg
    assert "mira.yaml:10: ingest.max_record_chars" in msg
    assert "mira.yaml:12: budget.fraction" in msg


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "x\x07y", "..", ""])
def test_unsafe_source_names_are_refused(name):
    with pytest.raises(ValueError):
        check_safe_name(name)
    with pytest.raises(ConfigError) as exc:
        parse_config(f"sources:\n  - name: {name!r}\n    paths: [x.jsonl]\n")
    assert "sources[0].name" in str(exc.value)


def test_unsafe_name_refused_by_cli_before_anything_is_written(tmp_path: Path):
    write_jsonl(tmp_path / "x.jsonl", [{"text": "hello"}])
    cfg = write_config(tmp_path, [{"name": "../evil", "paths": ["x.jsonl"]}])
    proc = run_mira("ingest", "-c", str(cfg))
    assert proc.returncode == 2
    assert "unsafe source name '../evil'" in proc.stderr and "path separator" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ws").exists()
    assert not (tmp_path.parent / "evil").exists()


def test_duplicate_sources_and_unknown_override(tmp_path: Path):
    with pytest.raises(ConfigError, match="defined twice"):
        parse_config("sources:\n  - {name: a, paths: [x]}\n  - {name: a, paths: [y]}\n")
    with pytest.raises(ConfigError, match="unknown sources: b"):
        parse_config("sources:\n  - {name: a, paths: [x]}\ngroups:\n  override: {b: g1}\n")


def test_paths_resolve_against_config_folder(tmp_path: Path):
    cfg_path = write_config(tmp_path, [{"name": "a", "paths": ["x.jsonl"]}])
    cfg = load_config(cfg_path)
    assert cfg.workspace_path == (tmp_path / "ws").resolve()
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_errors_are_one_line_and_debug_shows_traceback(tmp_path: Path):
    cfg = write_config(tmp_path, [{"name": "a", "paths": ["nothing-here-*.jsonl"]}])
    proc = run_mira("ingest", "-c", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "source 'a'" in proc.stderr and "matches no file" in proc.stderr
    debug = run_mira("--debug", "ingest", "-c", str(cfg))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_every_command_has_help():
    top = run_mira("--help", check=True)
    for cmd in ("ingest", "manifest", "init"):
        assert cmd in top.stdout
        sub = run_mira(cmd, "--help", check=True)
        assert "Usage" in sub.stdout


EXECUTOR_BAD = """\
sources:
  - {name: a, paths: [x]}
executor:
  kind: ray
  cpus_per_task: 1.5
  gpus_per_task: 0
  max_retries: -1
  address: " "
"""


def test_ray_resources_are_validated_naming_the_field():
    """Ray's own rules (positive; a fraction only below 1) are checked before any cluster is contacted."""
    with pytest.raises(ConfigError) as exc:
        parse_config(EXECUTOR_BAD)
    msg = str(exc.value)
    assert "4 problem(s)" in msg
    assert "mira.yaml:5: executor.cpus_per_task: 1.5 is fractional and above 1" in msg
    assert "mira.yaml:6: executor.gpus_per_task: Input should be greater than 0" in msg
    assert "mira.yaml:7: executor.max_retries" in msg
    assert "mira.yaml:8: executor.address: empty address" in msg
    ok = parse_config("sources:\n  - {name: a, paths: [x]}\nexecutor: {cpus_per_task: 2, gpus_per_task: 0.25}\n")
    assert (ok.executor.cpus_per_task, ok.executor.gpus_per_task, ok.executor.max_retries) == (2, 0.25, 3)
