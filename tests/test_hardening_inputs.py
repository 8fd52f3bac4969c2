"""Bad input never ends in a traceback: every case of the corpus in ``tests/bad_inputs/`` (and a
few command lines) gets one ``error:`` line naming the file, field or option and the problem,
exit code 2, and loses nothing else (no run directory is created, other runs still load)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.cli.main import _mount_optional, app
from harness.measure.parity import compare
from harness.measure.runner import run_cells
from harness.store.ingest import ingest_upload
from harness.store.results import ResultsError, list_runs, load_results, load_run

BAD = Path(__file__).parent / "bad_inputs"
OK_SUITE = (
    "name: ok\n"
    "defaults: {stop: {min_duration_s: 0.05, min_queries: 10, warmup_s: 0}}\n"
    "matrix:\n"
    "  - models: [tabular_mlp]\n"
    "    backends: [null]\n"
    "    scenarios: [offline, single-stream]\n"
)

# suite file -> what its one error line must say (besides the file name)
SUITE_CASES = {
    "suite_duplicate_key.yaml": ":2: name: duplicate key (first given on line 1)",
    "suite_duplicate_nested_key.yaml": ":6: matrix[0].backends: duplicate key (first given on line 5)",
    "suite_duplicate_option.yaml": "matrix[0].scenarios[0].options.batch_size: duplicate key",
    "suite_binary.yaml": ":1: not UTF-8 text",
    "suite_nul_bytes.yaml": "binary data",
    "suite_empty_sweep.yaml": "sweep of batch_size lists no values",
    "suite_empty_matrix.yaml": "matrix: expands to no cells",
    "suite_huge_sweep.yaml": "more than 1000 cells",
    "suite_bad_size.yaml": "unknown size 'huge'; allowed: ['standard', 'tiny']",
    "suite_bad_params.yaml": "unknown parameter(s) ['no_such_param']",
    "suite_missing_onnx.yaml": "file not found: /no/such/model.onnx",
    "suite_missing_module.yaml": "no importable module 'no_such_package_h3.models'",
    "suite_not_a_mapping.yaml": "must be a mapping",
    "suite_yaml_syntax.yaml": "YAML syntax error",
    "suite_alias_cycle.yaml": "matrix[0].models[0]",
    "suite_infinite_rate.yaml": ":6: matrix[0].scenarios[0].options.target_qps: must be a finite number (got inf)",
    "suite_nan_limit.yaml": ":2: defaults.stop.max_duration_s: must be a finite number (got nan)",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results root holding two small measured runs (``base`` and ``head``)."""
    root = tmp_path_factory.mktemp("results")
    for name in ("base", "head"):
        run_cells([fast_cell(), fast_cell(batch_size=2)], name=name, root=root, isolate=False)
    return root


def _runs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / "run.json").exists())


def _invoke(*args: str) -> tuple[int, str, str]:
    _mount_optional()
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"traceback for {args}: {res.exception!r}") from res.exception
    return res.exit_code, res.stdout, res.stderr


def _one_error_line(code: int, out: str, err: str, *needles: str) -> str:
    assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, f"want one error line, got: {lines}"
    for n in needles:
        assert n in errors[0], f"{n!r} not in {errors[0]!r}"
    return errors[0]


@pytest.mark.parametrize("name", sorted(SUITE_CASES))
def test_bad_suite_is_one_line_exit_2_and_runs_nothing(name: str, results: Path) -> None:
    before = _runs(results)
    code, out, err = _invoke("run", str(BAD / name), "-o", str(results))
    _one_error_line(code, out, err, name, SUITE_CASES[name])
    assert _runs(results) == before


@pytest.mark.parametrize(
    ("profile", "needle"),
    [
        ("nosuch", "unknown hardware profile 'nosuch'; known:"),
        (str(BAD / "profile_duplicate_key.yaml"), "profile_duplicate_key.yaml:15: tdp_w: duplicate key"),
        (str(BAD / "profile_binary.yaml"), "profile_binary.yaml:1: not UTF-8 text"),
    ],
)
def test_bad_profile_is_one_line_exit_2(profile: str, needle: str, results: Path, write_suite: object) -> None:
    suite = write_suite(OK_SUITE)  # type: ignore[operator]
    before = _runs(results)
    _one_error_line(*_invoke("run", str(suite), "--profile", profile, "-o", str(results)), needle)
    assert _runs(results) == before


def test_only_matching_nothing_is_an_error(results: Path, write_suite: object) -> None:
    suite = write_suite(OK_SUITE)  # type: ignore[operator]
    _one_error_line(
        *_invoke("run", str(suite), "--only", "nomatch", "-o", str(results)), "--only: matches none of the 2"
    )


@pytest.mark.parametrize(
    ("run_dir", "needle"),
    [
        ("run_future_schema", "schema_version: 99 is newer than this harness reads"),
        ("run_deeply_nested", "nested too deeply"),
        ("run_not_utf8", "not UTF-8"),
    ],
)
def test_unreadable_run_record_is_one_line_exit_2(run_dir: str, needle: str) -> None:
    _one_error_line(*_invoke("show", str(BAD / run_dir)), run_dir, needle)


