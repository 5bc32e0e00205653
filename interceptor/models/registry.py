"""The specialist registry: a name maps to its :class:`~interceptor.models.blocks.SpecialistModule` class.

Adding a specialist is one file with one decorated class::

    @register_specialist("xx")
    class XXModule(SpecialistModule):
        def __init__(self, config: ModelConfig): ...

The class is built with the model's :class:`~interceptor.schema.ModelConfig`. The six built-in specialists
are imported (and so registered) by ``interceptor.models``.
"""

from __future__ import annotations

from collections.abc import Callable

SPECIALISTS: dict[str, type] = {}


def register_specialist(name: str) -> Callable[[type], type]:
    """Class decorator registering a specialist module under ``name`` (stored lowercase)."""
    key = name.lower()

    def decorator(cls: type) -> type:
        if key in SPECIALISTS and SPECIALISTS[key] is not cls:
            raise ValueError(f"specialist {key!r} is already registered ({SPECIALISTS[key].__qualname__})")
        SPECIALISTS[key] = cls
        cls.name = key
        return cls

    return decorator


def get_specialist(name: str) -> type:
    """The module class of specialist ``name`` (any case); KeyError naming the known ones otherwise."""
    try:
        return SPECIALISTS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown specialist {name!r} (known: {', '.join(SPECIALISTS)})") from None
