"""scipion-kg: provenance and workflow knowledge graph for 3D electron microscopy.

The core: projects and their store, the provenance recorder, hashing, ontology access and lineage.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ScipionKGError
from .version import __version__

if TYPE_CHECKING:
    from .project import Project
    from .recorder import Input, Parameter, Recorder, Software

__all__ = ["Input", "Parameter", "Project", "Recorder", "ScipionKGError", "Software", "__version__"]

# The project and the recorder pull in rdflib and pySHACL (~0.15 s): imported when first used, so a
# conversion or a converter module that never records does not pay for them.
_LAZY = {"Project": ".project", "Input": ".recorder", "Parameter": ".recorder", "Recorder": ".recorder",
         "Software": ".recorder"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
