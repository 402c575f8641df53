"""Processing steps as Luigi tasks, one module per step (installed as ``scipion_kg.tasks``)."""
