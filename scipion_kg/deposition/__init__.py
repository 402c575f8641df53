"""EMDB-ready deposition from the provenance graph (see model.py for the shared model)."""
