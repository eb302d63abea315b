"""Third-party output stays off unless asked for (`--verbose`), and a failing noisy step still shows its output."""

import subprocess
import sys
import textwrap

NOISE = ("LOAD REPORT", "Encoding tokens", "Loading weights", "UNEXPECTED")

_STEP = textwrap.dedent("""
    import os, sys
    from mira_select import quiet
    quiet.configure(verbose={verbose})
    with quiet.captured_output("a chatty step"):
        os.write(1, b"C-LEVEL STDOUT\\n"); os.write(2, b"C-LEVEL STDERR\\n"); print("PY STDOUT")
        if {fail}:
            raise SystemExit("step failed")
    print("after the step")
""")


def _run(verbose: bool, fail: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _STEP.format(verbose=verbose, fail=fail)],
                          capture_output=True, text=True, timeout=60)


def test_captured_step_is_silent_when_it_succeeds_and_shown_when_it_fails():
    ok = _run(verbose=False, fail=False)
    assert ok.returncode == 0 and ok.stdout == "after the step\n" and ok.stderr == ""
    bad = _run(verbose=False, fail=True)
    assert bad.returncode != 0
    assert "output of a chatty step (failed)" in bad.stderr
    assert "C-LEVEL STDOUT" in bad.stderr and "C-LEVEL STDERR" in bad.stderr and "PY STDOUT" in bad.stderr
    shown = _run(verbose=True, fail=False)
    assert "C-LEVEL STDOUT" in shown.stdout and "C-LEVEL STDERR" in shown.stderr


def test_first_use_of_the_embedder_prints_one_line_of_ours(tmp_path):
    """Distilling the packaged MiniLM prints a transformers load report and ~100 progress bars (measured); with the
    CLI's default (quiet) only our line about it remains."""
    code = ("from mira_select import quiet; quiet.configure(False)\n"
            "from mira_select.embed import get_embedder\n"
            "print(get_embedder('minilm-static').encode(['a b']).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "MIRA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(1, 256)"
    assert out.stderr.strip().startswith("preparing the default embedder once") and out.stderr.count("\n") == 1
    for noise in NOISE:
        assert noise not in out.stdout + out.stderr
    assert (tmp_path / "embed" / "minilm-static-256" / "model.safetensors").exists()
