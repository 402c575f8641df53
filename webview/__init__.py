"""The Flask viewer of a project's provenance graph (installed as ``scipion_kg.webview``)."""
