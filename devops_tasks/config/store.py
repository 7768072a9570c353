"""Reads, validates, edits and merges ``.devops/config.json``.

The file is the single source of truth and is validated against ``schema.json`` before it
is used and before it is written; an edit that would make it invalid is refused and the
file is left as it was. The settings a command acts on are, lowest first: built-in
defaults, the file's base settings, ``environments.<env>`` from the file, then
``DEVOPS__*`` environment variables (for CI), then command-line flags.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durable import FileLock, FileRefused, atomic_write, parse_json, read_bounded, write_json
from ..errors import DevopsError, ErrorCode, describe_problem

if TYPE_CHECKING:
    from jsonschema import ValidationError

    from ..project import Project

__all__ = ["DEFAULTS", "ENV_PREFIX", "ConfigStore", "Problem", "Settings", "parse_value"]

ENV_PREFIX = "DEVOPS__"
DEFAULT_ENVIRONMENT = "production"
#: A config is a few kilobytes; the cap only stops a hostile file from filling memory.
MAX_CONFIG_BYTES = 1 << 20

DEFAULTS: dict[str, Any] = {
    "platform": "local",
    "environment": DEFAULT_ENVIRONMENT,
    "build": {"command": None, "dir": "dist"},
    "deployment": {
        "strategy": "rolling",
        "rollback_on_failure": True,
        "keep_releases": 5,
        "lock_timeout": 0,
        "lock_ttl": 3600,
        "canary_wait": 0,
        "max_fail": 0,
        "pre_deploy": [],
        "require_clean_git": False,
        "health_check": {
            "enabled": False,
            "expect_status": 200,
            "timeout": 10,
            "retries": 3,
            "interval": 2,
        },
    },
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what value, and what would be accepted."""

    path: str
    message: str
    value: Any = None
    allowed: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "message": self.message, "value": self.value}
        if self.allowed is not None:
            data["allowed"] = self.allowed
        return data

    def __str__(self) -> str:
        return describe_problem(self.to_dict())


@dataclass(frozen=True)
class Settings:
    """The effective settings of one environment, after every layer was merged and checked."""

    environment: str
    data: Mapping[str, Any] = field(repr=False)

    @property
    def platform(self) -> str:
        return str(self.data["platform"])

    def get(self, key: str, default: Any = None) -> Any:
        """The value at dotted ``key`` (``deployment.keep_releases``), or ``default``."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str) -> dict[str, Any]:
        """A platform's own section (``{}`` when the file has none)."""
        return dict(self.data.get(name) or {})

    def targeting(self, platform: str | None) -> Settings:
        """These settings with ``platform`` as the target (``deploy.<platform>``, whatever
        the config names); None: as they are."""
        if not platform or platform == self.platform:
            return self
        return Settings(self.environment, {**self.data, "platform": platform})


def parse_value(text: str) -> Any:
    """A command-line or environment value, typed: JSON when it parses, else the string.

    ``NaN`` and ``Infinity`` stay text: they are not JSON, and no setting wants them.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # nested too deeply for a setting: keep it as text
        return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@functools.lru_cache(maxsize=1)
def _schema_text() -> bytes:
    # beside this module (importlib.resources would cost every command ~15 ms of imports)
    return Path(__file__).with_name("schema.json").read_bytes()


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema  # noqa: PLC0415 - ~100 ms to import; only commands that read config pay it

    return jsonschema.Draft202012Validator(json.loads(_schema_text()))


def _fingerprint(data: Any) -> str:
    """What a document and the schema it was checked against are, as one digest."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(_schema_text())
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def schema_problems(data: Any) -> list[Problem]:
    """Every way ``data`` breaks the schema, each naming its path and the allowed values."""
    try:
        errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))
    except RecursionError:
        return [Problem("", "is nested too deeply to be a configuration")]
    return [problem for error in errors for problem in _explain(error)]


def _dotted(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _explain(error: ValidationError) -> list[Problem]:
    path = list(error.path)
    kind = error.validator
    if kind in ("enum", "const"):
        allowed = list(error.validator_value) if kind == "enum" else [error.validator_value]
        return [
            Problem(_dotted(path), f"{error.instance!r} is not allowed", error.instance, allowed)
        ]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [Problem(_dotted([*path, key]), "is required but missing") for key in missing]
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = _known_keys(error.schema) or []
        unknown = [k for k in error.instance if k not in known]
        return [
            Problem(_dotted([*path, key]), _unknown(key, known), error.instance[key])
            for key in unknown
        ] or [Problem(_dotted(path), error.message)]
    if kind == "type":
        expected = error.validator_value
        return [Problem(_dotted(path), f"must be of type {expected}", error.instance)]
    return [Problem(_dotted(path), error.message, error.instance)]


def _unknown(key: Any, known: list[str]) -> str:
    """An unknown key's problem, with the known key it most looks like: the whole list of
    known keys, once for every unknown one, would make a typo's answer a page long."""
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return "is not a known setting" + (f" (did you mean {close[0]}?)" if close else "")


def _known_keys(schema: Mapping[str, Any]) -> list[str] | None:
    properties = dict(schema.get("properties", {}))
    if "$ref" in schema:
        properties.update(_validator().schema["$defs"]["settings"]["properties"])
    return sorted(properties) or None


def _parse(raw: bytes, source: str) -> dict[str, Any]:
    """``raw`` as a JSON object, or CONFIG_INVALID saying where and why it breaks.

    Strict where Python's parser is lenient: UTF-8 only, no NaN or Infinity, no key twice.
    """
    try:
        data = parse_json(raw.decode("utf-8"))
    except ValueError as exc:
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            f"{source} is not valid JSON: {exc}",
            "Fix the file where the message says: UTF-8 JSON, numbers without NaN or "
            "Infinity, each key once (nothing was changed).",
            problems=[{"path": "", "message": str(exc), "value": None}],
        ) from None
    if not isinstance(data, dict):
        raise _invalid(
            [Problem("", "must be a JSON object", data)],
            source,
            'Make it a JSON object, e.g. {"version": 1, "platform": "local"}.',
        )
    return data


