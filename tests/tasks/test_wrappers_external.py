"""Wrappers of programs that cannot be installed here (CTFFIND4, MotionCor2, IMOD) and the shared program
runner: exact command lines and stdin answers, parsing of real or documented outputs, and real runs only
where the program is on PATH (skipped, with the reason, otherwise)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from scipion_kg.tasks.builtin.ctf import CTFParameters, ctf_image
from scipion_kg.tasks.builtin.fourier import centered_fft2, centered_ifft2
from scipion_kg.tasks.wrappers import ctffind, imod, motioncor2, programs

from scipion_kg.errors import ProcessingError

# --- programs.py ------------------------------------------------------------------------------------------


def test_a_missing_program_is_named_with_its_package_and_alternative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SCIPION_KG_RELION_BOGUS_PROGRAM", raising=False)
    with pytest.raises(ProcessingError) as caught:
        programs.find_program("relion_bogus_program")
    message = str(caught.value)
    assert "'relion_bogus_program' is not on PATH" in message
    assert "RELION" in message and "apt-get install relion" in message
    assert "$SCIPION_KG_RELION_BOGUS_PROGRAM" in message
    assert "built-in" in message
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing is installed
    for name in ("ctffind", "MotionCor2", "tiltxcorr"):
        monkeypatch.delenv(programs.env_var_for(name), raising=False)
    with pytest.raises(ProcessingError, match=r"CTFFIND 4\.1"):
        programs.find_program("ctffind")
    with pytest.raises(ProcessingError, match=r"MotionCor2 .*GPU.*relion_run_motioncorr --use_own"):
        programs.find_program("MotionCor2")
    with pytest.raises(ProcessingError, match="IMOD"):
        programs.find_program("tiltxcorr")


def test_the_environment_variable_overrides_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCIPION_KG_CTFFIND", sys.executable)
    assert programs.find_program("ctffind") == Path(sys.executable)
    not_executable = tmp_path / "ctffind"
    not_executable.write_text("#!/bin/sh\n")
    monkeypatch.setenv("SCIPION_KG_CTFFIND", str(not_executable))
    with pytest.raises(ProcessingError, match=r"\$SCIPION_KG_CTFFIND is set to .* not an executable"):
        programs.find_program("ctffind")
    assert programs.env_var_for("MotionCor2") == "SCIPION_KG_MOTIONCOR2"
    assert programs.env_var_for("relion_refine_mpi") == "SCIPION_KG_RELION_REFINE_MPI"


def test_program_version_parses_the_first_dotted_number() -> None:
    version = programs.program_version(Path(sys.executable))
    assert version.text.startswith("Python 3.")
    assert version.version == ".".join(map(str, sys.version_info[:3]))


def test_progress_bars_are_trimmed() -> None:
    text = (
        " + Back-projecting all images ...\n"
        '000/??? sec ~~(,_,">                                                          [oo]\r'
        '   0/   0 sec ...~~(,_,">\r   1/   2 sec ......~~(,_,">\n'
        " + Done! Written output map in: out.mrc\n"
        "  12/ 100 min ..........\n"
    )
    assert programs.trim_progress(text) == (
        " + Back-projecting all images ...\n + Done! Written output map in: out.mrc\n"
    )


def test_mpi_command_adds_allow_run_as_root_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert programs.mpi_command(3, ["relion_refine_mpi", "--i", "p.star"], mpirun="mpirun") == [
        "mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "3", "relion_refine_mpi", "--i", "p.star",
    ]  # fmt: skip
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert programs.mpi_command(2, ["prog"], mpirun="mpirun") == [
        "mpirun",
        "--oversubscribe",
        "-n",
        "2",
        "prog",
    ]
    with pytest.raises(ProcessingError, match="at least 1"):
        programs.mpi_command(0, ["prog"], mpirun="mpirun")


def test_run_program_records_the_run(tmp_path: Path) -> None:
    code = (
        "import os, sys; print(sys.stdin.read().upper()); "
        "print(os.environ['OMP_NUM_THREADS'], file=sys.stderr)"
    )
    run = programs.run_program(
        [sys.executable, "-c", code],
        tmp_path,
        tmp_path / "logs",
        stdin="hello\n",
        env={"OMP_NUM_THREADS": "3"},
    )
    assert run.exit_code == 0
    assert run.stdout_log.read_text().strip() == "HELLO"
    assert run.stderr_log.read_text().strip() == "3"
    assert run.stdin == "hello\n"
    assert run.environment["OMP_NUM_THREADS"] == "3" and "PATH" in run.environment
    assert run.argv[0] == sys.executable and run.cwd == tmp_path
    assert run.elapsed >= 0 and run.started.endswith("+00:00")
    assert run.stdout_log.name == Path(sys.executable).name + ".out"
    assert not list((tmp_path / "logs").glob(".*raw"))


def test_run_program_failure_names_the_error_and_the_logs(tmp_path: Path) -> None:
    code = "import sys; print('working'); print('ERROR: the input is bad', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ProcessingError) as caught:
        programs.run_program([sys.executable, "-c", code], tmp_path, tmp_path, name="step")
    message = str(caught.value)
    assert "step failed (exit status 3)" in message
    assert "ERROR: the input is bad" in message
    assert str(tmp_path / "step.err") in message


def test_a_failure_marker_fails_a_run_that_exits_0(tmp_path: Path) -> None:
    (tmp_path / programs.SUCCESS_MARKER).write_text("")  # stale: removed before the run
    code = f"open({programs.FAILURE_MARKER!r}, 'w').close()"
    with pytest.raises(ProcessingError, match="RELION_JOB_EXIT_FAILURE written"):
        programs.run_program([sys.executable, "-c", code], tmp_path, tmp_path, marker_dir=tmp_path)
    assert not (tmp_path / programs.SUCCESS_MARKER).exists()


def test_run_program_timeout_stops_the_process_group(tmp_path: Path) -> None:
    begin = time.monotonic()
    with pytest.raises(ProcessingError, match=r"did not finish within 0\.5 s"):
        programs.run_program(
            [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, tmp_path, timeout=0.5
        )
    assert time.monotonic() - begin < 15


def test_a_program_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProcessingError, match="cannot start"):
        programs.run_program([str(tmp_path / "no-such-program")], tmp_path, tmp_path)


# --- CTFFIND ----------------------------------------------------------------------------------------------


def test_ctffind_script_answers_in_ctffind_41_order() -> None:
    script = ctffind.ctffind_script("mic.mrc", "mic_ctf.mrc", 1.06, 300, 2.7, 0.07)
    assert script == (
        "mic.mrc\nmic_ctf.mrc\n1.06\n300\n2.7\n0.07\n512\n30\n5\n5000\n50000\n500\n"
        "no\n"  # astigmatism not known
        "no\n"  # no slower exhaustive search
        "no\n"  # no astigmatism restraint
        "no\n"  # no phase shift search
        "no\n"  # no expert options
    )


def test_ctffind_script_with_movie_restraint_and_phase_shift() -> None:
    script = ctffind.ctffind_script(
        "movie.mrcs", "diag.mrc", 0.85, 200, 2.7, 0.1, 256, 25.0, 4.0, 3000, 30000, 100, True,
        min_phase_shift=0, max_phase_shift=180, phase_shift_step=10, slower_search=True,
        restrain_astigmatism=True, astigmatism_tolerance=500, n_sections=24, frames_to_average=4,
    )  # fmt: skip
    assert script.splitlines() == [
        "movie.mrcs", "yes", "4", "diag.mrc", "0.85", "200", "2.7", "0.1", "256", "25", "4", "3000", "30000",
        "100", "no", "yes", "yes", "500", "yes", "0", "3.14159", "0.174533", "no",
    ]  # fmt: skip
    stack = ctffind.ctffind_script("stack.mrcs", "d.mrc", 1, 300, 2.7, 0.1, n_sections=5)
    assert stack.splitlines()[:3] == ["stack.mrcs", "no", "d.mrc"]  # five separate micrographs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_res": 4.0, "max_res": 5.0}, "resolution range"),
        ({"min_res": 60.0}, "resolution range"),
        ({"min_defocus": 9000.0, "max_defocus": 5000.0}, "defocus range"),
        ({"box": 64}, "at least 128"),
        ({"amplitude_contrast": 7.0}, "fraction"),
        ({"step": 0.0}, "defocus search step"),
    ],
)
def test_ctffind_script_refuses_what_ctffind_refuses(change: dict[str, float], message: str) -> None:
    arguments: dict[str, float] = {"pixel_size": 1.0, "voltage": 300, "cs": 2.7, "amplitude_contrast": 0.1}
    arguments.update(change)
    with pytest.raises(ProcessingError, match=message):
        ctffind.ctffind_script("m.mrc", "d.mrc", **arguments)  # type: ignore[arg-type]


def test_real_ctffind4_output_is_parsed(shared_data: Path) -> None:
    output = ctffind.read_ctffind_output(shared_data / "formats" / "ctffind" / "cryocat_TS_017_ctffind4.txt")
    assert output.version == "4.1.8"
    assert output.fields["Pixel size"] == "1.327"
    assert output.fields["Number of micrographs"] == "41"
    assert len(output.fits) == 60  # the file holds 60 rows although its header announces 41
    first = output.fits[0]
    assert first.micrograph_number == 1
    assert first.defocus_u == pytest.approx(14477.870117)
    assert first.defocus_v == pytest.approx(13500.001953)
    assert first.defocus_angle == pytest.approx(75.000012)
    assert first.phase_shift == 0.0
    assert first.cross_correlation == pytest.approx(0.001071)
    assert first.fit_resolution == pytest.approx(12.144508)
    assert output.fits[1].defocus_angle == pytest.approx(-84.116628)
    assert output.table.kind == "micrographs" and output.table.n_rows == 60


def test_ctffind_phase_shift_is_converted_from_radians(tmp_path: Path) -> None:
    path = tmp_path / "diag.txt"
    path.write_text(
        "# Output from CTFFind version 4.1.14, run on 2024-01-01 10:00:00\n"
        "# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; #4 - azimuth of "
        "astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; #7 - spacing (in "
        "Angstroms) up to which CTF rings were fit successfully\n"
        "1.000000 21000.000000 20000.000000 30.000000 1.570796 0.100000 4.500000\n"
    )
    (fit,) = ctffind.read_ctffind_output(path).fits
    assert fit.phase_shift == pytest.approx(90.0, abs=1e-4)
    assert ctffind.summary_path(tmp_path / "diag.mrc") == path


@pytest.mark.skipif(
    shutil.which("ctffind") is None, reason="CTFFIND is not installed here (ctffind not on PATH)"
)
def test_ctffind_run_recovers_a_known_defocus(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    size, pixel = 1024, 1.0
    truth = CTFParameters(defocus_u=21000.0, defocus_v=19000.0, defocus_angle=30.0, amplitude_contrast=0.07)
    spectrum = centered_fft2(rng.normal(size=(size, size))) * ctf_image(truth, size, pixel)
    image = centered_ifft2(spectrum) + rng.normal(0, 0.5, (size, size))
    with mrcfile.new(tmp_path / "mic.mrc") as mrc:
        mrc.set_data(image.astype(np.float32))
        mrc.voxel_size = pixel
    result = ctffind.run_ctffind(
        tmp_path / "mic.mrc", tmp_path / "mic_ctf.mrc", pixel_size=pixel, voltage=300, cs=2.7,
        amplitude_contrast=0.07, max_res=4.0, restrain_astigmatism=True, astigmatism_tolerance=1000,
    )  # fmt: skip
    (fit,) = result.output.fits
    assert fit.defocus_u == pytest.approx(truth.defocus_u, rel=0.02)
    assert fit.defocus_v == pytest.approx(truth.defocus_v, rel=0.02)
    assert (fit.defocus_angle - truth.defocus_angle + 90) % 180 - 90 == pytest.approx(0, abs=5)


# --- MotionCor2 -------------------------------------------------------------------------------------------


def test_motioncor2_command_line() -> None:
    argv = motioncor2.motioncor2_command(
        "Movies/m1.tif", "Micrographs/m1.mrc", pixel_size=0.834, voltage=300, dose_per_frame=1.2,
        log_dir="logs", gain="gain.mrc",
    )  # fmt: skip
    assert argv == [
        "MotionCor2", "-InTiff", "Movies/m1.tif", "-OutMrc", "Micrographs/m1.mrc", "-Patch", "5", "5",
        "-Iter", "10", "-Tol", "0.5", "-PixSize", "0.834", "-kV", "300", "-FmDose", "1.2",
        "-Gain", "gain.mrc", "-Gpu", "0", "-LogDir", "logs/",
    ]  # fmt: skip
    mrc = motioncor2.motioncor2_command(
        "m.mrcs", "o.mrc", pixel_size=1, voltage=200, dose_per_frame=1, log_dir="l/", patches=(1, 1),
        ft_bin=2, bfactor=150, gpu=1, program="/opt/MotionCor2_1.6.4",
    )  # fmt: skip
    assert mrc[:3] == ["/opt/MotionCor2_1.6.4", "-InMrc", "m.mrcs"]
    assert mrc[-8:] == ["-FtBin", "2", "-Bft", "150", "-Gpu", "1", "-LogDir", "l/"]
    assert (
        motioncor2.motioncor2_command(
            "m.eer", "o.mrc", pixel_size=1, voltage=300, dose_per_frame=1, log_dir="l"
        )[1]
        == "-InEer"
    )
    with pytest.raises(ProcessingError, match=r"reads \.mrc/\.mrcs, \.tif/\.tiff or \.eer"):
        motioncor2.motioncor2_command(
            "m.dm4", "o.mrc", pixel_size=1, voltage=300, dose_per_frame=1, log_dir="l"
        )


def test_motioncor2_full_log_is_parsed(tmp_path: Path) -> None:
    # Written as MotionCor3's CFullAlign::LogShift writes it: a comment line, then "%4d  %8.2f  %8.2f".
    drift = np.array([[0.0, 0.0], [-1.52, 0.98], [-2.97, 2.03], [-4.51, 2.99]])
    rows = "".join(f"{i + 1:4d}  {x:8.2f}  {y:8.2f}\n" for i, (x, y) in enumerate(drift))
    log = motioncor2.full_log_path(tmp_path, "Movies/FoilHole_1_fractions.tiff")
    assert log == tmp_path / "FoilHole_1_fractions-Full.log"
    log.write_text("# full frame alignment\n" + rows)
    frames, shifts = motioncor2.read_full_log(log)
    assert np.array_equal(frames, [1, 2, 3, 4])
    assert np.array_equal(shifts, drift)
    patch = tmp_path / "m-Patch-Full.log"
    patch.write_text("# Patch based alignment\n# Initial alignment based upon full frames\n\n" + rows)
    assert np.array_equal(motioncor2.read_full_log(patch)[1], drift)
    patch.write_text("# full frame alignment\n   1  0.00\n")
    with pytest.raises(ProcessingError, match="line 2: expected 'frame shift_x shift_y'"):
        motioncor2.read_full_log(patch)


@pytest.mark.skipif(
    shutil.which("MotionCor2") is None, reason="MotionCor2 is not installed here (GPU-only; not on PATH)"
)
def test_motioncor2_run_reports_the_known_drift(tmp_path: Path) -> None:
    from scipion_kg.tasks.builtin.fourier import fourier_shift_images
    from scipy import ndimage

    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 3)
    base = (base - base.min()) / np.ptp(base)
    drift = np.array([[0.0, 0.0], [1.5, -1.0], [3.0, -2.0], [4.5, -3.0]])
    frames = rng.poisson(np.clip(fourier_shift_images(np.repeat(base[None], 4, 0), drift), 0, None) * 20)
    with mrcfile.new(tmp_path / "movie.mrc") as mrc:
        mrc.set_data(frames.astype(np.float32))
        mrc.voxel_size = 1.0
    result = motioncor2.run_motioncor2(
        tmp_path / "movie.mrc", tmp_path / "out" / "mic.mrc", pixel_size=1, voltage=300, dose_per_frame=1,
        patches=(1, 1),
    )  # fmt: skip
    relative = result.shifts - result.shifts[0]
    assert np.abs(relative + drift).max() < 0.5


# --- IMOD -------------------------------------------------------------------------------------------------


def test_imod_command_lines() -> None:
    assert imod.newstack_command("ts.st", "ts_ali.mrc", xform="ts.xf", binning=2, taper=(1, 0)) == [
        "newstack", "-input", "ts.st", "-output", "ts_ali.mrc", "-xform", "ts.xf", "-bin", "2",
        "-taper", "1,0",
    ]  # fmt: skip
    assert imod.tiltxcorr_command("ts.st", "ts.prexf", "ts.rawtlt", rotation_angle=-84.1) == [
        "tiltxcorr", "-input", "ts.st", "-output", "ts.prexf", "-tiltfile", "ts.rawtlt", "-RotationAngle",
        "-84.1", "-FilterSigma1", "0.03", "-FilterRadius2", "0.25", "-FilterSigma2", "0.05",
    ]  # fmt: skip
    assert imod.xftoxg_command("ts.prexf", "ts.prexg") == [
        "xftoxg", "-NumberToFit", "0", "-input", "ts.prexf", "-goutput", "ts.prexg",
    ]  # fmt: skip
    assert imod.tilt_command("ts_ali.mrc", "tomo.rec", "ts.tlt", thickness=300, full_image=(1024, 1440)) == [
        "tilt", "-InputProjections", "ts_ali.mrc", "-OutputFile", "tomo.rec", "-TILTFILE", "ts.tlt",
        "-THICKNESS", "300", "-RADIAL", "0.35,0.035", "-FalloffIsTrueSigma", "1", "-SCALE", "0,0.05",
        "-PERPENDICULAR", "-MODE", "2", "-FULLIMAGE", "1024,1440",
    ]  # fmt: skip
    with pytest.raises(ProcessingError, match="binning must be at least 1"):
        imod.newstack_command("a", "b", binning=0)


def test_real_imod_transforms_and_angles_are_read(shared_data: Path) -> None:
    folder = shared_data / "formats" / "imod"
    transforms = imod.read_xf(folder / "etomofiles_TS_001.xf")
    assert len(transforms) == 40
    assert np.array_equal(transforms.matrices[0], [[0.1020875, 0.9947760], [-0.9947760, 0.1020875]])
    assert np.array_equal(transforms.shifts[0], [2.395, -3.871])
    assert np.allclose(np.linalg.det(transforms.matrices), 1.0, atol=1e-5)  # rotations (no magnification)
    angles = imod.read_tilt_angles(folder / "etomofiles_TS_001.tlt")
    assert angles.shape == (40,) and angles[0] == pytest.approx(-57.12)
    assert np.all(np.diff(angles) > 0)


def test_composed_transforms_equal_applying_both(shared_data: Path) -> None:
    rng = np.random.default_rng(1)
    first = imod.read_xf(shared_data / "formats" / "imod" / "etomofiles_TS_001.xf")
    angle = rng.uniform(-np.pi, np.pi, len(first))
    scale = rng.uniform(0.9, 1.1, len(first))
    matrices = scale[:, None, None] * np.stack(
        [np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], -2
    )
    then = imod.XfTransforms(matrices, rng.normal(0, 5, (len(first), 2)))
    points = rng.uniform(-500, 500, (len(first), 7, 2))
    combined = imod.compose_xf(first, then)
    assert np.allclose(combined.apply(points), then.apply(first.apply(points)), atol=1e-9)
    reverse = imod.compose_xf(then, first)
    assert not np.allclose(reverse.apply(points), combined.apply(points), atol=1e-3)


@pytest.mark.skipif(
    shutil.which("newstack") is None, reason="IMOD is not installed here (newstack not on PATH)"
)
def test_newstack_runs_when_imod_is_installed(tmp_path: Path) -> None:
    stack = np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32)
    with mrcfile.new(tmp_path / "ts.st") as mrc:
        mrc.set_data(stack)
    run = imod.run_imod(imod.newstack_command("ts.st", "out.mrc", binning=2), tmp_path, tmp_path / "logs")
    assert run.exit_code == 0
    assert mrcfile.read(tmp_path / "out.mrc").shape == (3, 32, 32)
