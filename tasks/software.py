"""Software records for the built-in backends: scipion-kg's own version and the algorithm that ran."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scipion_kg.recorder import Software
from scipion_kg.version import __version__

from .parameters import Value

__all__ = ["builtin_software"]


def builtin_software(algorithm: str) -> Callable[[Mapping[str, Value | None]], list[Software]]:
    """The software of a built-in backend: ``scipion-kg <version>`` running ``algorithm``."""

    def software(_: Mapping[str, Value | None]) -> list[Software]:
        return [Software("scipion-kg", __version__, algorithm=algorithm)]

    return software
