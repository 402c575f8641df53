"""The deposition commands of the CLI: ``deposit`` and ``import-emdb``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_deposition_commands"]


def cmd_deposit(args: argparse.Namespace) -> int:
    from .deposition.package import DepositionOptions, prepare_deposition
    from .ontology_graph import sync_ontology_graph
    from .project import Project

    project = Project.find(args.project)
    options = DepositionOptions(
        out=Path(args.out),
        metadata=Path(args.metadata) if args.metadata else None,
        emdb_xsd=Path(args.emdb_xsd) if args.emdb_xsd else None,
        pdbx_dictionary=Path(args.pdbx_dictionary) if args.pdbx_dictionary else None,
        entry_image=args.entry_image,
    )
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        result = prepare_deposition(project, store, args.map, options, say=lambda text: print(f"... {text}"))
    print(f"package written to {result.out} ({len(result.files)} files); recorded as run {result.run.iri}")
    print(f"resolution {result.curve.resolution(0.143):.2f} Å (FSC 0.143 of the two half maps)")
    for line in result.validation:
        print(("ok   " if line.ok else "FAIL ") + line.text)
    if result.missing:
        print(f"{len(result.missing)} mandatory item(s) still to supply (see report.html):")
        for item in result.missing:
            print(f"  - {item.label} (_{item.category}.{item.item}; {item.why})")
    else:
        print("nothing mandatory is missing")
    return 0 if result.valid else 2


def cmd_import_emdb(args: argparse.Namespace) -> int:
    from .deposition.emdb_xml import validate_emdb_xml
    from .deposition.import_emdb import import_emdb_header
    from .ontology_graph import sync_ontology_graph
    from .project import Project
    from .recorder import Recorder

    project = Project.find(args.project)
    header = Path(args.header)
    if args.emdb_xsd:
        errors = validate_emdb_xml(header, Path(args.emdb_xsd))
        for error in errors:
            print(f"warning: {header}: {error}")
    with project.open_store(write=True) as store:
        sync_ontology_graph(store)
        imported = import_emdb_header(Recorder(project, store), header)
    deposition = imported.deposition
    print(
        f"{deposition.entry_id} ({deposition.method}): "
        f"{sum(1 for _ in deposition.fields())} values read, {len(imported.unmapped)} elements not mapped"
    )
    print(f"description {project.relative_path(imported.description)}; recorded as run {imported.run.iri}")
    return 0


def add_deposition_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    with_project: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    deposit = with_project(
        commands.add_parser(
            "deposit",
            help="write an EMDB deposition package for a recorded map",
            description="Prove that the two half maps come unmodified from the refinement that made MAP, "
            "fill the EMDB header XML v3 and mmCIF em_* metadata from the provenance graph and the "
            "metadata file, and write map, half maps, mask, FSC XML, entry image and an HTML report.",
        )
    )
    deposit.add_argument("map", metavar="MAP", help="the primary map (path or IRI)")
    deposit.add_argument("--metadata", help="YAML or JSON file of what only you know (see examples/)")
    deposit.add_argument("--out", required=True, help="new directory for the package")
    deposit.add_argument("--emdb-xsd", help="EMDB schema (emdb.xsd) to validate the header against")
    deposit.add_argument("--pdbx-dictionary", help="PDBx/mmCIF dictionary (.dic or .dic.gz) to validate with")
    deposit.add_argument("--entry-image", choices=["projection", "slice"], default="projection")
    deposit.set_defaults(handler=cmd_deposit)

    importer = with_project(
        commands.add_parser("import-emdb", help="record an EMDB v3 header as the description of a map")
    )
    importer.add_argument("header", metavar="HEADER.xml")
    importer.add_argument("--emdb-xsd", help="also validate the header against this schema (warnings)")
    importer.set_defaults(handler=cmd_import_emdb)
