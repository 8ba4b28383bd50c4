"""The run's configuration: the ``Config`` dataclass, its validation, the presets per env, and the trust rule
for code a file names.

    from ppox.config import Config
"""

from ppox.config.config import DEFAULT_ENV, PRESETS, TRACED_FIELDS, Config, ConfigError, program_config, static_config

__all__ = ["Config", "ConfigError", "DEFAULT_ENV", "PRESETS", "TRACED_FIELDS", "program_config", "static_config"]
