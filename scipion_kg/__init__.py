"""scipion-kg: provenance and workflow knowledge graph for 3D electron microscopy.

The core: projects and their store, the provenance recorder, hashing, ontology access and lineage.
"""

from .errors import ScipionKGError
from .project import Project
from .recorder import Input, Parameter, Recorder, Software
from .version import __version__

__all__ = ["Input", "Parameter", "Project", "Recorder", "ScipionKGError", "Software", "__version__"]
