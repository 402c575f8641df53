"""Table and set validation: the shapes cover the canonical columns, the compiled checks agree with pySHACL
on random tables, verdicts do not depend on the RDF store, the checks come from the Turtle (an edited copy
changes them), and real files give the verdicts their numbers call for."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyoxigraph as ox
import pyshacl
import pytest
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipion_kg.converters.canonical import CANONICAL_COLUMNS, TABLE_KINDS, SetMetadata, Table
from scipion_kg.converters.raw import infer_column

from scipion_kg.errors import OntologyError, TableValidationError
from scipion_kg.namespaces import SKG, UNIT, XSD, expand
from scipion_kg.table_shapes import SH, TableShapes, shapes_graph, table_shapes
from scipion_kg.table_validation import (
    set_metadata_graph,
    table_sample_graph,
    validate_set,
    validate_table,
)
from scipion_kg.vocabulary import load_rdflib_graph, ontology_dir

SKGSH = "https://w3id.org/scipion-kg/shapes#"
TABLE = "https://example.org/table"
ResultKey = tuple[str, str | None, str, str]


def pyshacl_keys(data: rdflib.Graph, shacl: rdflib.Graph | None = None) -> tuple[bool, set[ResultKey]]:
    """pySHACL's verdict: conforms, and the (focus node, path, constraint component, shape) of each result."""
    conforms, report, _ = pyshacl.validate(
        data, shacl_graph=shacl or shapes_graph(), inference="none", advanced=True, allow_warnings=True
    )
    sh = rdflib.Namespace(SH)
    keys = set()
    for node in report.subjects(rdflib.RDF.type, sh.ValidationResult):
        path = report.value(node, sh.resultPath)
        keys.add(
            (
                str(report.value(node, sh.focusNode)),
                str(path) if path is not None else None,
                str(report.value(node, sh.sourceConstraintComponent)),
                str(report.value(node, sh.sourceShape)),
            )
        )
    return bool(conforms), keys


def through_oxigraph(graph: rdflib.Graph) -> rdflib.Graph:
    """What an Oxigraph-backed graph gives back: load into a store, dump N-Triples, parse with rdflib."""
    store = ox.Store()
    store.load(graph.serialize(format="nt", encoding="utf-8"), format=ox.RdfFormat.N_TRIPLES)
    text = store.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=ox.DefaultGraph()) or b""
    return rdflib.Graph().parse(data=text.decode("utf-8"), format="nt")


# ---------------------------------------------------------------------------------------------------
# The ontology module and the shapes cover the canonical vocabulary


def tables_module_with_imports() -> rdflib.Graph:
    """ontology/tables.ttl and the modules it imports (the properties it reuses are declared there)."""
    tables = ontology_dir() / "tables.ttl"
    module = rdflib.Graph().parse(tables, format="turtle")
    imports = sorted(str(iri) for iri in module.objects(None, rdflib.OWL.imports))
    return load_rdflib_graph([tables] + [ontology_dir() / f"{iri.rsplit('/', 1)[1]}.ttl" for iri in imports])


def test_every_canonical_column_is_one_property_with_its_unit_and_datatype() -> None:
    ontology = tables_module_with_imports()
    shapes = table_shapes()
    assert set(shapes.column_property) == set(CANONICAL_COLUMNS)
    ranges = {
        "float": {XSD + "double"},
        "int": {XSD + "integer", XSD + "nonNegativeInteger"},
        "str": {XSD + "string"},
    }
    # canonical.py names the pixel unit skg:Pixel; the ontology's pixel unit is QUDT's unit:PIXEL_COUNT.
    aliases = {SKG + "Pixel": UNIT + "PIXEL_COUNT"}
    for name, spec in CANONICAL_COLUMNS.items():
        prop = rdflib.URIRef(shapes.column_property[name])
        assert (prop, rdflib.RDF.type, rdflib.OWL.DatatypeProperty) in ontology, name
        assert {str(r) for r in ontology.objects(prop, rdflib.RDFS.range)} <= ranges[spec.dtype], name
        units = {str(u) for u in ontology.objects(prop, rdflib.URIRef(SKG + "unit"))}
        if spec.unit is None:
            assert units <= {UNIT + "UNITLESS", UNIT + "FRACTION"}, name
        else:
            unit = expand(spec.unit)
            assert units == {aliases.get(unit, unit)}, name


