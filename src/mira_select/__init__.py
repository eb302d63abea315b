"""mira-select: MIRA (Mid-training Rubric Anchoring) data selection for mixed, multi-source corpora."""

from .config import MiraConfig, load_config
from .errors import ConfigError, MiraError
from .workspace import Workspace

__version__ = "0.1.0"
__all__ = ["MiraConfig", "load_config", "ConfigError", "MiraError", "Workspace", "Scorer", "__version__"]


def __getattr__(name: str):
    # Scorer pulls in numpy/scipy/students: load it only when asked for
    if name == "Scorer":
        from .scorer import Scorer

        return Scorer
    raise AttributeError(name)
