"""The processing steps scipion-kg knows, by the name workflows use (``motion_correction``...)."""

from __future__ import annotations

from importlib import import_module

from scipion_kg.errors import PipelineError

from .step import StepTask

__all__ = ["STEP_MODULES", "step_names", "step_task_class"]

# step name -> module of scipion_kg.tasks defining it (one module per step, DESIGN.md "Layout").
STEP_MODULES = {
    "simulate": "simulation",
    "import_movies": "import_movies",
    "motion_correction": "motion_correction",
    "ctf_estimation": "ctf_estimation",
    "particle_picking": "particle_picking",
    "particle_extraction": "particle_extraction",
    "classification_2d": "classification_2d",
    "initial_model": "initial_model",
    "refine_3d": "refine_3d",
    "reconstruction": "reconstruction",
    "masking": "masking",
    "postprocess": "postprocess",
}


def step_names() -> list[str]:
    return list(STEP_MODULES)


def step_task_class(name: str) -> type[StepTask]:
    """The Luigi task class of step ``name``; a PipelineError lists the known steps."""
    module_name = STEP_MODULES.get(name)
    if module_name is None:
        raise PipelineError(f"unknown step {name!r}; known steps: {', '.join(STEP_MODULES)}")
    module = import_module(f"scipion_kg.tasks.{module_name}")
    task: type[StepTask] = module.TASK
    return task
