"""A new package is added by writing one Turtle file: no Python change (DESIGN.md decision 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipion_kg.converters.engine import convert_file, read_table
from scipion_kg.converters.geometry import pivot_matrices
from scipion_kg.converters.mapping import ConversionOptions

from scipion_kg.vocabulary import EXTENSION_VARIABLE

# A lab's own STAR dialect: radians, extrinsic zyz equal to A, shifts -o in nm, defocus as mean and
# difference in micrometres with the angle 90 degrees off U. Every piece is an existing primitive.
MYLAB = """
@prefix skg: <https://w3id.org/scipion-kg/ontology#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix unit: <http://qudt.org/vocab/unit/> .

skg:Format_MyLabStar a owl:NamedIndividual , skg:FileFormat ;
    rdfs:label "MyLab STAR"@en ;
    skos:definition "The STAR dialect of the MyLab pipeline."@en ;
    skg:fileExtension ".mystar" ; skg:contentPattern "(?m)^_myA[^A-Za-z0-9]" ;
    skg:formatPriority 60 ; skg:isTextFormat true ;
    skg:syntaxModule "star" .

skg:Convention_MyLab a owl:NamedIndividual , skg:PackageConvention ;
    rdfs:label "MyLab particles"@en ;
    skos:definition "MyLab particle STAR files."@en ;
    skg:conventionForFormat skg:Format_MyLabStar ; skg:tableKind "particles" ; skg:mainBlock "mylab" ;
    skg:rotationEncoding skg:EulerAngleRotation ; skg:eulerSequence "zyz" ;
      skg:matrixRelation skg:PivotMatrix ;
    skg:rotationLabels "myA myB myC" ; skg:angleUnit unit:RAD ;
    skg:shiftLabels "myShiftX myShiftY" ; skg:shiftUnit unit:NanoM ; skg:shiftSign -1 ;
    skg:defocusEncoding skg:DefocusMeanDifference ; skg:defocusLabels "myDefocus myAstig myAstigAngle" ;
    skg:defocusDifferenceSign 1 ; skg:astigmatismAngleOffset 90.0 ;
    skg:defocusUnit unit:MicroM ; skg:defocusAngleUnit unit:DEG ;
    skg:hasColumnMapping
        [ skg:fileLabel "myImage" ; skg:canonicalColumnName "image_name" ] ,
        [ skg:fileLabel "myIndex" ; skg:canonicalColumnName "image_index" ; skg:indexBase 0 ] ,
        [ skg:fileLabel "myKv" ; skg:canonicalColumnName "voltage" ;
          skg:sourceUnit unit:KiloV ; skg:perRowOptics true ] ,
        [ skg:fileLabel "myCs" ; skg:canonicalColumnName "spherical_aberration" ;
          skg:sourceUnit unit:MilliM ; skg:perRowOptics true ] ,
        [ skg:fileLabel "myQ0" ; skg:canonicalColumnName "amplitude_contrast" ;
          skg:sourceUnit unit:PERCENT ; skg:perRowOptics true ] ,
        [ skg:fileLabel "myApix" ; skg:canonicalColumnName "pixel_size" ;
          skg:sourceUnit unit:ANGSTROM ; skg:perRowOptics true ] .
"""


@pytest.fixture
def mylab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "extension"
    folder.mkdir()
    (folder / "mylab.ttl").write_text(MYLAB)
    monkeypatch.setenv(EXTENSION_VARIABLE, str(folder))
    return folder


def test_a_package_declared_in_turtle_converts_both_ways(
    mylab: Path, shared_data: Path, tmp_path: Path
) -> None:
    from scipion_kg.converters import star

    source = shared_data / "formats" / "relion_star" / "cryodrgn_relion31.star"
    original, _ = read_table(source)
    result, _, document = convert_file(source, tmp_path / "particles.mystar")
    assert result.target_convention.name == "skg:Convention_MyLab"
    (tmp_path / "particles.mystar").write_text(star.to_string(document))
    block = document.blocks["mylab"].columns
    # Values as the declaration says: nm, µm, percent, 0-based.
    assert block["myShiftX"][0] == pytest.approx(-original.columns["origin_x"][0] / 10)
    assert block["myQ0"][0] == pytest.approx(
        original.related["optics"].columns["amplitude_contrast"][0] * 100
    )
    assert block["myIndex"][0] == original.columns["image_index"][0] - 1
    mean = (original.columns["defocus_u"][0] + original.columns["defocus_v"][0]) / 2e4
    assert block["myDefocus"][0] == pytest.approx(mean)

    back, convention = read_table(tmp_path / "particles.mystar")
    assert convention.name == "skg:Convention_MyLab"
    for column in ("origin_x", "origin_y", "defocus_u", "defocus_v", "image_index"):
        assert np.allclose(back.columns[column], original.columns[column], atol=1e-6), column
    angles = [np.asarray(t.columns["defocus_angle"], dtype=float) for t in (back, original)]
    angle_difference = (angles[0] - angles[1] + 90) % 180 - 90
    assert np.allclose(angle_difference, 0, atol=1e-6)
    pose = [
        np.column_stack([t.columns[c] for c in ("angle_rot", "angle_tilt", "angle_psi")])
        for t in (back, original)
    ]
    assert np.allclose(pivot_matrices(pose[0]), pivot_matrices(pose[1]), atol=1e-9)

    relion, _, _ = convert_file(
        tmp_path / "particles.mystar", tmp_path / "again.star", options=ConversionOptions()
    )
    assert relion.target_convention.name == "skg:Convention_RELION31"


def test_without_the_extension_the_format_is_unknown(tmp_path: Path, shared_data: Path) -> None:
    from scipion_kg.errors import ConversionError

    source = shared_data / "formats" / "relion_star" / "cryodrgn_relion31.star"
    with pytest.raises(ConversionError, match=r"particles\.mystar"):
        convert_file(source, tmp_path / "particles.mystar")
