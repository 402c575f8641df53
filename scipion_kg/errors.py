"""The one exception root of scipion-kg and its few subclasses.

Every error says which file, line, term or IRI is at fault and what to do about it, so the CLI can print
it as is and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConversionError",
    "DepositionError",
    "FormatError",
    "LineageError",
    "OntologyError",
    "ParseError",
    "PipelineError",
    "ProcessingError",
    "ProjectError",
    "ProjectLockedError",
    "RecordError",
    "ScipionKGError",
    "StoreError",
    "TableValidationError",
    "UnknownTermError",
]


class ScipionKGError(Exception):
    """Root of every error raised on purpose by scipion-kg."""


class ProjectError(ScipionKGError):
    """A directory is not a project, or a project's layout or configuration is broken."""


class ProjectLockedError(ProjectError):
    """The project is already open for writing by another process."""


class StoreError(ScipionKGError):
    """The RDF store (embedded or SPARQL endpoint) failed or refused an operation."""


class OntologyError(ScipionKGError):
    """The ontology does not parse, is inconsistent, or breaks one of its rules."""


class UnknownTermError(OntologyError):
    """An IRI is used as an ontology term (class, format, unit...) but the ontology does not declare it."""


class BundleError(ScipionKGError):
    """A provenance bundle is malformed or breaks the bundle rules; it is not ingested."""


class RecordError(ScipionKGError):
    """A run could not be recorded (missing output, bad parameter, ...)."""


class FormatError(ScipionKGError):
    """A file's format is unknown or cannot be detected."""


class LineageError(ScipionKGError):
    """A lineage request names something the store does not know."""


class ParseError(FormatError):
    """A file does not follow its format; the message names the file, line (or row) and column."""


class ConversionError(ScipionKGError):
    """A conversion cannot be done as asked: a value the target needs is missing, or data would be lost."""


class TableValidationError(ScipionKGError):
    """A table or set violates its SHACL shapes (the report is attached)."""


class ProcessingError(ScipionKGError):
    """A processing step cannot run or failed: bad parameters, unusable input, a missing program."""


class PipelineError(ScipionKGError):
    """A pipeline or workflow file is invalid: unknown step, wrong input kind, a cycle, bad parameters."""


class DepositionError(ScipionKGError):
    """A deposition cannot be prepared: no lineage, half maps that do not belong, bad metadata."""
