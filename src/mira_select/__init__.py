"""mira-select: MIRA (Mid-training Rubric Anchoring) data selection for mixed, multi-source corpora."""

from .config import MiraConfig, load_config
from .errors import ConfigError, MiraError
from .workspace import Workspace

__version__ = "0.1.0"
__all__ = ["MiraConfig", "load_config", "ConfigError", "MiraError", "Workspace", "__version__"]
