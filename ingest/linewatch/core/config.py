"""The one validated configuration object.

A YAML file (``--config FILE``, else ``$LINEWATCH_CONFIG``, else built-in single-machine defaults) is
validated by pydantic with ``extra="forbid"``, so a typo is a start-up error that names the key path.
Any key can be overridden by an environment variable ``LINEWATCH_<SECTION>__<KEY>`` (``__`` separates
levels, e.g. ``LINEWATCH_MQTT__PORT=8883``), which is how systemd units and containers set secrets.
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from linewatch.core.config_sections import (
    DEFAULT_INGEST_METRICS_PORT,
    DEFAULT_SERVE_METRICS_PORT,
    AlertConfig,
    AssetGroupConfig,
    CalibrationConfig,
    CompactionConfig,
    DecoderName,
    DetectorConfig,
    IngestConfig,
    LoggingConfig,
    LogLevel,
    MetricsEndpoint,
    ModelsConfig,
    MqttConfig,
    ReconnectConfig,
    ServeConfig,
    StorageConfig,
    Subscription,
    TlsConfig,
    TrainingConfig,
    ValidationConfig,
    WindowConfig,
)
from linewatch.core.paths import CONFIG_ENV, DEFAULT_HOME

__all__ = [
    "DEFAULT_INGEST_METRICS_PORT",
    "DEFAULT_SERVE_METRICS_PORT",
    "AlertConfig",
    "AssetGroupConfig",
    "CalibrationConfig",
    "CompactionConfig",
    "ConfigError",
    "DecoderName",
    "DetectorConfig",
    "IngestConfig",
    "LinewatchConfig",
    "LogLevel",
    "LoggingConfig",
    "MetricsEndpoint",
    "ModelsConfig",
    "MqttConfig",
    "ReconnectConfig",
    "ServeConfig",
    "StorageConfig",
    "Subscription",
    "TlsConfig",
    "TrainingConfig",
    "ValidationConfig",
    "WindowConfig",
    "config_json_schema",
    "config_path",
    "describe_yaml_error",
    "format_settings_error",
    "format_validation_error",
    "load_config",
    "read_yaml",
]


class LinewatchConfig(BaseSettings):
    """Everything linewatch reads at start-up. Every key has a working single-machine default."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="LINEWATCH_",
        env_nested_delimiter="__",
        case_sensitive=False,
        validate_default=True,
    )

    home: Path = Field(
        DEFAULT_HOME, description="Base directory for state (env LINEWATCH_HOME); default 'var' below the cwd."
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker connection.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where data lives.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="The ingest daemon.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="Asset groups and their models.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The scoring daemon.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log format and levels.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (the file's values arrive as init kwargs); no .env files.
        return (env_settings, init_settings)

    @property
    def data_root(self) -> Path:
        """The storage root: ``storage.root`` or ``<home>/data``."""
        return self.storage.root if self.storage.root is not None else self.home / "data"


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` lists ``key.path: reason`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid configuration in {source}:\n" + "\n".join(f"  {p}" for p in problems))


#: Key names whose values are never echoed in an error: error output ends up in tickets and chat.
_SECRET_WORDS = ("password", "secret", "token", "key")


def _hides_value(item: Mapping[str, Any]) -> bool:
    """An unknown key may be a misspelt secret (``pasword: ...``): neither it nor a secret-ish key shows its value."""
    if item.get("type") == "extra_forbidden":
        return True
    return any(word in str(part).lower() for part in item.get("loc", ()) for word in _SECRET_WORDS)


def format_validation_error(error: ValidationError, env: Mapping[str, str] | None = None) -> list[str]:
    """One readable line per problem, starting with the dotted key path (and the variable, when the value
    came from the environment)."""
    env = os.environ if env is None else env
    env_keys = {key.upper() for key in env}
    lines = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        if isinstance(got, dict | list) or got is None:
            shown = ""
        elif _hides_value(item):
            shown = " (value hidden)"
        else:
            shown = f" (got {str(got)[:60]!r})"
        env_name = "LINEWATCH_" + "__".join(str(part) for part in item["loc"][:2]).upper()
        origin = f" [from environment {env_name}]" if env_name in env_keys else ""
        lines.append(f"{path}: {item['msg']}{shown}{origin}")
    return lines


def _is_section(annotation: Any) -> bool:
    """Whether an environment value for this field is parsed as JSON (a section or a list), not as a scalar."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_section(arg) for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) in (list, dict, tuple, set) or annotation in (list, dict, tuple, set):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _env_target(name: str) -> tuple[str, Any] | None:
    """The dotted key path and annotation a ``LINEWATCH_A__B`` variable sets, or None if it names no key."""
    model: Any = LinewatchConfig
    parts = name[len("LINEWATCH_") :].lower().split("__")
    annotation: Any = None
    for i, part in enumerate(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        if i < len(parts) - 1:
            args = [a for a in get_args(annotation) if a is not type(None)]
            model = args[0] if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1 else annotation
    return ".".join(parts), annotation


def format_settings_error(error: SettingsError, env: Mapping[str, str] | None = None) -> list[str]:
    """Name the variable that set a whole section to something that is not JSON (never its value, which may be
    a secret); pydantic-settings itself only names the top-level field."""
    env = os.environ if env is None else env
    match = re.search(r'field "([^"]+)"', str(error))
    field = match.group(1) if match else "(environment)"
    lines = []
    for name, value in sorted(env.items()):
        upper = name.upper()
        if not upper.startswith(f"LINEWATCH_{field.upper()}"):
            continue
        target = _env_target(upper)
        if target is None or not _is_section(target[1]):
            continue
        try:
            json.loads(value)
        except ValueError:
            lines.append(
                f"{target[0]}: not JSON, which a section or list needs (a section's keys can also be set one "
                f"by one: {upper}__<KEY>) [from environment {upper}]"
            )
    return lines or [f"{field}: {error} [from environment]"]


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """One line (``line L, column C: problem``) instead of PyYAML's multi-line excerpt of the file."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    reason = getattr(exc, "problem", None) or str(exc)
    return f"{where}{reason}"


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping safely (``yaml.safe_load``), with errors that say where."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"(YAML) {describe_yaml_error(exc)}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"(top level): expected a mapping of sections, got {type(data).__name__}"])
    return data


def config_path(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """``--config`` if given, else ``$LINEWATCH_CONFIG``, else None (built-in defaults)."""
    if explicit is not None:
        return explicit
    env = os.environ if env is None else env
    value = env.get(CONFIG_ENV, "").strip()
    return Path(value) if value else None


def load_config(path: Path | None = None) -> LinewatchConfig:
    """Load and validate the configuration; raise :class:`ConfigError` naming every bad key."""
    resolved = config_path(path)
    data = read_yaml(resolved) if resolved is not None else {}
    source = str(resolved) if resolved is not None else "built-in defaults and environment"
    try:
        return LinewatchConfig(**data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from exc
    except SettingsError as exc:
        raise ConfigError(source, format_settings_error(exc)) from exc


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file (for editors and `linewatch config schema`)."""
    return LinewatchConfig.model_json_schema()
