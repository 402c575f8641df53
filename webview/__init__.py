"""The Flask viewer: lineage you can see, runs, entities, methods text, SPARQL and deposition pages.

from scipion_kg.webview import create_app
app = create_app(ViewerConfig(project_dir=Path("myproject")))
"""

from .app import create_app
from .context import ViewerConfig

__all__ = ["ViewerConfig", "create_app"]
