"""The specialist registry: the one list of specialists, and the facts each one declares in its own file.

Adding a specialist is one file with one decorated class that declares its facts::

    @register_specialist("xx")
    class XXModule(SpecialistModule):
        input_kind = "frame"            # what the model takes: frame, clip or clip+audio
        vote_weight = 1.0               # its weight in the agent's fixed vote (agent.fixed_weights overrides it)
        relative_cost = 1.0             # step time relative to a frame specialist's (the costliest start first)
        widths = {"edges": 8}           # output channels of each branch, by signal name
        pseudo_fake = None              # its family's PseudoFake (interceptor/pseudo_fakes.py), or None

        def __init__(self, config: ModelConfig): ...

The class is built with the model's :class:`~interceptor.schema.ModelConfig`. Everything that lists or
weighs specialists (the launcher's ``--specialist all``, config validation, export, eval, predict, the agent's
fixed vote, the order of the parallel queue, the demo) reads this registry.

The six built-in specialists are registered by importing ``interceptor.models``, followed by the modules of the
``interceptor.specialists`` entry-point group (an installed package's own specialists). A config's
``specialist_modules`` (importable module names) are imported when the config is loaded with
``check=check_specialists`` (:func:`check_specialists`: the command line, the launcher). Nothing named by a model
file or a shard is ever imported: an export of an unregistered specialist is an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from interceptor.config import ConfigError
from interceptor.inputs import InputKind
from interceptor.pseudo_fakes import PseudoFake

if TYPE_CHECKING:
    from interceptor.schema import Config, DataConfig

SPECIALISTS: dict[str, type] = {}
ENTRY_POINT_GROUP = "interceptor.specialists"


def _check_facts(cls: type) -> None:
    """Every fact a specialist must declare, with a usable value; errors name the class and the fact."""
    where = f"specialist {cls.__module__}.{cls.__qualname__}"
    missing = [fact for fact in ("input_kind", "vote_weight", "relative_cost", "widths", "pseudo_fake")
               if not hasattr(cls, fact)]
    if missing:
        raise TypeError(f"{where} does not declare {', '.join(missing)} (see interceptor/models/registry.py)")
    try:
        cls.input_kind = InputKind(cls.input_kind)
    except ValueError:
        raise ValueError(f"{where}: input_kind {cls.input_kind!r} is not one of "
                         f"{', '.join(InputKind)}") from None
    for fact in ("vote_weight", "relative_cost"):
        value = getattr(cls, fact)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{where}: {fact} must be a non-negative number, got {value!r}")
    widths = cls.widths
    if not isinstance(widths, Mapping) or not widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths.values()):
        raise ValueError(f"{where}: widths must map each branch name to a positive channel count, got {widths!r}")
    if cls.pseudo_fake is not None and not isinstance(cls.pseudo_fake, PseudoFake):
        raise ValueError(f"{where}: pseudo_fake must be a PseudoFake family (interceptor/pseudo_fakes.py) or "
                         f"None, got {cls.pseudo_fake!r}")


def register_specialist(name: str) -> Callable[[type], type]:
    """Class decorator registering a specialist module under ``name`` (stored lowercase), its facts checked."""
    key = name.lower()

    def decorator(cls: type) -> type:
        if key in SPECIALISTS and SPECIALISTS[key] is not cls:
            raise ValueError(f"specialist {key!r} is already registered ({SPECIALISTS[key].__qualname__})")
        _check_facts(cls)
        SPECIALISTS[key] = cls
        cls.name = key
        return cls

    return decorator


def get_specialist(name: str) -> type:
    """The module class of specialist ``name`` (any case); KeyError naming the known ones otherwise."""
    try:
        return SPECIALISTS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown specialist {name!r} (known: {', '.join(SPECIALISTS)}; a specialist of your own "
                       "is registered by the config's specialist_modules or an interceptor.specialists "
                       "entry point)") from None


def specialist_names() -> list[str]:
    """The registered specialists, in registration order (the built-in six first)."""
    return list(SPECIALISTS)


def fixed_vote_weights(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every specialist's weight in the fixed vote: its declared ``vote_weight`` unless ``overrides`` sets it."""
    overrides = overrides or {}
    return {name: float(overrides.get(name, cls.vote_weight)) for name, cls in SPECIALISTS.items()}


def costliest_first(names: Iterable[str]) -> list[str]:
    """``names`` by declared ``relative_cost``, the costliest first; stable among equal costs."""
    return sorted(names, key=lambda name: -get_specialist(name).relative_cost)


def pseudo_fake_maker(specialist: str) -> PseudoFake:
    """The pseudo-fake family ``specialist`` declares (its ``pseudo_fake``); an unknown specialist, or one that
    declares none, is an error naming ``data.pseudo_fakes``."""
    try:
        maker = get_specialist(specialist).pseudo_fake
    except KeyError as err:
        raise KeyError(f"data.pseudo_fakes: {err.args[0]}") from None
    if maker is None:
        raise KeyError(f"data.pseudo_fakes: specialist {specialist!r} declares no pseudo_fake maker; "
                       "set data.pseudo_fakes=0 for it")
    return maker


def configured_pseudo_fakes(specialist: str, cfg: DataConfig) -> PseudoFake | None:
    """The family that makes ``specialist``'s pseudo-fakes under ``cfg`` (:func:`pseudo_fake_maker`), or None
    where ``data.pseudo_fakes`` is 0."""
    return pseudo_fake_maker(specialist) if cfg.pseudo_fakes > 0 else None


def load_entry_points() -> None:
    """Import the modules of the ``interceptor.specialists`` entry-point group (installed packages' specialists)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as err:  # a broken plugin is named, whatever it raised
            raise ImportError(f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP}): {err}") from err


def import_specialist_modules(modules: Iterable[str], source: str) -> None:
    """Import the modules a config lists in ``specialist_modules`` (registering their specialists); a module
    that cannot be imported, or a specialist it defines wrongly, is a ConfigError naming ``source``."""
    for module in modules:
        try:
            importlib.import_module(module)
        except (ImportError, TypeError, ValueError) as err:
            raise ConfigError(f"{source}: specialist_modules: cannot import {module!r}: {err} (it must be importable: "
                              "on PYTHONPATH or installed)") from None


def check_specialists(cfg: Config, source: str) -> None:
    """Import the config's ``specialist_modules`` (registering their specialists), then check that every
    specialist the config names is registered: ``load_config``'s ``check`` for whatever uses the registry."""
    import_specialist_modules(cfg.specialist_modules, source)
    check_specialist_names(cfg.agent.fixed_weights, "agent.fixed_weights", source)
    check_specialist_names(cfg.data.augment.preserve_pixels, "data.augment.preserve_pixels", source)


def check_specialist_names(names: Iterable[str], key: str, source: str) -> None:
    """Every name in ``names`` is a registered specialist; otherwise a ConfigError naming ``key`` and ``source``."""
    unknown = [name for name in names if name.lower() not in SPECIALISTS]
    if unknown:
        raise ConfigError(f"{source}: {key}: unknown specialist(s) {', '.join(unknown)} "
                          f"(known: {', '.join(SPECIALISTS)})")
