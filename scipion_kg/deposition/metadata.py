"""The user's deposition metadata file (YAML or JSON): what no provenance graph knows.

The file is nested by topic, with snake_case keys and the unit in the key's name; values are converted to
the PDBx/mmCIF units of the model (defocus µm -> nm, support film thickness nm -> Å). Every problem of a
file is collected and reported at once, each with its key path and what would be accepted::

    title: Cryo-EM structure of ...
    authors: ["Doe, J.", {name: "Roe, R.", orcid: 0000-0002-1825-0097}]
    funding: [{organization: European Research Council (ERC), grant_number: "123456", country: France}]
    keywords: [T-cell receptor, MHC class I]
    citation: {title: ..., journal: to be published}
    sample:
      name: TCR-pMHC complex
      supramolecules:
        - {id: 1, name: TCR-pMHC complex, parent: 0, source: recombinant, organism: Homo sapiens,
           ncbi_taxid: 9606, expression_system: Escherichia coli, expression_system_taxid: 562}
    specimen:
      concentration_mg_ml: 1.5
      buffer: {ph: 7.5, components: [{name: HEPES, concentration_mM: 20, formula: C8H18N2O4S}]}
      grid: {model: Quantifoil R1.2/1.3, material: copper, mesh: 300, support_film: {material: carbon,
             topology: holey}, pretreatment: {type: glow discharge, time_s: 30}}
      vitrification: {instrument: Vitrobot Mark IV, cryogen: ethane, humidity_percent: 100,
                      temperature_k: 277}
      staining: false
      embedding: false
      shadowing: false
    microscope: {model: Titan Krios G4, nominal_defocus_min_um: 0.8, nominal_defocus_max_um: 2.5}
    detector: {model: K3, mode: counting}
    contour_level: 0.02

Microscope and detector names, cryogens, modes... are mapped to EMDB's closed lists by ``enums``.
Values that the provenance graph also fills (``microscope.voltage_kv``, ``microscope.cs_mm``,
``detector.dose_per_image_e_per_a2``, ``aggregation_state``) override the graph's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from ..errors import DepositionError
from .enums import detector_enum, enum_problem, lookup
from .model import Deposition, Evidence, FieldValue

__all__ = ["ASSEMBLY_TYPES", "load_metadata", "read_metadata_file"]

# em_entity_assembly.type as OneDep writes it (the EMDB supramolecule kinds).
ASSEMBLY_TYPES = ("COMPLEX", "VIRUS", "ORGANELLE OR CELLULAR COMPONENT", "CELL", "TISSUE")

AUTHOR_NAME = re.compile(r"^[^,\s][^,]*,\s*\S[^,]*$")
ORCID = re.compile(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
DOI = re.compile(r"^10\.\d{4,9}/\S+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TO_BE_PUBLISHED = "To Be Published"

Node = Mapping[str, object]


def read_metadata_file(path: Path) -> object:
    """The parsed content of a .yaml/.yml or .json file (a DepositionError names the line at fault)."""
    suffix = path.suffix.lower()
    if suffix not in {".yaml", ".yml", ".json"}:
        raise DepositionError(
            f"{path}: a deposition metadata file must be YAML (.yaml, .yml) or JSON (.json)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DepositionError(f"{path}: cannot read the metadata file: {error}") from error
    except UnicodeDecodeError as error:
        raise DepositionError(f"{path}: the metadata file is not UTF-8 text: {error}") from error
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise DepositionError(
                f"{path}: line {error.lineno}, column {error.colno}: {error.msg}"
            ) from error
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise DepositionError(f"{path}: {where}{error.problem or error}") from error
    except yaml.YAMLError as error:
        raise DepositionError(f"{path}: not valid YAML: {error}") from error


class _Reader:
    """Reads one metadata file into a fresh model, collecting every problem with its key path."""

    def __init__(self, source: str, deposition: Deposition) -> None:
        self.source = source
        self.errors: list[str] = []
        self.out = Deposition(method=deposition.method, entry_id=deposition.entry_id)
        self.entry = deposition.entry_id

    # -- problems and values ----------------------------------------------------------------------------
    def fail(self, path: str, problem: str) -> None:
        self.errors.append(f"{path or '(top level)'}: {problem}")

    def put(self, category: str, item: str, value: FieldValue, path: str, row: int = 0) -> None:
        self.out.set(category, item, value, Evidence.metadata(self.source, path), row)

    def keys(self, category: str, values: Mapping[str, FieldValue], path: str, row: int = 0) -> None:
        for item, value in values.items():
            self.put(category, item, value, path, row)

    def fields(self, node: object, path: str, accepted: Sequence[str]) -> Node | None:
        """``node`` as a mapping whose keys are all in ``accepted`` (unknown keys are reported)."""
        if not isinstance(node, Mapping):
            self.fail(path, f"expected a mapping of keys ({', '.join(accepted)}), found {_kind(node)}")
            return None
        for key in node:
            if not isinstance(key, str) or key not in accepted:
                self.fail(_join(path, str(key)), f"unknown key; accepted keys here: {', '.join(accepted)}")
        return node

    def items(self, node: Node, key: str, path: str) -> list[object]:
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(_join(path, key), f"expected a list, found {_kind(value)}")
            return []
        return value

    def text(
        self, node: Node, key: str, path: str, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> str | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(_join(path, key), f"expected text, found {_kind(value)}")
            return None
        text = str(value).strip()
        if not text:
            self.fail(_join(path, key), "is empty; give a value or leave the key out")
            return None
        if pattern is not None and not pattern.match(text):
            self.fail(_join(path, key), f"{text!r} is not {what}")
            return None
        return text

    def number(
        self,
        node: Node,
        key: str,
        path: str,
        low: float,
        high: float,
        *,
        integer: bool = False,
        open_low: bool = False,
    ) -> float | int | None:
        value = node.get(key)
        if value is None:
            return None
        kind = "a whole number" if integer else "a number"
        low_text = f"above {low:g}" if open_low else f"{low:g}"
        accepted = (
            f"{kind} from {low_text} to {high:g}" if not open_low else f"{kind} {low_text}, at most {high:g}"
        )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and not isinstance(value, int))
        ):
            self.fail(_join(path, key), f"expected {accepted}, found {_kind(value)} {value!r}")
            return None
        if not (low < value if open_low else low <= value) or value > high or value != value:
            self.fail(_join(path, key), f"{value!r} is out of range; accepted: {accepted}")
            return None
        return value

    def flag(self, node: Node, key: str, path: str) -> str | None:
        """A yes/no answer as the PDBx boolean ``YES`` / ``NO``."""
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return "YES" if value else "NO"
        if isinstance(value, str) and value.strip().lower() in {"yes", "no"}:
            return value.strip().upper()
        self.fail(_join(path, key), f"expected true or false, found {_kind(value)} {value!r}")
        return None

    def enum(self, node: Node, key: str, path: str, kind: str) -> str | None:
        text = self.text(node, key, path)
        if text is None:
            return None
        value = lookup(kind, text)
        if value is None:
            self.fail(_join(path, key), enum_problem(kind, text))
        return value

    def each(self, node: Node, key: str, path: str, read: Callable[[object, str, int], None]) -> None:
        for index, element in enumerate(self.items(node, key, path)):
            read(element, f"{_join(path, key)}[{index}]", index)

    # -- topics -------------------------------------------------------------------------------------
    def document(self, root: object) -> None:
        accepted = (
            "title",
            "keywords",
            "authors",
            "funding",
            "citation",
            "aggregation_state",
            "sample",
            "specimen",
            "microscope",
            "detector",
            "contour_level",
            "half_map_contour_level",
        )
        node = self.fields(root, "", accepted)
        if node is None:
            return
        title = self.text(node, "title", "")
        if title is not None:
            self.put("em_admin", "title", title, "title")
            self.put("em_admin", "entry_id", self.entry, "title")
        self.keywords(node)
        authors = self.authors(node, "authors", "")
        for ordinal, (name, orcid, path) in enumerate(authors, start=1):
            values: dict[str, FieldValue] = {"author": name, "ordinal": ordinal}
            if orcid is not None:
                values["identifier_ORCID"] = orcid
            self.keys("em_author_list", values, path, ordinal - 1)
        self.each(node, "funding", "", self.funding)
        if "citation" in node:
            self.citation(node["citation"], authors)
        state = self.enum(node, "aggregation_state", "", "aggregation_state")
        if state is not None:
            self.put("em_experiment", "aggregation_state", state, "aggregation_state")
        if "sample" in node:
            self.sample(node["sample"])
        if "specimen" in node:
            self.specimen(node["specimen"])
        if "microscope" in node:
            self.microscope(node["microscope"])
        if "detector" in node:
            microscope = node.get("microscope")
            energy_filter = microscope.get("energy_filter") if isinstance(microscope, Mapping) else None
            self.detector(node["detector"], energy_filter if isinstance(energy_filter, str) else None)
        for key in ("contour_level", "half_map_contour_level"):
            self.number(node, key, "", -1e9, 1e9)

    def keywords(self, node: Node) -> None:
        value = node.get("keywords")
        if value is None:
            return
        words = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if words is None or not all(isinstance(word, str) and word.strip() for word in words) or not words:
            self.fail("keywords", f"expected a list of keywords (text), found {_kind(value)}")
            return
        self.put("struct_keywords", "entry_id", self.entry, "keywords")
        self.put("struct_keywords", "text", ", ".join(str(word).strip() for word in words), "keywords")

    def authors(self, node: Node, key: str, path: str) -> list[tuple[str, str | None, str]]:
        """(name, ORCID or None, key path) of each author of a list of "Last, F." or {name, orcid}."""
        found: list[tuple[str, str | None, str]] = []
        what = "a name written 'Last, F.' (family name, comma, initials)"
        for index, element in enumerate(self.items(node, key, path)):
            where = f"{_join(path, key)}[{index}]"
            if isinstance(element, str):
                if AUTHOR_NAME.match(element.strip()):
                    found.append((element.strip(), None, where))
                else:
                    self.fail(where, f"{element!r} is not {what}")
                continue
            entry = self.fields(element, where, ("name", "orcid"))
            if entry is None:
                continue
            name = self.text(entry, "name", where, AUTHOR_NAME, what)
            orcid = self.text(entry, "orcid", where, ORCID, "an ORCID iD (0000-0000-0000-0000)")
            if name is None:
                if "name" not in entry:
                    self.fail(_join(where, "name"), f"missing; expected {what}")
                continue
            found.append((name, orcid, where))
        return found

    def funding(self, element: object, where: str, index: int) -> None:
        entry = self.fields(element, where, ("organization", "grant_number", "country"))
        if entry is None:
            return
        values: dict[str, FieldValue] = {"ordinal": index + 1}
        for key, item in (
            ("organization", "funding_organization"),
            ("grant_number", "grant_number"),
            ("country", "country"),
        ):
            text = self.text(entry, key, where)
            if text is not None:
                values[item] = text
        if "organization" not in entry:
            self.fail(_join(where, "organization"), "missing; every funding entry names its organization")
        self.keys("pdbx_audit_support", values, where, index)

    def citation(self, root: object, entry_authors: list[tuple[str, str | None, str]]) -> None:
        path = "citation"
        accepted = (
            "title",
            "journal",
            "authors",
            "year",
            "volume",
            "first_page",
            "last_page",
            "doi",
            "pubmed",
        )
        node = self.fields(root, path, accepted)
        if node is None:
            return
        self.put("citation", "id", "primary", path)
        title = self.text(node, "title", path)
        if title is not None:
            self.put("citation", "title", title, f"{path}.title")
        journal = self.text(node, "journal", path)
        if journal is not None:
            unpublished = journal.lower() == TO_BE_PUBLISHED.lower()
            abbreviation = TO_BE_PUBLISHED if unpublished else journal
            self.put("citation", "journal_abbrev", abbreviation, f"{path}.journal")
            self.put("citation", "unpublished_flag", "Y" if unpublished else "N", f"{path}.journal")
        year = self.number(node, "year", path, 1900, 2100, integer=True)
        if year is not None:
            self.put("citation", "year", int(year), f"{path}.year")
        for key, item in (
            ("volume", "journal_volume"),
            ("first_page", "page_first"),
            ("last_page", "page_last"),
        ):
            value = self.text(node, key, path)
            if value is not None:
                self.put("citation", item, value, f"{path}.{key}")
        doi = self.text(node, "doi", path, DOI, "a DOI (10.xxxx/...)")
        if doi is not None:
            self.put("citation", "pdbx_database_id_DOI", doi, f"{path}.doi")
        pubmed = self.number(node, "pubmed", path, 1, 1e10, integer=True)
        if pubmed is not None:
            self.put("citation", "pdbx_database_id_PubMed", int(pubmed), f"{path}.pubmed")
        authors = self.authors(node, "authors", path) if "authors" in node else entry_authors
        for ordinal, (name, orcid, where) in enumerate(authors, start=1):
            values: dict[str, FieldValue] = {"citation_id": "primary", "name": name, "ordinal": ordinal}
            if orcid is not None:
                values["identifier_ORCID"] = orcid
            self.keys("citation_author", values, where, ordinal - 1)

    def sample(self, root: object) -> None:
        node = self.fields(root, "sample", ("name", "supramolecules"))
        if node is None:
            return
        sample_name = self.text(node, "name", "sample")
        parents: dict[int, tuple[int, str]] = {}
        rows: dict[int, int] = {}

        def read(element: object, where: str, index: int) -> None:
            accepted = (
                "id",
                "name",
                "parent",
                "type",
                "source",
                "organism",
                "ncbi_taxid",
                "strain",
                "tissue",
                "cell",
                "organ",
                "expression_system",
                "expression_system_taxid",
                "expression_system_strain",
                "plasmid",
                "molecular_weight_mda",
                "number_of_copies",
                "oligomeric_state",
                "details",
            )
            entry = self.fields(element, where, accepted)
            if entry is None:
                return
            for required in ("id", "parent", "source"):
                if required not in entry:
                    self.fail(
                        _join(where, required), "missing; every supramolecule needs id, parent and source"
                    )
            number = self.number(entry, "id", where, 1, 10**6, integer=True)
            parent = self.number(entry, "parent", where, 0, 10**6, integer=True)
            if number is not None and int(number) in rows:
                self.fail(
                    _join(where, "id"), f"{number} is already the id of another supramolecule; ids are unique"
                )
                return
            name = self.text(entry, "name", where)
            if name is None and parent == 0 and sample_name is not None:
                name = sample_name
            if name is None and "name" not in entry:
                self.fail(_join(where, "name"), "missing; every supramolecule needs a name")
            if number is None or parent is None:
                return
            ident = int(number)
            rows[ident] = index
            parents[ident] = (int(parent), where)
            values: dict[str, FieldValue] = {"id": str(ident), "parent_id": int(parent)}
            if name is not None:
                values["name"] = name
            kind = self.text(entry, "type", where)
            assembly_type = "COMPLEX" if kind is None else kind.upper()
            if assembly_type not in ASSEMBLY_TYPES:
                self.fail(
                    _join(where, "type"),
                    f"{kind!r} is not a supramolecule type; accepted: {', '.join(ASSEMBLY_TYPES)}",
                )
            elif kind is None:
                self.out.set(
                    "em_entity_assembly",
                    "type",
                    assembly_type,
                    Evidence.default("supramolecule type COMPLEX when not given"),
                    index,
                )
            else:
                values["type"] = assembly_type
            source = self.enum(entry, "source", where, "assembly_source")
            if source is not None:
                values["source"] = source
            for key, item in (("oligomeric_state", "oligomeric_details"), ("details", "details")):
                text = self.text(entry, key, where)
                if text is not None:
                    values[item] = text
            copies = self.number(entry, "number_of_copies", where, 1, 10**6, integer=True)
            if copies is not None:
                values["number_of_copies"] = int(copies)
            self.keys("em_entity_assembly", values, where, index)
            self.organism(entry, where, ident)
            weight = self.number(entry, "molecular_weight_mda", where, 0, 10**5, open_low=True)
            if weight is not None:
                row = len(self.out.rows("em_entity_assembly_molwt"))
                molwt: dict[str, FieldValue] = {
                    "id": str(row + 1),
                    "entity_assembly_id": str(ident),
                    "value": float(weight),
                }
                self.keys(
                    "em_entity_assembly_molwt",
                    {**molwt, "units": "MEGADALTONS", "experimental_flag": "NO"},
                    _join(where, "molecular_weight_mda"),
                    row,
                )

        self.each(node, "supramolecules", "sample", read)
        if "supramolecules" not in node:
            self.fail(
                "sample.supramolecules",
                "missing; list the sample's components (the whole sample has parent 0)",
            )
        self.tree(parents)
        roots = [ident for ident, (parent, _) in parents.items() if parent == 0]
        if roots:
            self.put("em_experiment", "entity_assembly_id", str(min(roots)), "sample.supramolecules")

    def organism(self, entry: Node, where: str, ident: int) -> None:
        natural = self.pair(entry, where, "organism", "ncbi_taxid")
        if natural is not None:
            row = len(self.out.rows("em_entity_assembly_naturalsource"))
            values: dict[str, FieldValue] = {"id": str(row + 1), "entity_assembly_id": str(ident)}
            values |= {"organism": natural[0], "ncbi_tax_id": natural[1]}
            for key in ("strain", "tissue", "cell", "organ"):
                text = self.text(entry, key, where)
                if text is not None:
                    values[key] = text
            self.keys("em_entity_assembly_naturalsource", values, _join(where, "organism"), row)
        expression = self.pair(entry, where, "expression_system", "expression_system_taxid")
        if expression is not None:
            row = len(self.out.rows("em_entity_assembly_recombinant"))
            values = {"id": str(row + 1), "entity_assembly_id": str(ident)}
            values |= {"organism": expression[0], "ncbi_tax_id": expression[1]}
            for key, item in (("expression_system_strain", "strain"), ("plasmid", "plasmid")):
                text = self.text(entry, key, where)
                if text is not None:
                    values[item] = text
            self.keys("em_entity_assembly_recombinant", values, _join(where, "expression_system"), row)

    def pair(self, entry: Node, where: str, name_key: str, taxid_key: str) -> tuple[str, int] | None:
        """An organism name with its NCBI taxonomy id: both or neither."""
        name = self.text(entry, name_key, where)
        taxid = self.number(entry, taxid_key, where, 1, 10**8, integer=True)
        if (name_key in entry) != (taxid_key in entry):
            given, absent = (name_key, taxid_key) if name_key in entry else (taxid_key, name_key)
            self.fail(
                _join(where, absent),
                f"missing; {given} needs {absent} too (organism name and NCBI taxonomy id)",
            )
            return None
        return (name, int(taxid)) if name is not None and taxid is not None else None

    def tree(self, parents: dict[int, tuple[int, str]]) -> None:
        """One whole sample (parent 0), every parent known, no cycles."""
        if not parents:
            return
        roots = [ident for ident, (parent, _) in parents.items() if parent == 0]
        if len(roots) != 1:
            self.fail(
                "sample.supramolecules",
                f"expected exactly one supramolecule with parent 0 (the whole sample), found {len(roots)}",
            )
        for ident, (parent, where) in sorted(parents.items()):
            if parent != 0 and parent not in parents:
                self.fail(
                    _join(where, "parent"),
                    f"{parent} is not the id of a supramolecule; accepted: 0 or one of {sorted(parents)}",
                )
                continue
            seen = {ident}
            while parent != 0 and parent in parents:
                if parent in seen:
                    self.fail(_join(where, "parent"), f"supramolecule {ident} is its own ancestor")
                    break
                seen.add(parent)
                parent = parents[parent][0]

    def specimen(self, root: object) -> None:
        path = "specimen"
        accepted = (
            "concentration_mg_ml",
            "buffer",
            "grid",
            "vitrification",
            "staining",
            "embedding",
            "shadowing",
            "details",
        )
        node = self.fields(root, path, accepted)
        if node is None:
            return
        self.keys("em_specimen", {"id": "1", "experiment_id": "1"}, path)
        concentration = self.number(node, "concentration_mg_ml", path, 0, 1000, open_low=True)
        if concentration is not None:
            self.put("em_specimen", "concentration", float(concentration), f"{path}.concentration_mg_ml")
        details = self.text(node, "details", path)
        if details is not None:
            self.put("em_specimen", "details", details, f"{path}.details")
        for key, item in (
            ("staining", "staining_applied"),
            ("embedding", "embedding_applied"),
            ("shadowing", "shadowing_applied"),
        ):
            answer = self.flag(node, key, path)
            if answer is not None:
                self.put("em_specimen", item, answer, f"{path}.{key}")
        if "buffer" in node:
            self.buffer(node["buffer"])
        if "grid" in node:
            self.grid(node["grid"])
        vitrification = node.get("vitrification")
        if vitrification is False:
            self.put("em_specimen", "vitrification_applied", "NO", f"{path}.vitrification")
        elif vitrification is not None:
            self.put("em_specimen", "vitrification_applied", "YES", f"{path}.vitrification")
            self.vitrification(vitrification)

    def buffer(self, root: object) -> None:
        path = "specimen.buffer"
        node = self.fields(root, path, ("ph", "name", "details", "components"))
        if node is None:
            return
        self.keys("em_buffer", {"id": "1", "specimen_id": "1"}, path)
        ph = self.number(node, "ph", path, 0, 14)
        if ph is not None:
            self.put("em_buffer", "pH", float(ph), f"{path}.ph")
        for key in ("name", "details"):
            text = self.text(node, key, path)
            if text is not None:
                self.put("em_buffer", key, text, f"{path}.{key}")

        def read(element: object, where: str, index: int) -> None:
            entry = self.fields(element, where, ("name", "concentration_mM", "formula"))
            if entry is None:
                return
            values: dict[str, FieldValue] = {"id": str(index + 1), "buffer_id": "1"}
            name = self.text(entry, "name", where)
            if name is None and "name" not in entry:
                self.fail(_join(where, "name"), "missing; every buffer component needs a name")
            if name is not None:
                values["name"] = name
            concentration = self.number(entry, "concentration_mM", where, 0, 10**5)
            if concentration is not None:
                values |= {"concentration": float(concentration), "concentration_units": "mM"}
            formula = self.text(entry, "formula", where)
            if formula is not None:
                values["formula"] = formula
            self.keys("em_buffer_component", values, where, index)

        self.each(node, "components", path, read)

    def grid(self, root: object) -> None:
        path = "specimen.grid"
        node = self.fields(
            root, path, ("model", "material", "mesh", "support_film", "pretreatment", "details")
        )
        if node is None:
            return
        self.keys("em_sample_support", {"id": "1", "specimen_id": "1"}, path)
        model = self.text(node, "model", path)
        if model is not None:
            self.put("em_sample_support", "grid_type", model, f"{path}.model")
        material = self.enum(node, "material", path, "grid_material")
        if material is not None:
            self.put("em_sample_support", "grid_material", material, f"{path}.material")
        mesh = self.number(node, "mesh", path, 1, 5000, integer=True)
        if mesh is not None:
            self.put("em_sample_support", "grid_mesh_size", int(mesh), f"{path}.mesh")
        details = self.text(node, "details", path)
        if details is not None:
            self.put("em_sample_support", "details", details, f"{path}.details")
        if "support_film" in node:
            where = f"{path}.support_film"
            film = self.fields(node["support_film"], where, ("material", "topology", "thickness_nm"))
            if film is not None:
                self.keys("em_support_film", {"id": "1", "sample_support_id": "1"}, where)
                for key, kind in (("material", "film_material"), ("topology", "film_topology")):
                    value = self.enum(film, key, where, kind)
                    if value is not None:
                        self.put("em_support_film", key, value, f"{where}.{key}")
                thickness = self.number(film, "thickness_nm", where, 0, 10**4, open_low=True)
                if thickness is not None:
                    self.put("em_support_film", "thickness", float(thickness) * 10.0, f"{where}.thickness_nm")
        if "pretreatment" in node:
            where = f"{path}.pretreatment"
            treatment = self.fields(
                node["pretreatment"], where, ("type", "time_s", "atmosphere", "pressure_pa")
            )
            if treatment is not None:
                self.keys("em_grid_pretreatment", {"id": "1", "sample_support_id": "1"}, where)
                for key, kind in (("type", "pretreatment_type"), ("atmosphere", "pretreatment_atmosphere")):
                    value = self.enum(treatment, key, where, kind)
                    if value is not None:
                        self.put("em_grid_pretreatment", key, value, f"{where}.{key}")
                time = self.number(treatment, "time_s", where, 1, 10**5, integer=True)
                if time is not None:
                    self.put("em_grid_pretreatment", "time", int(time), f"{where}.time_s")
                pressure = self.number(treatment, "pressure_pa", where, 0, 10**6)
                if pressure is not None:
                    self.put("em_grid_pretreatment", "pressure", float(pressure), f"{where}.pressure_pa")

    def vitrification(self, root: object) -> None:
        path = "specimen.vitrification"
        accepted = ("instrument", "cryogen", "humidity_percent", "temperature_k", "method", "details")
        node = self.fields(root, path, accepted)
        if node is None:
            return
        self.keys("em_vitrification", {"entry_id": self.entry, "id": "1", "specimen_id": "1"}, path)
        for key, item, kind in (
            ("instrument", "instrument", "vitrification_instrument"),
            ("cryogen", "cryogen_name", "cryogen"),
        ):
            value = self.enum(node, key, path, kind)
            if value is not None:
                self.put("em_vitrification", item, value, f"{path}.{key}")
        humidity = self.number(node, "humidity_percent", path, 0, 100)
        if humidity is not None:
            self.put("em_vitrification", "humidity", float(humidity), f"{path}.humidity_percent")
        temperature = self.number(node, "temperature_k", path, 0, 400, open_low=True)
        if temperature is not None:
            self.put("em_vitrification", "chamber_temperature", float(temperature), f"{path}.temperature_k")
        for key in ("method", "details"):
            text = self.text(node, key, path)
            if text is not None:
                self.put("em_vitrification", key, text, f"{path}.{key}")

    def microscope(self, root: object) -> None:
        path = "microscope"
        accepted = (
            "model",
            "illumination_mode",
            "imaging_mode",
            "electron_source",
            "specimen_holder",
            "nominal_defocus_min_um",
            "nominal_defocus_max_um",
            "nominal_magnification",
            "calibrated_magnification",
            "voltage_kv",
            "cs_mm",
            "c2_aperture_um",
            "energy_filter",
            "energy_filter_slit_ev",
            "date",
        )
        node = self.fields(root, path, accepted)
        if node is None:
            return
        self.keys("em_imaging", {"entry_id": self.entry, "id": "1", "specimen_id": "1"}, path)
        for key, item, kind in (
            ("model", "microscope_model", "microscope"),
            ("illumination_mode", "illumination_mode", "illumination_mode"),
            ("imaging_mode", "mode", "imaging_mode"),
            ("electron_source", "electron_source", "electron_source"),
            ("specimen_holder", "specimen_holder_model", "specimen_holder"),
        ):
            value = self.enum(node, key, path, kind)
            if value is not None:
                self.put("em_imaging", item, value, f"{path}.{key}")
        defocus: dict[str, float] = {}
        for key in ("nominal_defocus_min_um", "nominal_defocus_max_um"):
            micrometres = self.number(node, key, path, -20, 100)
            if micrometres is not None:
                defocus[key] = float(micrometres)
                nanometres = round(float(micrometres) * 1000.0, 6)
                self.put("em_imaging", key.removesuffix("_um"), nanometres, f"{path}.{key}")
        if len(defocus) == 2 and defocus["nominal_defocus_min_um"] > defocus["nominal_defocus_max_um"]:
            self.fail(
                f"{path}.nominal_defocus_min_um",
                "is larger than nominal_defocus_max_um; accepted: min <= max",
            )
        for key in ("nominal_magnification", "calibrated_magnification"):
            magnification = self.number(node, key, path, 1, 10**8, integer=True)
            if magnification is not None:
                self.put("em_imaging", key, int(magnification), f"{path}.{key}")
        voltage = self.number(node, "voltage_kv", path, 25, 3000, integer=True)
        if voltage is not None:
            self.put("em_imaging", "accelerating_voltage", int(voltage), f"{path}.voltage_kv")
        for key, item, high in (
            ("cs_mm", "nominal_cs", 20.0),
            ("c2_aperture_um", "c2_aperture_diameter", 10**4),
        ):
            length = self.number(node, key, path, 0, high)
            if length is not None:
                self.put("em_imaging", item, float(length), f"{path}.{key}")
        date = self.text(node, "date", path, DATE, "a date written YYYY-MM-DD")
        if date is not None:
            self.put("em_imaging", "date", date, f"{path}.date")
        energy_filter = self.text(node, "energy_filter", path)
        slit = self.number(node, "energy_filter_slit_ev", path, 0, 10**4, open_low=True)
        if energy_filter is not None or slit is not None:
            self.keys("em_imaging_optics", {"id": "1", "imaging_id": "1"}, path)
            if energy_filter is not None:
                self.put("em_imaging_optics", "energyfilter_name", energy_filter, f"{path}.energy_filter")
            if slit is not None:
                self.put(
                    "em_imaging_optics",
                    "energyfilter_slit_width",
                    float(slit),
                    f"{path}.energy_filter_slit_ev",
                )

    def detector(self, root: object, energy_filter: str | None) -> None:
        path = "detector"
        accepted = (
            "model",
            "mode",
            "dose_per_image_e_per_a2",
            "number_of_images",
            "exposure_time_s",
            "number_of_grids",
        )
        node = self.fields(root, path, accepted)
        if node is None:
            return
        self.keys("em_image_recording", {"id": "1", "imaging_id": "1"}, path)
        model = self.enum(node, "model", path, "detector")
        if model is not None:
            model = detector_enum(model, energy_filter)
            self.put("em_image_recording", "film_or_detector_model", model, f"{path}.model")
        mode = self.enum(node, "mode", path, "detector_mode")
        if mode is not None:
            self.put("em_image_recording", "detector_mode", mode, f"{path}.mode")
        dose = self.number(node, "dose_per_image_e_per_a2", path, 0, 10**4, open_low=True)
        if dose is not None:
            self.put(
                "em_image_recording",
                "avg_electron_dose_per_image",
                float(dose),
                f"{path}.dose_per_image_e_per_a2",
            )
        for key, item in (("number_of_images", "num_real_images"), ("number_of_grids", "num_grids_imaged")):
            count = self.number(node, key, path, 1, 10**9, integer=True)
            if count is not None:
                self.put("em_image_recording", item, int(count), f"{path}.{key}")
        exposure = self.number(node, "exposure_time_s", path, 0, 10**4, open_low=True)
        if exposure is not None:
            self.put(
                "em_image_recording", "average_exposure_time", float(exposure), f"{path}.exposure_time_s"
            )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "text" if isinstance(value, str) else type(value).__name__


def _contour_levels(deposition: Deposition, root: Mapping[str, object], source: str) -> None:
    """Contour levels on the em_map rows already present (rows are made when there are none)."""
    for key, map_type, count in (
        ("contour_level", "primary map", 1),
        ("half_map_contour_level", "half map", 2),
    ):
        level = root.get(key)
        if not isinstance(level, int | float) or isinstance(level, bool):
            continue
        evidence = Evidence.metadata(source, key)
        rows = [
            index
            for index, row in enumerate(deposition.rows("em_map"))
            if (f := row.get("type")) and f.value == map_type
        ]
        if not rows:
            start = len(deposition.rows("em_map"))
            rows = list(range(start, start + count))
            for index in rows:
                deposition.set("em_map", "type", map_type, evidence, index)
        for index in rows:
            deposition.set("em_map", "contour_level", float(level), evidence, index)
            deposition.set("em_map", "contour_level_source", "author", evidence, index)


def load_metadata(path: Path, deposition: Deposition) -> None:
    """Fill ``deposition`` with the items of the metadata file ``path`` (they override existing values).

    Every problem of the file is reported in one DepositionError; nothing is changed when there is one.
    """
    root = read_metadata_file(path)
    reader = _Reader(path.name, deposition)
    reader.document(root)
    if reader.errors:
        listing = "\n".join(f"  - {error}" for error in reader.errors)
        count = len(reader.errors)
        raise DepositionError(
            f"{path}: {count} problem{'s' if count > 1 else ''} in the deposition metadata:\n{listing}"
        )
    deposition.merge(reader.out, overwrite=True)
    if isinstance(root, Mapping):
        _contour_levels(deposition, root, path.name)
