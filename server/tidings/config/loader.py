"""Settings: built-in defaults < config file < environment < command-line flags.

`load_settings` is the one loader. The built-in defaults are `default.toml`, shipped inside the
package beside this module (read with importlib.resources, so an installed wheel has them too).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from .schema import SettingsSchema
from .settings import Settings
from .values import ConfigError, is_loopback

ENV_PREFIX = "TIDINGS_"
DEFAULTS = resources.files(__package__) / "default.toml"


def defaults_text() -> str:
    """The packaged defaults file, comments and all (the configuration reference is its text)."""
    return DEFAULTS.read_text(encoding="utf-8")


def read_defaults() -> dict[str, Any]:
    """Every key of the packaged defaults, by section."""
    try:
        return tomllib.loads(defaults_text())
    except tomllib.TOMLDecodeError as exc:  # a broken package, not a user's mistake
        raise ConfigError(f"the packaged defaults are not valid TOML: {exc}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _environment_overrides(
    defaults: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """TIDINGS_<SECTION>_<KEY> for every scalar key of every section (feed groups excepted)."""
    overrides: dict[str, dict[str, str]] = {}
    for section, keys in defaults.items():
        if section == "feeds" or not isinstance(keys, Mapping):
            continue
        for key in keys:
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                overrides.setdefault(section, {})[key] = environ[name]
    return overrides


def _flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            if key == "value" and prefix.startswith("feeds."):  # marshmallow's Dict values
                out += _flatten_errors(value, prefix)
                continue
            out += _flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings once, at start. `overrides` are the command-line flags, by section."""
    environ = os.environ if environ is None else environ
    defaults = read_defaults()
    raw = dict(defaults)
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG") or None
    if config_file:
        raw = _merge(raw, _read_toml(Path(config_file)))
    raw = _merge(raw, _environment_overrides(defaults, environ))
    raw = _merge(
        raw,
        {
            k: {kk: vv for kk, vv in v.items() if vv is not None}
            for k, v in (overrides or {}).items()
        },
    )
    try:
        settings: Settings = SettingsSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(
            "invalid configuration: " + "; ".join(_flatten_errors(exc.messages))
        ) from None
    return settings


def check_serving(settings: Settings) -> None:
    """Refuse to serve anything but loopback with the public development secret of the packaged
    defaults: anyone could sign server tokens with it."""
    development = read_defaults()["auth"]["api_secret"]
    host = settings.server.host
    if str(settings.auth.api_secret) == development and not is_loopback(host):
        raise ConfigError(
            f"server.host {host!r} is not a loopback address and auth.api_secret is the public "
            "development secret of the built-in defaults: set your own (32+ bytes) in "
            f"{ENV_PREFIX}AUTH_API_SECRET or [auth] api_secret, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
