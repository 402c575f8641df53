"""The viewer's areas; each module defines one Flask blueprint named ``bp``."""

VIEW_MODULES = (
    "overview",
    "runs",
    "entities",
    "lineage",
    "methods",
    "compare",
    "sparql",
    "deposition",
    "downloads",
    "api",
)
