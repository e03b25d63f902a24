"""Configuration: presets, validation and importers (see ``model`` and ``presets``)."""

from gradpimsim.config.model import (
    ConfigError,
    ControllerConfig,
    MemoryConfig,
    Organization,
    Timing,
)
from gradpimsim.config.presets import (
    from_dict,
    load_config,
    load_pim_config,
    preset,
    preset_names,
)

__all__ = [
    "ConfigError",
    "ControllerConfig",
    "MemoryConfig",
    "Organization",
    "Timing",
    "from_dict",
    "load_config",
    "load_pim_config",
    "preset",
    "preset_names",
]