def test_show_an_unknown_cell(results: Path) -> None:
    run_id = _runs(results)[0]
    _one_error_line(*_invoke("show", run_id, "-o", str(results), "--cell", "nosuch"), "nosuch")


def test_bad_runs_beside_good_ones_do_not_stop_loading(results: Path, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    shutil.copytree(results, root)
    for d in ("run_future_schema", "run_deeply_nested", "run_not_utf8"):
        shutil.copytree(BAD / d, root / d)
    runs, errors = list_runs(root)
    assert len(runs) == 2 and len(errors) == 3
    assert all(e.count("\n") == 0 for e in errors)
    assert len(load_results(root)) == 4  # the two good runs' cells


@pytest.mark.parametrize(
    ("upload", "needle"),
    [
        ("upload_truncated.zip", "not a readable zip file (BadZipFile"),
        ("upload_corrupt_member.zip", "not a readable zip file (BadZipFile: Bad CRC-32"),
        ("run_deeply_nested/run.json", "JSON nested too deeply"),
        ("run_future_schema/run.json", "schema_version: 99 is newer"),
        ("suite_binary.yaml", "not UTF-8 text"),
    ],
)
def test_bad_upload_is_refused_with_a_clear_message(upload: str, needle: str, tmp_path: Path) -> None:
    res = ingest_upload(Path(upload).name, (BAD / upload).read_bytes(), tmp_path)
    assert not res.ok and needle in res.message and Path(upload).name in res.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--qps", "inf"], "qps: Input should be a finite number"),
        (["--qps", "nan"], "qps: Input should be a finite number"),
        (["--qps", "-1"], "qps: Input should be greater than 0"),
    ],
)
def test_recommend_rejects_a_load_that_is_no_load(args: list[str], needle: str) -> None:
    _one_error_line(*_invoke("recommend", "--model", "tabular_mlp", "--p99-ms", "10", *args), needle)


def test_recommend_json_to_a_directory(tmp_path: Path) -> None:
    code, out, err = _invoke(
        "recommend", "--model", "tabular_mlp", "--p99-ms", "10", "--qps", "5", "--json", str(tmp_path)
    )
    _one_error_line(code, out, err, f"cannot write {tmp_path}")


def test_gate_compare_junit_to_a_directory_is_exit_2_not_a_regression(results: Path, tmp_path: Path) -> None:
    base, head = _runs(results)
    code, out, err = _invoke("gate", "compare", base, head, "-o", str(results), "--junit", str(tmp_path))
    _one_error_line(code, out, err, "--junit", str(tmp_path))


def test_gate_ab_baseline_path_that_does_not_exist(results: Path, write_suite: object) -> None:
    suite = write_suite(OK_SUITE)  # type: ignore[operator]
    before = _runs(results)
    code, out, err = _invoke("gate", "ab", str(suite), "--baseline-path", "/no/such/checkout", "-o", str(results))
    _one_error_line(code, out, err, "--baseline-path /no/such/checkout: no such directory")
    assert _runs(results) == before


def test_a_nan_output_fails_parity_and_is_not_reported_as_zero_error() -> None:
    ref = [np.array([[1.0, 2.0], [3.0, 4.0]])]
    p = compare([np.array([[1.0, np.nan], [3.0, 4.0]])], ref)
    assert p.passed is False
    assert p.max_abs_err is not None and np.isnan(p.max_abs_err)
    assert "1 output value(s) are NaN or infinite" in p.note
    ok = compare([np.array([[1.0, 2.0], [3.0, 4.0 + 1e-9]])], ref)
    assert ok.passed is True and ok.max_abs_err == pytest.approx(1e-9)
    # NaN where the reference is NaN too is not counted against the backend
    assert "NaN" not in compare([np.array([np.nan])], [np.array([np.nan])]).note


def test_future_schema_is_refused_by_the_library_too() -> None:
    with pytest.raises(ResultsError, match="schema_version: 99"):
        load_run(BAD / "run_future_schema")
    data = json.loads((BAD / "run_future_schema" / "run.json").read_text())
    assert data["schema_version"] == 99


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--usd-per-hour", "nan"], "usd_per_device_hour: Input should be greater than 0 (got nan)"),
        (["--tdp-w", "-3"], "tdp_w: Input should be greater than 0 (got -3.0)"),
    ],
)
def test_bad_profile_override_is_one_line(args: list[str], needle: str, results: Path, write_suite: object) -> None:
    suite = write_suite(OK_SUITE)  # type: ignore[operator]
    _one_error_line(*_invoke("run", str(suite), *args, "-o", str(results)), needle)


def test_profiles_show_an_unknown_id_is_bad_input() -> None:
    _one_error_line(*_invoke("profiles", "show", "nosuch"), "unknown hardware profile 'nosuch'")


def test_a_directory_given_as_the_suite(results: Path) -> None:
    _one_error_line(*_invoke("run", str(BAD), "-o", str(results)), "cannot read suite file")
