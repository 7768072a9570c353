"""The project's configuration: a JSON Schema, the validated file, and effective settings."""

from .store import DEFAULTS, ConfigStore, Problem, Settings, parse_value

__all__ = ["DEFAULTS", "ConfigStore", "Problem", "Settings", "parse_value"]
