"""`pip install` from a built wheel works: the package data travels in the wheel and is read from the install.

The wheel is built from a copy of the project's build inputs (pyproject.toml, README.md, src/) with
`pip wheel --no-deps --no-build-isolation`: no network (build isolation would download setuptools) and no
build/ or egg-info left in the checkout. It is installed into a fresh `python -m venv` with `--no-deps`.

That venv must not see the repository's src/, or the test would import the checkout and prove nothing, so it is
NOT created with `--system-site-packages` (the system Python lacks the dependencies anyway, and the project venv's
editable install would leak in through it). Instead one `.pth` file in the new venv names the project venv's
site-packages as a plain path: the dependencies resolve from there without network, while the `.pth` files *inside*
it — among them the editable install's, which adds src/ — are not processed, and the new venv's own site-packages
comes first on sys.path. The test checks that `mira_select` is imported from the new venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow
PKG = REPO / "src" / "mira_select"


def _run(*cmd, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", COLUMNS="200")
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    d = tmp_path_factory.mktemp("wheel")
    project = d / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", d / "dist", project, cwd=d)
    wheel = next((d / "dist").glob("mira_select-*.whl"))

    venv = d / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=d)
    py = venv / "bin" / "python"
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=d).stdout.strip())
    (site / "project_venv_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", wheel, cwd=d)
    return d, wheel, venv, site


def test_wheel_holds_the_package_data(installed):
    _, wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = {f"mira_select/{p.relative_to(PKG).as_posix()}" for p in (PKG / "prompts").rglob("*.md")}
    assert len(prompts) >= 20 and "mira_select/prompts/common.md" in prompts
    assert prompts <= names, sorted(prompts - names)  # every prompt file, the nested families included
    for asset in ("mira_select/assets/qwen2.5-coder-tokenizer.json.zst", "mira_select/assets/benchmarks.jsonl.zst",
                  "mira_select/report/template.html.j2", "mira_select/cli/__init__.py"):
        assert asset in names, asset
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "mira = mira_select.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_cli_and_package_data_come_from_the_wheel(installed):
    d, _, venv, site = installed
    helped = _run(venv / "bin" / "mira", "--help", cwd=d)
    assert "init" in helped.stdout and "teacher" in helped.stdout and "run" in helped.stdout

    probe = (
        "import mira_select, jinja2\n"
        "from mira_select.teacher.prompts import _read, prompt_version\n"
        "from mira_select.tokens import get_counter\n"
        "from mira_select.benchmarks import load_benchmarks\n"
        "env = jinja2.Environment(loader=jinja2.PackageLoader('mira_select', 'report'))\n"
        "print(mira_select.__file__)\n"
        "print(prompt_version('label', 'qa'), prompt_version('judge', 'agent'))\n"
        "print(get_counter('qwen2.5-coder').count([_read('common.md'), _read('label/base.md')]))\n"
        "print(len(load_benchmarks('bundled')), len(env.loader.get_source(env, 'template.html.j2')[0]))\n"
    )
    lines = _run(venv / "bin" / "python", "-c", probe, cwd=d).stdout.splitlines()
    assert Path(lines[0]).is_relative_to(site), lines[0]  # the wheel's copy, not the checkout's src/
    assert not Path(lines[0]).is_relative_to(REPO)

    # The same prompt files (hash) and the same bundled tokenizer (counts) as the checkout.
    from mira_select.benchmarks import load_benchmarks
    from mira_select.teacher.prompts import _read, prompt_version
    from mira_select.tokens import get_counter

    assert lines[1] == f"{prompt_version('label', 'qa')} {prompt_version('judge', 'agent')}"
    counts = get_counter("qwen2.5-coder").count([_read("common.md"), _read("label/base.md")])
    assert lines[2] == str(counts) and min(counts) > 10
    n_bench, template_chars = map(int, lines[3].split())
    assert n_bench == len(load_benchmarks("bundled")) > 100
    assert template_chars == len((PKG / "report" / "template.html.j2").read_text())
