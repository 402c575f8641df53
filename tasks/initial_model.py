"""Step ``initial_model``: the starting reference of 3D refinement.

Method ``reference`` (the built-in default): a map computed from an atomic model (or a given map),
resampled to the particles' box and pixel size and low-pass filtered to ``resolution`` Å (default 40 Å),
the classic start from a related structure. It carries the correct hand, and at 40 Å it holds no
high-resolution information: everything finer comes from the particles (see the gold-standard FSC).
"""

from __future__ import annotations

from .parameters import ParameterSpec
from .software import builtin_software
from .step import Backend, Port, StepContext, StepTask

__all__ = ["TASK", "InitialModelTask"]


def run_builtin(context: StepContext) -> None:
    from scipion_kg.converters.mrc import read_map, write_map

    from .builtin import initial_model
    from .builtin.simulate import ground_truth_map
    from .tables import read_star

    particles = read_star(context.input("particles"), "particles")
    optics = particles.related["optics"].columns
    box = int(optics["image_size"][0])
    pixel = float(optics["pixel_size"][0])
    model = context.optional_input("reference_model")
    reference_map = context.optional_input("reference_map")
    if model is not None:
        reference = ground_truth_map(model, box, pixel, float(context.value("model_bfactor")))
        reference_pixel = pixel
    elif reference_map is not None:
        reference, reference_pixel = read_map(reference_map)
    else:
        from scipion_kg.errors import ProcessingError

        raise ProcessingError(f"step {context.step_id}: give a reference_model or a reference_map input")
    volume = initial_model.initial_model_from_reference(
        reference, reference_pixel, box, pixel, resolution=float(context.value("resolution"))
    )
    path = context.directory / "initial_model.mrc"
    write_map(path, volume, pixel)
    context.add_output(
        path, "initial_map", {"skg:pixelSize": pixel, "skg:resolution": float(context.value("resolution"))}
    )


class InitialModelTask(StepTask):
    name = "initial_model"
    step_class = "skg:InitialModel"
    input_ports = (
        Port("particles", "skg:ParticleSet", help="gives the box and pixel size"),
        Port("reference_model", "skg:AtomicModel", optional=True),
        Port("reference_map", "skg:Map", optional=True),
    )
    output_ports = (Port("initial_map", "skg:InitialVolume"),)
    parameter_specs = (
        ParameterSpec("method", "str", "reference", help="reference: low-pass filtered related structure"),
        ParameterSpec("resolution", "float", 40.0, "unit:ANGSTROM", help="low-pass filter of the reference"),
        ParameterSpec("model_bfactor", "float", 30.0, "skg:SquareAngstrom"),
    )
    backends = (
        Backend(
            "builtin",
            run_builtin,
            builtin_software("reference map low-pass filtered (initial model from a related structure)"),
        ),
    )


TASK = InitialModelTask