def _invalid(problems: list[Problem], source: str, fix: str) -> DevopsError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return DevopsError(
        ErrorCode.CONFIG_INVALID,
        f"{source}: {first}{more}",
        fix,
        problems=[p.to_dict() for p in problems],
    )


#: Where the digests of valid documents are kept, and how many.
_CHECKED = "config-checked"
_CHECKED_KEPT = 16


def _read_digests(path: Path) -> list[str]:
    try:
        return read_bounded(path, _CHECKED_KEPT * 65).decode("ascii").split()
    except (OSError, FileRefused, UnicodeDecodeError):
        return []


class ConfigStore:
    """The project's ``.devops/config.json``: read, checked, edited and written safely."""

    def __init__(self, project: Project, environ: Mapping[str, str] | None = None) -> None:
        self.project = project
        self.path = project.config_path
        self.environ = os.environ if environ is None else environ
        #: Digests of documents found valid (see :meth:`_problems`), once read.
        self._valid: list[str] | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def _display_path(self) -> str:
        return os.path.relpath(self.path)

    def read(self) -> dict[str, Any]:
        """The file's content, checked against the schema."""
        data = self.read_unchecked()
        self.check(data, self._display_path())
        return data

    def read_unchecked(self) -> dict[str, Any]:
        """The file's content, parsed but not yet checked against the schema."""
        try:
            raw = read_bounded(self.path, MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise DevopsError(
                ErrorCode.CONFIG_MISSING,
                f"No config at {self._display_path()}",
                "Run `devops init --platform local` (or another platform) to create one.",
            ) from None
        except FileRefused as exc:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"{self._display_path()} {exc}",
                "Replace it with the JSON config file (`devops init --force` writes a new one).",
            ) from None
        return _parse(raw, self._display_path())

    def import_file(self, source: Path, force: bool = False) -> None:
        """Replace the config with the file at ``source``, after checking it in full."""
        try:
            raw = read_bounded(source, MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise DevopsError(
                ErrorCode.NOT_FOUND,
                f"No file {source}",
                "Check the path of the file to import.",
            ) from None
        except FileRefused as exc:
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{source} {exc}",
                "Import a JSON config file, such as one `devops config.export --output FILE` "
                "wrote.",
            ) from None
        data = _parse(raw, str(source))
        self.check_all(data)
        with self._lock():
            if self.exists() and not force:
                raise DevopsError(
                    ErrorCode.CONFIG_EXISTS,
                    f"{self._display_path()} already exists",
                    "Pass --force to replace it (export it first to keep a copy).",
                )
            write_json(self.path, data, sweep=True)

    def check(self, data: dict[str, Any], source: str) -> None:
        """Raise CONFIG_INVALID naming every problem in ``data`` (nothing is written)."""
        problems = self._problems(data)
        if problems:
            raise _invalid(
                problems,
                source,
                "Correct the setting(s) named above; `devops config.validate` re-checks.",
            )

    def check_all(self, data: dict[str, Any]) -> None:
        """Check ``data`` as a whole and every environment's merged settings (the file alone)."""
        self.check(data, "new config")
        for name in self.environment_names(data):
            self.settings(name, data, use_environ=False)

    def write(self, data: dict[str, Any]) -> None:
        """Check ``data`` in full, then replace the file atomically under the config lock."""
        self.check_all(data)
        with self._lock():
            write_json(self.path, data, sweep=True)

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Read, ``change`` and write the file as one step under the config lock.

        Reading inside the lock is what keeps concurrent edits of different settings from
        overwriting each other. Returns the new content; on any problem nothing is written.
        """
        with self._lock():
            data = change(self.read())
            self.check_all(data)
            write_json(self.path, data, sweep=True)
        return data

    def _lock(self) -> FileLock:
        return FileLock(self.project.locks_dir / "config.lock")

    @staticmethod
    def environment_names(data: Mapping[str, Any]) -> list[str]:
        return sorted(data.get("environments", {}))

    def settings(
        self,
        environment: str | None = None,
        data: dict[str, Any] | None = None,
        *,
        use_environ: bool = True,
    ) -> Settings:
        """Effective settings for ``environment``: defaults < file < environments.<env> < env vars.

        With no config file at all, the built-in defaults (the ``local`` target) apply.
        ``use_environ=False`` leaves the ``DEVOPS__*`` variables out (to judge the file alone).
        """
        if data is None:
            data = self.read() if self.exists() else {"version": 1, "platform": "local"}
        overrides = self._environment_overrides() if use_environ else []
        named = [raw for _, parts, raw in overrides if parts == ["environment"]]
        name = (
            environment
            or (named[0] if named else None)
            or data.get("environment")
            or DEFAULT_ENVIRONMENT
        )
        base = {k: v for k, v in data.items() if k not in ("environments", "version", "project")}
        merged = deep_merge(DEFAULTS, base)
        merged = deep_merge(merged, data.get("environments", {}).get(name, {}))
        for variable, parts, raw in overrides:
            merged = _override(merged, variable, parts, raw)
        merged["environment"] = name
        problems = self._problems({"version": 1, **merged})
        if problems:
            raise _invalid(
                problems,
                f"settings for environment {name!r}",
                "Correct the setting in environments."
                f"{name} or in the {ENV_PREFIX}* environment variables.",
            )
        if "project" in data:
            merged["project"] = data["project"]
        return Settings(name, merged)

    def _problems(self, data: dict[str, Any]) -> list[Problem]:
        """:func:`schema_problems`, skipped for a document this project already found valid.

        Loading the validator costs more than the rest of a no-op deploy, and the config
        rarely changes: the digests of the last valid documents (each with the schema it
        met) are kept in ``.devops/cache/config-checked``. A digest that is not there, or a
        cache that cannot be read, means the document is checked.
        """
        if self._valid is None:
            self._valid = _read_digests(self.project.cache_dir / _CHECKED)
        fingerprint = _fingerprint(data)
        if fingerprint in self._valid:
            return []
        problems = schema_problems(data)
        if not problems and self.project.state_dir.is_dir():
            self._valid = [*self._valid[-(_CHECKED_KEPT - 1) :], fingerprint]
            with contextlib.suppress(OSError):  # a cache: never a reason to fail
                text = "\n".join(self._valid) + "\n"
                atomic_write(self.project.cache_dir / _CHECKED, text.encode("ascii"), durable=False)
        return problems

    def _environment_overrides(self) -> list[tuple[str, list[str], str]]:
        """``DEVOPS__BUILD__DIR=out`` → ``(name, ["build", "dir"], "out")``."""
        return [
            (name, [p.lower() for p in name[len(ENV_PREFIX) :].split("__")], raw)
            for name, raw in sorted(self.environ.items())
            if name.startswith(ENV_PREFIX) and name != ENV_PREFIX
        ]

    def set(self, key: str, raw: str, environment: str | None = None) -> Any:
        """Set dotted ``key`` to ``raw`` (typed, see :func:`parse_value`) and write the file.

        With ``environment``, the value goes under ``environments.<environment>``. The whole
        result is validated first; on any problem the file is not touched. Returns the value.
        """
        if not key or any(not part for part in key.split(".")):
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{key!r} is not a dotted setting name",
                "Name a setting like deployment.keep_releases or build.dir.",
            )
        parts = (["environments", environment] if environment else []) + key.split(".")
        value: Any = None

        def change(data: dict[str, Any]) -> dict[str, Any]:
            nonlocal value
            value = _typed(raw, lambda v: _with_value(data, parts, v))
            return _with_value(data, parts, value)

        self.update(change)
        return value


def _typed(raw: str, candidate: Callable[[Any], dict[str, Any]]) -> Any:
    """``raw`` typed by :func:`parse_value`, unless the schema accepts only the text.

    ``candidate(value)`` is the whole config with the value in place; ``project`` set to
    ``2024`` stays the text "2024" because the schema wants a string there.
    """
    value = parse_value(raw)
    if value != raw and schema_problems(candidate(value)) and not schema_problems(candidate(raw)):
        return raw
    return value


def _override(merged: dict[str, Any], variable: str, parts: list[str], raw: str) -> dict[str, Any]:
    """``merged`` with one environment variable's value laid at ``parts``."""
    node: Any = merged
    for depth, part in enumerate(parts[:-1]):
        node = node.get(part, {})
        if not isinstance(node, dict):
            path = ".".join(parts[: depth + 1])
            raise _invalid(
                [
                    Problem(
                        path, f"is not an object, so {variable} cannot set a key inside it", node
                    )
                ],
                f"environment variable {variable}",
                f"Unset the variable that sets {path} to a single value, or {variable}.",
            )
    return _with_value(
        merged, parts, _typed(raw, lambda v: {"version": 1, **_with_value(merged, parts, v)})
    )


def _with_value(data: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``value`` at ``parts``, creating mappings on the way."""
    updated = copy.deepcopy(data)
    node = updated
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value
    return updated