def test_every_column_of_a_kind_has_a_value_shape_with_the_columns_datatype() -> None:
    shapes = table_shapes()
    datatypes = {"float": XSD + "double", "int": XSD + "integer", "str": XSD + "string"}
    for kind, columns in TABLE_KINDS.items():
        checks = shapes.row_shape(kind).checks
        assert {c.column for c in checks} == set(columns), kind
        for check in checks:
            if check.datatype is not None:
                assert check.datatype == datatypes[CANONICAL_COLUMNS[check.column].dtype], check.shape


def test_required_columns_per_row_kind() -> None:
    shapes = table_shapes()
    # Subtomogram tables name no image and CTFFIND numbers its micrographs: nothing required there.
    assert shapes.row_shape("particles").required_columns == frozenset()
    assert shapes.row_shape("optics").required_columns == {"optics_group"}
    assert shapes.row_shape("micrographs").required_columns == frozenset()
    assert shapes.row_shape("coordinates").required_columns == {"coordinate_x", "coordinate_y"}
    assert shapes.row_shape("tilt_series").required_columns == frozenset()


def test_nan_infinities_and_empty_strings_are_caught_in_every_column() -> None:
    """A double value shape has both bounds (NaN fails the lower, +INF the upper, -INF the lower); a
    string value shape has sh:minLength 1."""
    for kind in TABLE_KINDS:
        for check in table_shapes().row_shape(kind).checks:
            if check.datatype == XSD + "double":
                assert check.min_inclusive is not None or check.min_exclusive is not None, check.shape
                assert check.max_inclusive is not None or check.max_exclusive is not None, check.shape
            if check.datatype == XSD + "string":
                assert check.min_length == 1, check.shape


