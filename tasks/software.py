"""Software records of the backends: scipion-kg's own version and the algorithm that ran for the built-in
ones, the installed RELION's own version string and the program that ran for the ``relion`` ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from scipion_kg.recorder import Software
from scipion_kg.version import __version__

from .parameters import Value

__all__ = ["builtin_software", "relion_software_of"]


def builtin_software(algorithm: str) -> Callable[[Mapping[str, Value | None]], list[Software]]:
    """The software of a built-in backend: ``scipion-kg <version>`` running ``algorithm``."""

    def software(_: Mapping[str, Value | None]) -> list[Software]:
        return [Software("scipion-kg", __version__, algorithm=algorithm)]

    return software


def relion_software_of(program: str) -> Callable[[Mapping[str, Value | None]], list[Software]]:
    """The software of a ``relion`` backend running ``program``; RELION is asked for its version only
    when a run is recorded (the wrappers are imported then, not when the step modules load)."""

    def software(_: Mapping[str, Value | None]) -> list[Software]:
        from .wrappers.relion_steps import relion_software

        return relion_software(program)

    return software
