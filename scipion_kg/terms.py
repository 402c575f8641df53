"""Light RDF terms returned by queries, the same for every store back end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .namespaces import XSD

__all__ = ["IRI", "BNode", "Lit", "Term"]


class IRI(str):
    """An IRI (a ``str``, so it compares and hashes as its text)."""

    __slots__ = ()

    def n3(self) -> str:
        return f"<{self}>"


class BNode(str):
    """A blank node label."""

    __slots__ = ()

    def n3(self) -> str:
        return f"_:{self}"


_INTEGER_TYPES = frozenset(
    XSD + name
    for name in (
        "integer",
        "long",
        "int",
        "short",
        "byte",
        "nonNegativeInteger",
        "positiveInteger",
        "negativeInteger",
        "nonPositiveInteger",
        "unsignedLong",
        "unsignedInt",
        "unsignedShort",
        "unsignedByte",
    )
)


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal: lexical form, datatype IRI and optional language tag."""

    lexical: str
    datatype: str = XSD + "string"
    language: str | None = None

    def to_python(self) -> object:
        """The literal's value as a Python object (numbers compare by value, whatever the store)."""
        datatype = self.datatype
        try:
            if datatype in _INTEGER_TYPES:
                return int(self.lexical)
            if datatype in (XSD + "double", XSD + "float"):
                return float(self.lexical)
            if datatype == XSD + "decimal":
                return Decimal(self.lexical)
            if datatype == XSD + "boolean":
                return self.lexical.strip() in ("true", "1")
            if datatype == XSD + "dateTime":
                return datetime.fromisoformat(self.lexical.replace("Z", "+00:00"))
        except ValueError:
            return self.lexical
        return self.lexical

    def __str__(self) -> str:
        return self.lexical

    def n3(self) -> str:
        escaped = (
            self.lexical.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        )
        if self.language:
            return f'"{escaped}"@{self.language}'
        return f'"{escaped}"^^<{self.datatype}>'


Term = IRI | BNode | Lit
