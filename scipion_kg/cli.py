"""The ``scipion-kg`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_deposition import add_deposition_commands
from .errors import PipelineError, ScipionKGError
from .version import __version__

__all__ = ["main"]


def _project(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .project import Project

    return Project.find(args.project)


def cmd_init(args: argparse.Namespace) -> int:
    from .project import Project, StoreConfig

    project = Project.init(Path(args.directory), store=StoreConfig(args.endpoint, args.update_endpoint))
    print(f"initialised scipion-kg project in {project.root}")
    return 0


def cmd_ontology_check(args: argparse.Namespace) -> int:
    from .ontology_check import check_ontology

    report = check_ontology(Path(args.directory) if args.directory else None, reasoner=not args.no_reasoner)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_formats(args: argparse.Namespace) -> int:
    from .namespaces import compact
    from .vocabulary import vocabulary

    for declaration in sorted(vocabulary().formats.values(), key=lambda d: d.label.lower()):
        extensions = " ".join(declaration.extensions) or "-"
        print(f"{compact(declaration.iri):40} {declaration.label:40} {extensions}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .conversion import convert, print_warnings
    from .converters.mapping import ConversionOptions
    from .project import Project

    options = ConversionOptions(
        pixel_size=args.pixel_size,
        voltage=args.voltage,
        spherical_aberration=args.cs,
        amplitude_contrast=args.amplitude_contrast,
        image_size=args.box_size,
        micrograph_size=tuple(args.micrograph_size) if args.micrograph_size else None,
    )
    project = None
    if args.project is not None:
        project = Project.find(args.project)
    elif not args.no_project:
        project = Project.find_optional(Path.cwd())
    try:
        outcome = convert(
            Path(args.source),
            Path(args.target),
            source_format=args.source_format,
            target_format=args.target_format,
            options=options,
            permissive=args.permissive,
            project=project,
        )
    finally:
        if project is not None:
            project.close()
    result = outcome.result
    print(
        f"{result.source} ({result.source_convention.label}) -> {result.target} "
        f"({result.target_convention.label}): {result.rows} rows"
    )
    if outcome.run_iri:
        print(f"recorded as {outcome.run_iri}")
    print_warnings(outcome)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import import_files
    from .namespaces import compact
    from .ontology_graph import sync_ontology_graph
    from .recorder import Recorder

    project = _project(args)
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        run = import_files(
            Recorder(project, store),
            [Path(p) for p in args.paths],
            data_class=args.data_class,
            format=args.format,
        )
    for entity in run.outputs:
        print(
            f"{entity.path}  {compact(entity.format or '-')}  {compact(entity.data_class)}"
            f"  sha256 {entity.sha256}"
        )
    print(f"recorded import run {run.iri}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import find_bundles, ingest_bundles
    from .ontology_graph import sync_ontology_graph
    from .vocabulary import vocabulary

    project = _project(args)
    paths = [Path(p) for p in args.bundles] or find_bundles(project)
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        report = ingest_bundles(store, project, paths, vocabulary(), shacl=args.shacl)
    print(
        f"{len(paths)} bundles: {report.ingested} ingested, {report.replaced} replaced, "
        f"{report.unchanged} unchanged ({report.triples} triples)"
    )
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from .export import export_lineage
    from .lineage import lineage, resolve_target

    project = _project(args)
    with project.open_store() as store:
        root = resolve_target(project, store, args.target)
        result = lineage(store, root, "downstream" if args.down else "upstream")
        text = export_lineage(store, result, args.format)
    if args.output:
        from .atomic import atomic_write_bytes

        atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .namespaces import compact
    from .queries import load_query

    project = _project(args)
    with project.open_store() as store:
        rows = store.select(load_query("runs-overview"))
    for row in rows:
        print(
            f"{row['started']}  {compact(str(row['status'])):16} {compact(str(row['step'])):28} {row['run']}"
        )
    print(f"{len(rows)} runs")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(Path(args.out), args.size, args.backend, workers=args.workers)
    summary = result.summary
    print()
    print(f"resolution (gold-standard FSC 0.143, masked and corrected): {summary['resolution']:.2f} Å")
    print(f"B-factor used for sharpening: {summary['bfactor']:.1f} Å²")
    print(f"final map:         {summary['final_map']}")
    print(f"ground-truth map:  {summary['ground_truth_map']}")
    print(f"summary:           {result.summary_file}")
    print(f"how was it made:   scipion-kg lineage --project {result.project} {summary['final_map']}")
    return 0


def _workflow_outcome(result: object) -> int:
    from scipion_kg.tasks.workflow import WorkflowResult

    assert isinstance(result, WorkflowResult)
    for outcome in result.outcomes.values():
        line = f"{outcome.step_id:16} {outcome.step:22} {outcome.backend:8} {outcome.status}"
        if outcome.run is not None:
            line += f"  {len(outcome.run.generated)} outputs in {Path(outcome.run.generated[0].path).parent}"
        if outcome.error:
            line += f"  {outcome.error}"
        print(line)
    print(f"{len(result.outcomes)} steps in {result.seconds:.1f} s")
    return 0 if result.succeeded else 1


def cmd_run(args: argparse.Namespace) -> int:
    from scipion_kg.tasks.workflow import parse_workflow, run_workflow

    project = _project(args)
    inputs: dict[str, dict[str, list[str]]] = {}
    for item in args.input or []:
        role, _, path = item.partition("=")
        if not path:
            raise PipelineError(f"--input {item!r}: write ROLE=PATH (PATH may be a glob)")
        inputs.setdefault(role, {"files": []})["files"].append(path)
    parameters: dict[str, str] = {}
    for item in args.param or []:
        name, _, value = item.partition("=")
        if not _:
            raise PipelineError(f"--param {item!r}: write NAME=VALUE")
        parameters[name] = value
    step = {
        "id": args.step,
        "step": args.step,
        "backend": args.backend,
        "inputs": inputs,
        "parameters": parameters,
    }
    workflow = parse_workflow({"steps": [step]}, project, "command line", base=Path.cwd())
    return _workflow_outcome(run_workflow(workflow, scheduler_url=args.scheduler_url))


def cmd_pipeline(args: argparse.Namespace) -> int:
    from scipion_kg.tasks.workflow import load_workflow, run_workflow

    project = _project(args)
    workflow = load_workflow(Path(args.file), project)
    result = run_workflow(workflow, workers=args.workers, scheduler_url=args.scheduler_url)
    return _workflow_outcome(result)


def cmd_steps(args: argparse.Namespace) -> int:
    from scipion_kg.tasks.registry import step_names, step_task_class

    for name in step_names():
        task = step_task_class(name)
        if args.step and name != args.step:
            continue
        print(f"{name}  ({task.step_class}; backends: {', '.join(task.backend_names())})")
        if args.step:
            for port in task.input_ports:
                flag = " (optional)" if port.optional else ""
                print(f"  input  {port.role:18} {port.data_class}{flag}")
            for port in task.output_ports:
                print(f"  output {port.role:18} {port.data_class}")
            for spec in task.parameter_specs:
                unit = f" [{spec.unit}]" if spec.unit else ""
                print(f"  param  {spec.name:18} default {spec.default!r}{unit}  {spec.help}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .project import Project
    from .webview.serve import serve

    project_dir: Path | None = None
    if args.project_dir is not None or args.endpoint is None:
        project_dir = Project.find(Path(args.project_dir) if args.project_dir else None).root
    serve(project_dir, host=args.host, port=args.port, endpoint=args.endpoint)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scipion-kg",
        description="Provenance and workflow knowledge graph for 3D electron microscopy.",
    )
    parser.add_argument("--version", action="version", version=f"scipion-kg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_project(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--project",
            type=Path,
            default=None,
            help="project directory (default: the project containing the current directory)",
        )
        return sub

    init = commands.add_parser("init", help="create a project (run directories + on-disk store)")
    init.add_argument("directory")
    init.add_argument(
        "--endpoint", help="keep the graph in this SPARQL 1.1 endpoint instead of the embedded store"
    )
    init.add_argument("--update-endpoint", help="SPARQL update URL when it differs from --endpoint")
    init.set_defaults(handler=cmd_init)

    ontology = commands.add_parser("ontology", help="ontology tools")
    ontology_commands = ontology.add_subparsers(dest="ontology_command", required=True, metavar="ACTION")
    check = ontology_commands.add_parser(
        "check", help="parse the ontology, run its SPARQL rules and the HermiT reasoner"
    )
    check.add_argument("--directory", help="check this ontology folder instead of the installed one")
    check.add_argument("--no-reasoner", action="store_true", help="skip HermiT (no Java needed)")
    check.set_defaults(handler=cmd_ontology_check)

    formats = commands.add_parser("formats", help="list the file formats the ontology declares")
    formats.set_defaults(handler=cmd_formats)

    convert = commands.add_parser(
        "convert",
        help="convert particle, micrograph or tilt-series metadata between packages",
        description="Convert metadata between packages through the canonical table; formats and dialects "
        "are detected from content and extension where possible ('scipion-kg formats' lists them). "
        "Inside a project (or with --project) the conversion is recorded as a run.",
    )
    convert.add_argument("source", metavar="IN")
    convert.add_argument("target", metavar="OUT")
    convert.add_argument("--from", dest="source_format", help="format or convention of IN (e.g. RELION30)")
    convert.add_argument("--to", dest="target_format", help="format or convention of OUT (e.g. CryoSPARC)")
    convert.add_argument("--project", type=Path, default=None, help="record the conversion in this project")
    convert.add_argument("--no-project", action="store_true", help="do not record even inside a project")
    convert.add_argument("--permissive", action="store_true", help="warn about shape violations, do not stop")
    convert.add_argument("--pixel-size", type=float, help="pixel size in Å/px when the source lacks it")
    convert.add_argument("--voltage", type=float, help="acceleration voltage in kV when the source lacks it")
    convert.add_argument("--cs", type=float, help="spherical aberration in mm when the source lacks it")
    convert.add_argument("--amplitude-contrast", type=float, help="amplitude contrast (fraction 0-1)")
    convert.add_argument("--box-size", type=int, help="particle box size in pixels")
    convert.add_argument(
        "--micrograph-size", type=int, nargs=2, metavar=("NX", "NY"), help="micrograph size in px"
    )
    convert.set_defaults(handler=cmd_convert)

    importer = with_project(
        commands.add_parser("import", help="register existing files through an import run")
    )
    importer.add_argument("paths", nargs="+", metavar="PATH")
    importer.add_argument("--data-class", help="ontology class of the files (default: from the format)")
    importer.add_argument("--format", help="format IRI or skg: name (default: detected)")
    importer.set_defaults(handler=cmd_import)

    ingest = with_project(
        commands.add_parser("ingest", help="ingest run bundles into the store (idempotent)")
    )
    ingest.add_argument("bundles", nargs="*", metavar="BUNDLE", help="default: every bundle under runs/")
    ingest.add_argument(
        "--shacl", action="store_true", help="also validate every bundle against the run-bundle SHACL shapes"
    )
    ingest.set_defaults(handler=cmd_ingest)

    lineage = with_project(
        commands.add_parser(
            "lineage", help="how an entity was produced (upstream) or what was made from it (--down)"
        )
    )
    lineage.add_argument("target", metavar="PATH|IRI")
    lineage.add_argument("--down", action="store_true", help="downstream closure instead of upstream")
    lineage.add_argument(
        "--format", default="text", choices=["text", "json", "turtle", "json-ld", "prov-json", "prov-n"]
    )
    lineage.add_argument("--output", "-o", help="write to this file instead of standard output")
    lineage.set_defaults(handler=cmd_lineage)

    demo = commands.add_parser(
        "demo", help="simulate a data set from a real atomic model and run the whole pipeline on it"
    )
    demo.add_argument(
        "--out", default="scipion-kg-demo", help="new project directory (default: scipion-kg-demo)"
    )
    demo.add_argument("--size", choices=["small", "standard"], default="small")
    demo.add_argument("--backend", choices=["builtin", "relion"], default="builtin")
    demo.add_argument("--workers", type=int, default=1, help="Luigi workers (default 1)")
    demo.set_defaults(handler=cmd_demo)

    run = with_project(
        commands.add_parser("run", help="run one processing step ('scipion-kg steps' lists them)")
    )
    run.add_argument("step")
    run.add_argument(
        "--input", "-i", action="append", metavar="ROLE=PATH", help="an input file (glob allowed)"
    )
    run.add_argument("--param", "-p", action="append", metavar="NAME=VALUE", help="a parameter")
    run.add_argument("--backend", default="builtin")
    run.add_argument("--scheduler-url", help="a running luigid (default: the local scheduler)")
    run.set_defaults(handler=cmd_run)

    pipeline = with_project(commands.add_parser("pipeline", help="run a workflow file (YAML or JSON)"))
    pipeline.add_argument("file")
    pipeline.add_argument("--workers", type=int, default=1)
    pipeline.add_argument("--scheduler-url", help="a running luigid (default: the local scheduler)")
    pipeline.set_defaults(handler=cmd_pipeline)

    steps = commands.add_parser(
        "steps", help="list the processing steps, or one step's inputs and parameters"
    )
    steps.add_argument("step", nargs="?")
    steps.set_defaults(handler=cmd_steps)

    runs = with_project(commands.add_parser("runs", help="list the recorded runs"))
    runs.set_defaults(handler=cmd_runs)

    add_deposition_commands(commands, with_project)

    serve = commands.add_parser(
        "serve",
        help="browse a project in a web browser (read-only)",
        description="Serve the project's lineage, runs, entities, methods text, SPARQL endpoint and "
        "deposition pages. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    serve.add_argument("project_dir", nargs="?", metavar="PROJECT", help="default: the current project")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--endpoint", help="serve this SPARQL endpoint's graph instead of a store")
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ScipionKGError as error:
        print(f"scipion-kg: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scipion-kg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