# ---------------------------------------------------------------------------------------------------
# (a) The compiled checks agree with pySHACL on random tables

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.07,
            7.0,
            0.1,
            0.0999,
            2.7,
            300.0,
            300000.0,
            360.0,
            -360.0,
            360.5,
            1e6,
            -1e6,
            2e5,
            1e-10,
        ]
    ),
)
INTS = st.one_of(st.integers(-3, 5), st.sampled_from([65536, 65537, 2**31 - 1, 2**31, -(2**31)]))
STRINGS = st.one_of(
    st.sampled_from(["", " ", "C1", "c7", "X5", "Extract/job012/stack_001.mrcs", "opticsGroup1"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6),
)
ELEMENTS = {"float": FLOATS, "int": INTS, "str": STRINGS}
DTYPES: dict[str, type] = {"float": np.float64, "int": np.int64, "str": np.str_}


@st.composite
def tables(draw: st.DrawFn) -> Table:
    kind = draw(st.sampled_from(sorted(TABLE_KINDS)))
    n_rows = draw(st.integers(1, 4))
    names = draw(st.sets(st.sampled_from(sorted(TABLE_KINDS[kind])), min_size=1, max_size=12))
    columns: dict[str, npt.NDArray[np.generic]] = {}
    for name in sorted(names):
        right = CANONICAL_COLUMNS[name].dtype
        dtype = draw(st.sampled_from([right, right, right, "float", "int", "str"]))
        values = draw(st.lists(ELEMENTS[dtype], min_size=n_rows, max_size=n_rows))
        columns[name] = np.array(values, dtype=DTYPES[dtype])
    return Table(kind, columns)


def compiled_keys(table: Table, shapes: TableShapes | None = None) -> tuple[bool, set[ResultKey]]:
    report = validate_table(table, TABLE, shapes=shapes, max_results=10**6, include_related=False)
    assert report.total == len(report.results)
    return report.conforms, {r.key for r in report.results}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_compiled_checks_give_the_verdicts_of_pyshacl(table: Table) -> None:
    expected = pyshacl_keys(table_sample_graph(table, None, TABLE))
    assert compiled_keys(table) == expected


@pytest.mark.parametrize(
    ("kind", "columns", "component", "shape"),
    [
        ("optics", {"pixel_size": [-1.0]}, "MinInclusive", "pixelSize-value"),
        ("optics", {"pixel_size": [0.0]}, "MinInclusive", "pixelSize-value"),
        ("optics", {"pixel_size": [1e6]}, "MaxInclusive", "pixelSize-value"),
        ("optics", {"amplitude_contrast": [7.0]}, "MaxInclusive", "amplitudeContrast-value"),
        ("optics", {"voltage": [300000.0]}, "MaxInclusive", "accelerationVoltage-value"),
        ("optics", {"spherical_aberration": [2700.0]}, "MaxInclusive", "sphericalAberration-value"),
        ("particles", {"defocus_u": [float("nan")]}, "MinInclusive", "defocusU-value"),
        ("particles", {"defocus_u": [float("inf")]}, "MaxInclusive", "defocusU-value"),
        ("particles", {"half_set": [0]}, "MinInclusive", "halfSet-value"),
        ("particles", {"image_index": [0]}, "MinInclusive", "imageIndex-value"),
        ("particles", {"image_name": [""]}, "MinLength", "imageName-value"),
        ("particles", {"class_number": [1.0]}, "Datatype", "classNumber-value"),
        ("particles", {"angle_psi": [20196.76]}, "MaxInclusive", "anglePsi-value"),
        ("tilt_series", {"tilt_angle": [-91.0]}, "MinInclusive", "tiltAngle-value"),
        ("tilt_series", {"magnification": [0.0]}, "MinExclusive", "viewMagnification-value"),
    ],
)
def test_absurd_values_are_caught(
    kind: str, columns: dict[str, list[object]], component: str, shape: str
) -> None:
    table = Table(kind, {name: np.array(values) for name, values in columns.items()})
    report = validate_table(table, TABLE)
    assert report.count(SKGSH + shape, SH + component + "ConstraintComponent") == 1
    assert compiled_keys(table) == pyshacl_keys(table_sample_graph(table, None, TABLE))


def test_a_missing_required_column_is_a_min_count_result_on_every_row() -> None:
    table = Table("coordinates", {"coordinate_x": np.array([10.0, 20.0, 30.0])})
    report = validate_table(table, TABLE)
    assert not report.conforms
    assert [(r.focus_node, r.source_constraint_component) for r in report.results] == [
        (f"{TABLE}#row-{i}", SH + "MinCountConstraintComponent") for i in (1, 2, 3)
    ]
    assert report.results[0].source_shape == SKGSH + "CoordinateRow-coordinateY-required"


def test_related_tables_are_validated_under_their_own_iri() -> None:
    table = Table("particles", {"image_name": np.array(["a.mrcs"]), "image_index": np.array([1])})
    table.related["optics"] = Table("optics", {"pixel_size": np.array([1000.0])})
    report = validate_table(table, TABLE)
    assert {r.focus_node for r in report.results} == {f"{TABLE}/optics#row-1"}
    assert report.total == 2  # the group number is missing and 1000 Å/px is absurd


def test_results_are_capped_per_shape_but_all_are_counted() -> None:
    defocus = np.full(250, 1.0e4)
    defocus[::2] = np.nan
    table = Table(
        "particles",
        {"image_name": np.full(250, "a.mrcs"), "image_index": np.arange(1, 251), "defocus_u": defocus},
    )
    report = validate_table(table, TABLE, max_results=100)
    assert report.total == 125
    assert len(report.results) == 100 and report.truncated
    assert report.results[0].focus_node == f"{TABLE}#row-1"


def test_the_rdf_report_is_a_shacl_validation_report() -> None:
    table = Table("optics", {"optics_group": np.array([1, 2]), "amplitude_contrast": np.array([7.0, 0.1])})
    report = validate_table(table, TABLE)
    graph = rdflib.Graph().parse(data=report.to_rdf(), format="turtle")
    sh = rdflib.Namespace(SH)
    root = graph.value(None, rdflib.RDF.type, sh.ValidationReport)
    assert graph.value(root, sh.conforms) == rdflib.Literal(False)
    results = list(graph.objects(root, sh.result))
    assert len(results) == report.total == 1  # AC 7.0 (a percentage written where a fraction belongs)
    values = {graph.value(r, sh.value) for r in results} - {None}
    assert values == {rdflib.Literal("7.0", datatype=rdflib.XSD.double)}
    assert report.to_rdf() == validate_table(table, TABLE).to_rdf()


def test_a_column_of_objects_is_refused_with_its_name() -> None:
    table = Table(
        "particles", {"image_name": np.array(["a", None], dtype=object), "image_index": np.array([1, 2])}
    )
    with pytest.raises(TableValidationError, match="image_name"):
        validate_table(table, TABLE)


# ---------------------------------------------------------------------------------------------------
# (b) Verdicts do not depend on the store

SET_TURTLE = """
@prefix skg: <https://w3id.org/scipion-kg/ontology#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
skg:ParticleSet rdfs:subClassOf skg:ImageSet . skg:ImageSet rdfs:subClassOf skg:EMSet .
<https://example.org/set> a skg:ParticleSet ;
  skg:pixelSize "{pixel}"^^xsd:double ; skg:accelerationVoltage "{voltage}"^^xsd:double ;
  skg:sphericalAberration "{cs}"^^xsd:double ; skg:amplitudeContrast "{ac}"^^xsd:double ;
  skg:boxSize "{box}"^^xsd:integer ; skg:pointGroup "{sym}"^^xsd:string .
"""
GOOD_SET = {"pixel": "1.0", "voltage": "300.0", "cs": "2.70", "ac": "0.10", "box": "0256", "sym": "C1"}
BAD_SET = {"pixel": "-1.0", "voltage": "300000.0", "cs": "2700.0", "ac": "7.0", "box": "0", "sym": "X5"}


@pytest.mark.parametrize(
    "normalize", [True, False], ids=["rdflib-normalised-literals", "exact-lexical-forms"]
)
@pytest.mark.parametrize(
    ("values", "n_results"), [(GOOD_SET, 0), (BAD_SET, 6)], ids=["conforming", "violating"]
)
def test_pyshacl_verdicts_are_the_same_on_rdflib_and_oxigraph_graphs(
    values: dict[str, str], n_results: int, normalize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rdflib normalises lexical forms by default ("300" read back becomes "300.0" again), so the graphs
    are also compared with normalisation off, where the store's "300" stays "300"."""
    monkeypatch.setattr(rdflib, "NORMALIZE_LITERALS", normalize)
    direct = rdflib.Graph().parse(data=SET_TURTLE.format(**values), format="turtle")
    stored = through_oxigraph(direct)
    assert set(direct) != set(stored)  # the store rewrote terms: ^^xsd:string dropped, "300.0" -> "300"
    voltage = rdflib.URIRef(SKG + "accelerationVoltage")
    if not normalize:
        assert {str(o) for o in direct.objects(None, voltage)} == {values["voltage"]}
        assert {str(o) for o in stored.objects(None, voltage)} == {values["voltage"].removesuffix(".0")}
    conforms, keys = pyshacl_keys(direct)
    assert pyshacl_keys(stored) == (conforms, keys)
    assert conforms is (n_results == 0) and len(keys) == n_results
    assert {r.key for r in validate_set(direct).results} == keys
    assert {r.key for r in validate_set(stored).results} == keys


def test_validate_set_puts_graphs_in_canonical_form_first() -> None:
    """An xsd:int box size fails sh:datatype xsd:integer in rdflib but an Oxigraph store has already turned
    it into xsd:integer; validate_set gives both graphs the store's form, hence one verdict."""
    text = SET_TURTLE.format(**GOOD_SET).replace('"0256"^^xsd:integer', '"256"^^xsd:int')
    direct = rdflib.Graph().parse(data=text, format="turtle")
    stored = through_oxigraph(direct)
    assert pyshacl_keys(direct)[0] is False and pyshacl_keys(stored)[0] is True
    assert validate_set(direct).conforms and validate_set(stored).conforms


SYMMETRIES = st.one_of(
    st.sampled_from(["C1", "c1", "C0", "D7", "d2", "T", "O", "I", "I3", "I6", "T1", "X5", "", "C"]), STRINGS
)


@settings(max_examples=30, deadline=None)
@given(
    st.builds(
        SetMetadata,
        pixel_size=st.none() | FLOATS,
        voltage=st.none() | FLOATS,
        spherical_aberration=st.none() | FLOATS,
        amplitude_contrast=st.none() | FLOATS,
        symmetry=st.none() | SYMMETRIES,
        image_size=st.none() | INTS,
    )
)
def test_set_verdicts_are_the_same_whatever_the_store(metadata: SetMetadata) -> None:
    graph = set_metadata_graph(metadata, "https://example.org/set", SKG + "ParticleSet")
    graph.add((rdflib.URIRef(SKG + "ParticleSet"), rdflib.RDFS.subClassOf, rdflib.URIRef(SKG + "EMSet")))
    direct = rdflib.Graph().parse(data=graph.serialize(format="turtle"), format="turtle")
    assert pyshacl_keys(direct) == pyshacl_keys(through_oxigraph(direct))
    report = validate_set(direct)
    assert (report.conforms, {r.key for r in report.results}) == pyshacl_keys(direct)


@pytest.mark.parametrize(
    ("symmetry", "conforms"),
    [
        ("C1", True),
        ("c1", True),
        ("D7", True),
        ("I3", True),
        ("O", True),
        ("C0", False),
        ("X5", False),
        ("I6", False),
    ],
)
def test_symmetry_is_a_chiral_point_group(symmetry: str, conforms: bool) -> None:
    graph = set_metadata_graph(SetMetadata(symmetry=symmetry), "https://example.org/set", SKG + "ParticleSet")
    assert validate_set(graph).conforms is conforms


# ---------------------------------------------------------------------------------------------------
# (c) The checks come from the Turtle


@pytest.fixture
def shapes_text() -> str:
    return (ontology_dir() / "shapes" / "tables.ttl").read_text(encoding="utf-8")


def edited_copy(text: str, tmp_path: Path, edits: Iterable[tuple[str, str]]) -> Path:
    for pattern, replacement in edits:
        text, n = re.subn(pattern, replacement, text, count=1, flags=re.DOTALL)
        assert n == 1, pattern
    path = tmp_path / "tables.ttl"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_edited_bound_changes_the_compiled_check(shapes_text: str, tmp_path: Path) -> None:
    path = edited_copy(
        shapes_text,
        tmp_path,
        [(r"(skgsh:amplitudeContrast-value a sh:PropertyShape ;.*?sh:maxInclusive )1\.0e0", r"\g<1>100.0e0")],
    )
    optics = Table(
        "optics",
        {
            "optics_group": np.array([1]),
            "pixel_size": np.array([1.0]),
            "voltage": np.array([300.0]),
            "spherical_aberration": np.array([2.7]),
            "amplitude_contrast": np.array([7.0]),
        },
    )
    assert not validate_table(optics, TABLE).conforms
    edited = table_shapes(path)
    assert validate_table(optics, TABLE, shapes=edited).conforms
    shacl = rdflib.Graph().parse(path, format="turtle")
    assert pyshacl_keys(table_sample_graph(optics, None, TABLE), shacl) == (True, set())


def test_an_added_list_and_a_removed_requirement_change_the_compiled_checks(
    shapes_text: str, tmp_path: Path
) -> None:
    path = edited_copy(
        shapes_text,
        tmp_path,
        [
            (
                r"(skgsh:opticsGroupName-value a sh:PropertyShape ;.*?sh:minLength 1) \.",
                r'\g<1> ; sh:in ( "opticsGroup1" "opticsGroup2" ) .',
            ),
            (r"skgsh:CoordinateRow-coordinateY-required ,", ""),
        ],
    )
    edited = table_shapes(path)
    assert edited.row_shape("coordinates").required_columns == {"coordinate_x"}
    optics = Table("optics", {"optics_group_name": np.array(["opticsGroup1", "opticsGroup3"])})
    report = validate_table(optics, TABLE, shapes=edited)
    assert report.count(SKGSH + "opticsGroupName-value", "InConstraintComponent") == 1
    assert [
        r.focus_node
        for r in report.results
        if r.source_constraint_component.endswith("#InConstraintComponent")
    ] == [f"{TABLE}#row-2"]
    shacl = rdflib.Graph().parse(path, format="turtle")
    assert compiled_keys(optics, shapes=edited) == pyshacl_keys(
        table_sample_graph(optics, None, TABLE), shacl
    )
    particles = Table("particles", {"image_name": np.array(["a.mrcs"])})
    assert validate_table(particles, TABLE, shapes=edited).conforms


@pytest.mark.parametrize(
    ("pattern", "replacement", "complaint"),
    [
        (
            r"(skgsh:accelerationVoltage-value a sh:PropertyShape ;.*?sh:maxCount 1) ;",
            r"\g<1> ; sh:in ( 300.0e0 ) ;",
            "sh:in",
        ),
        (
            r"(skgsh:pixelSize-value a sh:PropertyShape ;.*?sh:maxCount 1) ;",
            r'\g<1> ; sh:pattern "^[0-9]" ;',
            "sh:pattern",
        ),
        (
            r"(skgsh:amplitudeContrast-value a sh:PropertyShape ;.*?sh:maxInclusive )1\.0e0",
            r"\g<1>1.0",
            "xsd:double",
        ),
        (r"(skgsh:halfSet-value a sh:PropertyShape ;.*?sh:maxInclusive )2", r"\g<1>2.0e0", "xsd:integer"),
        (
            r"(skgsh:halfSet-value a sh:PropertyShape ;.*?sh:maxCount 1) ;",
            r"\g<1> ; sh:hasValue 1 ;",
            "sh:hasValue",
        ),
        (r'(skgsh:pointGroup-value a sh:PropertyShape ;.*?sh:flags )"i"', r'\g<1>"is"', "flags"),
    ],
)
def test_store_dependent_or_unknown_constraints_are_refused(
    shapes_text: str, tmp_path: Path, pattern: str, replacement: str, complaint: str
) -> None:
    path = edited_copy(shapes_text, tmp_path, [(pattern, replacement)])
    with pytest.raises(OntologyError, match=re.escape(complaint)):
        table_shapes(path)


# ---------------------------------------------------------------------------------------------------
# Real files (RELION STAR files of the shared corpus, read with a minimal loop reader)

RELION_COLUMNS = {
    "rlnCoordinateX": "coordinate_x",
    "rlnCoordinateY": "coordinate_y",
    "rlnCoordinateZ": "coordinate_z",
    "rlnMicrographName": "micrograph_name",
    "rlnTomoName": "tomo_name",
    "rlnCtfMaxResolution": "ctf_max_resolution",
    "rlnCtfFigureOfMerit": "ctf_figure_of_merit",
    "rlnDefocusU": "defocus_u",
    "rlnDefocusV": "defocus_v",
    "rlnDefocusAngle": "defocus_angle",
    "rlnCtfBfactor": "ctf_bfactor",
    "rlnCtfScalefactor": "ctf_scale",
    "rlnPhaseShift": "phase_shift",
    "rlnAngleRot": "angle_rot",
    "rlnAngleTilt": "angle_tilt",
    "rlnAnglePsi": "angle_psi",
    "rlnClassNumber": "class_number",
    "rlnRandomSubset": "half_set",
    "rlnLogLikeliContribution": "log_likelihood",
    "rlnMaxValueProbDistribution": "max_probability",
    "rlnOpticsGroup": "optics_group",
    "rlnOriginXAngst": "origin_x",
    "rlnOriginYAngst": "origin_y",
    "rlnOriginZAngst": "origin_z",
    "rlnOpticsGroupName": "optics_group_name",
    "rlnAmplitudeContrast": "amplitude_contrast",
    "rlnSphericalAberration": "spherical_aberration",
    "rlnVoltage": "voltage",
    "rlnImagePixelSize": "pixel_size",
    "rlnImageSize": "image_size",
    "rlnImageDimensionality": "image_dimensionality",
}


def star_table(path: Path, block: str, kind: str) -> Table:
    """The loop of ``data_<block>`` with its RELION labels renamed to canonical columns (units are
    already the canonical ones in RELION 3.1+ files); ``rlnImageName`` n@stack is split in two."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = [line.strip() for line in lines].index(f"data_{block}")
    labels: list[str] = []
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        text = line.strip()
        if text.startswith("data_"):
            break
        if text.startswith("_"):
            labels.append(text.split()[0][1:])
        elif text and text != "loop_" and not text.startswith("#") and labels:
            rows.append(text.split())
    columns: dict[str, npt.NDArray[np.generic]] = {}
    for index, label in enumerate(labels):
        tokens = [row[index] for row in rows]
        if label == "rlnImageName":
            columns["image_name"] = np.array([t.partition("@")[2] or t for t in tokens])
            if all("@" in t for t in tokens):
                columns["image_index"] = np.array([int(t.partition("@")[0]) for t in tokens])
        elif label in RELION_COLUMNS and RELION_COLUMNS[label] in TABLE_KINDS[kind]:
            columns[RELION_COLUMNS[label]] = infer_column(tokens)
    return Table(kind, columns)


def test_a_relion_31_particle_file_conforms(shared_data: Path) -> None:
    path = shared_data / "formats" / "relion_star" / "cryodrgn_relion31.star"
    particles = star_table(path, "particles", "particles")
    particles.related["optics"] = star_table(path, "optics", "optics")
    assert particles.n_rows == 5
    assert particles.columns["defocus_u"][0] == pytest.approx(13108.082418)
    report = validate_table(particles, TABLE)
    assert report.conforms, report.summary()
    assert report.total == 0


def test_warp2_angles_written_in_degrees_times_180_over_pi_are_caught(shared_data: Path) -> None:
    """Warp 2 template matching wrote rot 3867.465, tilt 671.269, psi 10742.958 for particle 1 (67.5,
    11.716 and 187.5 degrees multiplied once more by 180/pi); counts read with awk over the 1218 rows."""
    path = shared_data / "formats" / "relion_star" / "cryocat_warp2_particles_matching.star"
    particles = star_table(path, "particles", "particles")
    particles.related["optics"] = star_table(path, "optics", "optics")
    assert particles.n_rows == 1218
    report = validate_table(particles, TABLE)
    component = "MaxInclusiveConstraintComponent"
    assert report.count(SKGSH + "angleRot-value", component) == 1218
    assert report.count(SKGSH + "angleTilt-value", component) == 715
    assert report.count(SKGSH + "anglePsi-value", component) == 1173
    assert report.count(SKGSH + "angleRot-value", "MinInclusiveConstraintComponent") == 0
    first = next(r for r in report.results if r.source_shape == SKGSH + "angleRot-value")
    assert (first.focus_node, first.value) == (f"{TABLE}#row-1", 3867.465)
    # The optics block (4.0 A/px, 300 kV, Cs 2.7 mm, amplitude contrast 0.07) is sane.
    assert not [r for r in report.results if "/optics#" in r.focus_node]
