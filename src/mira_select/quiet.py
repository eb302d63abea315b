"""Third-party output off by default: a run shows our stage lines, our progress bars and our warnings only.

The libraries we drive (transformers, sentence-transformers, model2vec, datasets, datatrove, Ray, torch) each print
their own load reports, progress bars and advisory warnings; between our lines they bury what matters to the user.
``mira --verbose`` (or ``--debug``) leaves them all on. A noisy one-off step (distilling the embedder on first use)
runs with its output captured at the file-descriptor level and shown only if the step fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator

# Environment switches the libraries read when they are imported (we import them lazily, after this is set).
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "LOGURU_LEVEL": "WARNING",  # datatrove logs every block start through loguru at INFO
    "RAY_DEDUP_LOGS": "1",
}
QUIET_LOGGERS = ("transformers", "sentence_transformers", "model2vec", "datasets", "huggingface_hub", "torch",
                 "ray", "filelock", "urllib3", "httpx")
QUIET_WARNINGS = r"(transformers|sentence_transformers|model2vec|torch|datasets|huggingface_hub|sklearn)(\.|$)"

_state = {"verbose": False}


def configure(verbose: bool) -> None:
    """Called once by the CLI before any command runs; the Python API leaves the caller's logging alone."""
    _state["verbose"] = verbose
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=QUIET_WARNINGS)


def is_verbose() -> bool:
    return _state["verbose"]


@contextlib.contextmanager
def captured_output(step: str, echo: bool = True) -> Iterator[list[str]]:
    """Run a chatty third-party step with stdout/stderr (file descriptors, so C extensions too) captured; on an
    exception the captured tail is printed to stderr before it propagates, so nothing needed for a diagnosis is lost.
    ``echo=False``: the tail is put in the yielded list instead, for a caller that names the cause in its own error.
    """
    failed: list[str] = []
    if _state["verbose"]:
        yield failed
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield failed
        except BaseException:
            _restore(saved)
            sink.seek(0)
            tail = sink.read()[-4000:].decode("utf-8", errors="replace")
            failed.append(tail)
            if echo:
                sys.stderr.write(f"--- output of {step} (failed) ---\n{tail}\n")
            raise
        finally:
            _restore(saved)


def _restore(saved: list[int]) -> None:
    if saved[0] < 0:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    os.close(saved[0])
    os.close(saved[1])
    saved[0] = saved[1] = -1
