"""``scipion-kg deposit MAP``: the EMDB package of a recorded map, filled from the graph and proved.

Order of work: resolve the map, prove its half maps (lineage, hashes, frame), fill the model from the
graph, add the user's metadata, list what is missing; then, as one recorded ``skg:Deposition`` run, write
the header XML, the mmCIF, the FSC XML, the entry image, the evidence JSON and the HTML report; finally
assemble the package directory (maps copied beside those files) and move it into place in one rename.
Nothing is written when a check fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import DepositionError
from ..hashing import hash_file
from ..lineage import resolve_target
from ..project import Project
from ..recorder import Input, Parameter, PropertyValue, Recorder, RunContext, Software
from ..store import Store
from ..version import __version__
from .completeness import MissingItem, missing_items
from .emdb_xml import render_emdb_xml, validate_emdb_xml
from .entry_image import write_entry_image
from .from_graph import fill_from_graph
from .fsc import FSCCurve, write_fsc_xml
from .halfmaps import HalfMapProof, prove_half_maps
from .metadata import load_metadata
from .mmcif import mmcif_report, render_mmcif
from .model import Deposition, Evidence
from .report import PackageFile, ValidationLine, render_report
from .serialize import deposition_json

__all__ = ["DepositionOptions", "DepositionResult", "prepare_deposition"]

XSD_ENVIRONMENT = "SCIPION_KG_EMDB_XSD"
DICTIONARY_ENVIRONMENT = "SCIPION_KG_PDBX_DICTIONARY"


@dataclass(frozen=True)
class DepositionOptions:
    out: Path
    metadata: Path | None = None
    emdb_xsd: Path | None = None
    pdbx_dictionary: Path | None = None
    entry_image: str = "projection"

    def schema(self) -> Path | None:
        if self.emdb_xsd is not None:
            return self.emdb_xsd
        return Path(os.environ[XSD_ENVIRONMENT]) if XSD_ENVIRONMENT in os.environ else None

    def dictionary(self) -> Path | None:
        if self.pdbx_dictionary is not None:
            return self.pdbx_dictionary
        return Path(os.environ[DICTIONARY_ENVIRONMENT]) if DICTIONARY_ENVIRONMENT in os.environ else None


@dataclass
class DepositionResult:
    out: Path
    run: RunContext
    deposition: Deposition
    proof: HalfMapProof
    curve: FSCCurve
    missing: list[MissingItem]
    validation: list[ValidationLine]
    files: list[PackageFile] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(line.ok for line in self.validation)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DepositionError(f"{out} already exists and is not empty; choose another --out or remove it")


def _validate(options: DepositionOptions, xml: bytes, cif: str) -> list[ValidationLine]:
    lines: list[ValidationLine] = []
    schema = options.schema()
    if schema is None:
        lines.append(
            ValidationLine(
                False, f"header XML not validated: no EMDB schema given (--emdb-xsd or ${XSD_ENVIRONMENT})"
            )
        )
    else:
        errors = validate_emdb_xml(xml, schema)
        if not errors:
            lines.append(ValidationLine(True, f"header XML valid against {schema.name}"))
        lines.extend(ValidationLine(False, f"header XML: {error}") for error in errors)
    dictionary = options.dictionary()
    if dictionary is None:
        text = f"no PDBx dictionary given (--pdbx-dictionary or ${DICTIONARY_ENVIRONMENT})"
        lines.append(ValidationLine(False, f"mmCIF not validated: {text}"))
    else:
        errors, newer = mmcif_report(cif, dictionary)
        if not errors:
            lines.append(ValidationLine(True, f"mmCIF valid against {dictionary.name}"))
        lines.extend(ValidationLine(False, f"mmCIF: {error}") for error in errors)
        lines.extend(
            ValidationLine(True, f"mmCIF note (newer than the dictionary): {note}") for note in newer
        )
    return lines


def _resolution_sentence(curve: FSCCurve, proof: HalfMapProof) -> str:
    return (
        f"Resolution {curve.resolution(0.143):.2f} Å at FSC 0.143 of the half maps {proof.half_maps[0].path} "
        f"and {proof.half_maps[1].path}, recomputed by this deposition (run {proof.run})"
    )


def prepare_deposition(
    project: Project,
    store: Store,
    target: str,
    options: DepositionOptions,
    say: Callable[[str], None] = lambda _: None,
) -> DepositionResult:
    """Check, fill, record and write the package of map ``target`` (path or IRI) into ``options.out``."""
    _check_out(options.out)
    map_iri = resolve_target(project, store, target)
    say("proving the half maps")
    proof = prove_half_maps(store, project, map_iri)
    say("filling the deposition from the provenance graph")
    filled = fill_from_graph(store, project, map_iri, proof)
    deposition, curve = filled.deposition, filled.sources.fsc
    if options.metadata is not None:
        load_metadata(options.metadata, deposition)
    names = _package_names(deposition, proof)
    _onedep_placeholders(deposition)
    missing = missing_items(deposition)
    inputs = [Input(proof.map.file, "map", "skg:Map")]
    inputs += [Input(half.file, f"half_map_{n}", "skg:HalfMap") for n, half in enumerate(proof.half_maps, 1)]
    if proof.mask is not None:
        inputs.append(Input(proof.mask.file, "mask", "skg:VolumeMask"))
    if options.metadata is not None:
        inputs.append(Input(options.metadata, "metadata", "skg:MetadataFile"))
    recorder = Recorder(project, store)
    say("writing the header XML, mmCIF, FSC XML, entry image and report")
    with recorder.run(
        "skg:Deposition",
        inputs=inputs,
        parameters=[Parameter("fsc_threshold", 0.143), Parameter("entry_image", options.entry_image)],
        software=[Software("scipion-kg", __version__, algorithm="EMDB XML v3 and PDBx/mmCIF deposition")],
    ) as run:
        directory = run.directory
        xml = render_emdb_xml(deposition)
        cif = render_mmcif(deposition)
        validation = _validate(options, xml, cif)
        generated = {
            "header.xml": ("header", "skg:EMDBHeader", "skg:Format_EMDBHeaderXML", "metadata"),
            "metadata.cif": ("mmcif", "skg:EMDBHeader", "skg:Format_mmCIF", "metadata"),
            "fsc.xml": ("fsc", "skg:FSCCurve", "skg:Format_EMDBFSCXML", "fsc-xml"),
            "entry_image.png": ("image", "skg:Figure", "skg:Format_PNG", "img-emdb"),
            "evidence.json": ("evidence", "skg:MetadataFile", "skg:Format_JSON", "metadata"),
        }
        atomic_write_bytes(directory / "header.xml", xml)
        atomic_write_bytes(directory / "metadata.cif", cif.encode("utf-8"))
        write_fsc_xml(curve, directory / "fsc.xml", title=f"FSC of the half maps of {proof.map.path}")
        write_entry_image(proof.map.file, directory / "entry_image.png", kind=options.entry_image)
        atomic_write_bytes(directory / "evidence.json", deposition_json(deposition))
        kinds = dict(zip(names, ["vo-map", "half-map", "half-map", "mask-map"], strict=False))
        files = [_package_file(source, names[source], kind) for source, kind in kinds.items()]
        files += [_package_file(directory / name, name, kind) for name, (_, _, _, kind) in generated.items()]
        report = render_report(
            deposition,
            map_path=proof.map.path,
            map_sha256=proof.map.sha256,
            resolution=_resolution_sentence(curve, proof),
            proof_checks=list(proof.checks),
            missing=missing,
            validation=validation,
            files=files,
        )
        atomic_write_bytes(directory / "report.html", report)
        for name, (role, data_class, file_format, _) in generated.items():
            run.add_output(directory / name, role, data_class, file_format)
        _record_evidence(run, deposition)
        run.add_output(directory / "report.html", "report", "skg:DepositionReport")
    say(f"assembling the package in {options.out}")
    generated_files = {directory / name: name for name in (*generated, "report.html")}
    _assemble(options.out, {**names, **generated_files})
    return DepositionResult(options.out, run, deposition, proof, curve, missing, validation, files)


# Items OneDep sets itself when the entry is deposited, but which the dictionary and the schema make
# mandatory: the package carries recognisable placeholders (the report says where they come from).
_ONEDEP_PLACEHOLDERS = {
    "current_status": "PROC",
    "deposition_site": "PDBE",
    "deposition_date": "2000-01-01",
    "last_update": "2000-01-01",
}


def _onedep_placeholders(deposition: Deposition) -> None:
    evidence = Evidence.default("a placeholder: OneDep sets this item when the entry is deposited")
    for item, value in _ONEDEP_PLACEHOLDERS.items():
        if deposition.get("em_admin", item) is None:
            deposition.set("em_admin", item, value, evidence)
    if deposition.get("em_admin", "entry_id") is None:
        deposition.set("em_admin", "entry_id", deposition.entry_id, evidence)


def _package_names(deposition: Deposition, proof: HalfMapProof) -> dict[Path, str]:
    """The names OneDep expects for the maps (``emd_NNNN.map``, ``emd_NNNN_half_map_1.map``...), in the
    order map, half map 1, half map 2, mask; the ``em_map.file`` items are renamed to match."""
    number = deposition.entry_id.removeprefix("EMD-")
    names = {
        proof.map.file: f"emd_{number}.map",
        proof.half_maps[0].file: f"emd_{number}_half_map_1.map",
        proof.half_maps[1].file: f"emd_{number}_half_map_2.map",
    }
    if proof.mask is not None:
        names[proof.mask.file] = f"emd_{number}_msk_1.map"
    renamed = {source.name: name for source, name in names.items()}
    for index, row in enumerate(deposition.rows("em_map")):
        current = row.get("file")
        if current is not None and str(current.value) in renamed:
            original = str(current.value)
            evidence = Evidence("default", f"{original}, named as OneDep expects in the package")
            deposition.set("em_map", "file", renamed[original], evidence, index)
    return names


def _record_evidence(run: RunContext, deposition: Deposition) -> None:
    """Every filled field, with its evidence, as a node of the deposition run's bundle: so the graph
    answers "where does this resolution come from?" by links to the run, parameter or file."""
    for category, index, item, found in deposition.fields():
        evidence = found.evidence
        properties: dict[str, PropertyValue] = {
            "skg:mmcifItem": f"_{category}.{item}",
            "skg:fieldValue": str(found.value),
            "skg:evidenceKind": evidence.kind,
            "skg:evidenceText": evidence.text,
            "skg:fieldOfDeposition": run.iri,
        }
        if evidence.run:
            properties["skg:evidenceRun"] = evidence.run
        if evidence.entity:
            properties["prov:wasDerivedFrom"] = evidence.entity
        if evidence.parameter:
            properties["skg:evidenceParameter"] = evidence.parameter
        run.describe(f"field/{category}/{index + 1}/{item}", "skg:DepositionField", properties)


def _package_file(path: Path, name: str, kind: str) -> PackageFile:
    digest = hash_file(path)
    return PackageFile(name, kind, digest.sha256, digest.size)


def _assemble(out: Path, files: dict[Path, str]) -> None:
    """Copy ``files`` (source -> name) into a hidden sibling of ``out``, then rename it into place."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for path, name in files.items():
            shutil.copyfile(path, staging / name)
        if out.exists():
            out.rmdir()  # empty: checked before anything was done
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
