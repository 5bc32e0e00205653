"""Typed configuration: YAML files load into dataclasses, with dotted CLI overrides on top.

    cfg = load_config("demo", ["train.lr=3e-4", "data.batch_size=16"])

The configs the library ships live in the checkout's top-level ``configs/``, which an installed package holds as
``interceptor/configs/`` (package data, mapped there by ``setup.py``): ``demo.yaml`` (the default), ``default.yaml``
(production), the curricula and ``deepspeed/default.json``. A bare name (``demo``, ``default``) names a packaged
config; anything else is a path.

Every key is checked against the dataclass schema: an unknown key is an error naming the key and the file, a
value of the wrong type is an error naming the key, the expected type and the value. The schema (plain
dataclasses, one per section) lives in :mod:`interceptor.schema`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent
# The packaged configs: interceptor/configs/ in an installed wheel, else the top-level configs/ of the checkout that
# interceptor/ was imported from (an editable install or PYTHONPATH).
CONFIG_DIR = next((d for d in (PACKAGE_DIR / "configs", PACKAGE_DIR.parent / "configs") if d.is_dir()),
                  PACKAGE_DIR / "configs")
DEFAULT_CONFIG = "demo"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and its source."""


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` (no dot) as a float, as users expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_path(path: str | os.PathLike) -> Path:
    """A path from a config: absolute, relative to the working directory, or else to the folder holding the
    packaged ``configs/`` (``configs/curriculum.yaml`` names the packaged curriculum from any directory, in a
    checkout or an installed package)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    packaged = CONFIG_DIR.parent / path
    return packaged if packaged.exists() else path


def config_file(config: str | os.PathLike) -> Path:
    """The YAML file ``--config`` names: a bare name (``demo``, ``default``) is a packaged config, anything else
    a path (:func:`resolve_path`)."""
    if isinstance(config, str) and re.fullmatch(r"[\w-]+", config):
        packaged = CONFIG_DIR / f"{config}.yaml"
        if not packaged.is_file():
            names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
            raise ConfigError(f"--config {config}: no packaged config of that name (packaged: {names}); "
                              "give a path to use a YAML file of your own")
        return packaged
    return resolve_path(config)


# ----------------------------------------------------------------------------------------------- typing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        key, val = typing.get_args(tp)
        return f"dict[{_type_name(key)}, {_type_name(val)}]"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    """Internal: value does not fit the type (converted to ConfigError with the key by the caller)."""


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    """Check ``value`` against ``tp`` and build nested dataclasses. Raises ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        return from_dict(tp, value, source, prefix=key)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(option, value, key, source)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item_type,) = typing.get_args(tp)[:1] or (Any,)
        items = [_convert_item(item_type, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        key_type, val_type = typing.get_args(tp)
        return {
            _convert_item(key_type, k, f"{key}.{k}", source): _convert_item(val_type, v, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config schema uses an unsupported type {tp!r} at {key}")


def _convert_item(tp: Any, value: Any, key: str, source: str) -> Any:
    try:
        return _convert(tp, value, key, source)
    except _Mismatch:
        raise ConfigError(
            f"{source}: {key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        ) from None


def from_dict(cls: type, data: dict, source: str = "<config>", prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{key}' (known keys here: {known})")
        kwargs[name] = _convert_item(hints[name], value, key, source)
    return cls(**kwargs)


def to_dict(cfg: Any) -> Any:
    """A plain, YAML-serialisable copy of a config dataclass."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


# ----------------------------------------------------------------------------------------------- overrides


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...], schema: type) -> dict:
    """Apply ``a.b.c=value`` overrides to a raw mapping; the value is parsed as YAML.

    Keys are checked against ``schema`` here so that a typo names the override, not a file.
    """
    for item in overrides:
        source = f"override '{item}'"
        if "=" not in item:
            raise ConfigError(f"{source}: expected KEY=VALUE, for example train.lr=3e-4")
        dotted, text = item.split("=", 1)
        parts = dotted.strip().split(".")
        if not all(parts):
            raise ConfigError(f"{source}: malformed key '{dotted}'")
        _check_path(schema, parts, source)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = parse_yaml(text, source) if text.strip() else ""
    return data


def _check_path(schema: type, parts: list[str], source: str) -> None:
    cls = schema
    for depth, part in enumerate(parts):
        key = ".".join(parts[: depth + 1])
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            raise ConfigError(f"{source}: unknown key '{key}'")
        cls = hints[part]
        nested = [a for a in typing.get_args(cls) if dataclasses.is_dataclass(a)]
        if nested:
            cls = nested[0]
        elif depth < len(parts) - 1 and not dataclasses.is_dataclass(cls):
            if typing.get_origin(cls) is dict:
                return  # free-form mapping below this key
            raise ConfigError(f"{source}: '{key}' is a value, not a section")


def merge(base: dict, update: dict) -> dict:
    """Recursive mapping merge: ``update`` wins; nested mappings merge key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# ----------------------------------------------------------------------------------------------- entry points


def load_config(path: str | os.PathLike | None = None, overrides=(), schema: type | None = None,
                check: Callable[[Any, str], None] | None = None) -> Any:
    """Load ``path`` (a packaged config's name or a YAML path; default: the packaged demo config) into ``schema``
    (default: :class:`~interceptor.schema.Config`) and apply dotted overrides.

    ``check(cfg, source)`` then checks it against what a layer above knows: the command line and the launcher
    pass the registry's :func:`~interceptor.models.registry.check_specialists` (imports the config's
    ``specialist_modules``, checks the specialist names it holds)."""
    from interceptor.schema import Config

    schema = schema or Config
    path = config_file(path if path is not None else DEFAULT_CONFIG)
    raw = read_yaml(path)
    source = str(path)
    from_dict(schema, raw, source)  # file errors name the file, before overrides can mask them
    raw = apply_overrides(raw, list(overrides), schema)
    source = f"{source} (with overrides)" if overrides else source
    cfg = from_dict(schema, raw, source)
    if check is not None:
        check(cfg, source)
    return cfg


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_resolved(cfg: Any, directory: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the fully resolved config next to a run's outputs, atomically."""
    from interceptor.utils import atomic_write_text

    target = Path(directory) / name
    atomic_write_text(target, dump_yaml(cfg))
    return target
