"""Built-in numpy/scipy backends of the processing steps (run anywhere, the default backend)."""
