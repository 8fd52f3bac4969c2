"""Suite validation: every error names file, line, field and the allowed values."""

from __future__ import annotations

import pytest

from harness.core.spec import SpecError, cell_id, load_suite

GOOD = """\
name: t
defaults: {size: tiny, stop: {min_duration_s: 0.1}}
matrix:
  - models: [tabular_mlp, {name: bert, size: tiny}]
    backends: [null, {name: torch, options: {threads: 1}}]
    scenarios:
      - {name: offline, sweep: {batch_size: [1, 4]}}
      - single-stream
"""


def test_expands_matrix_and_sweep(write_suite):
    suite, cells = load_suite(write_suite(GOOD))
    assert suite.name == "t"
    # 2 models x 2 backends x (2 offline sizes + 1 single-stream)
    assert len(cells) == 12
    assert {c.scenario_options["batch_size"] for c in cells if c.scenario == "offline"} == {1, 4}
    assert all(c.scenario_options["stop"]["min_duration_s"] == 0.1 for c in cells)
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids)


def test_cell_id_is_stable_and_option_sensitive(write_suite):
    _, a = load_suite(write_suite(GOOD))
    _, b = load_suite(write_suite(GOOD, "again.yaml"))
    assert [cell_id(c) for c in a] == [cell_id(c) for c in b]
    torch_cells = [c for c in a if c.backend == "torch"]
    assert all(len(c.cell_id.split(".")) == 5 for c in torch_cells)  # options hash appended


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            GOOD.replace("backends: [null,", "backends: [torhc,"),
            5,
            "matrix[0].backends[0]",
            ["unknown backend 'torhc'", "null", "onnxruntime", "torch"],
        ),
        (
            GOOD.replace("tabular_mlp,", "resnet51,"),
            4,
            "matrix[0].models[0]",
            ["unknown model 'resnet51'", "resnet50", "bert"],
        ),
        (
            GOOD.replace("- single-stream", "- single-streem"),
            8,
            "matrix[0].scenarios[1]",
            ["unknown scenario 'single-streem'", "offline", "single-stream"],
        ),
        (
            GOOD.replace("{threads: 1}", "{thread: 1}"),
            5,
            "matrix[0].backends[1]",
            ["unknown option", "thread", "threads", "compile"],
        ),
        (
            GOOD.replace("sweep: {batch_size: [1, 4]}", "sweep: {batch_size: [0]}"),
            7,
            "matrix[0].scenarios[0].options.batch_size",
            ["greater than or equal to 1"],
        ),
        (
            GOOD.replace("sweep: {batch_size: [1, 4]}", "sweep: {batchsize: [2]}"),
            7,
            "matrix[0].scenarios[0].options.batchsize",
            ["unknown option", "batch_size", "stop"],
        ),
        (
            GOOD.replace("size: tiny, stop", "sise: tiny, stop"),
            2,
            "defaults.sise",
            ["unknown field", "allowed", "size", "timeout_s"],
        ),
        (
            GOOD.replace("min_duration_s: 0.1", "min_duration_s: -1"),
            2,
            "defaults.stop.min_duration_s",
            ["greater than or equal to 0"],
        ),
        (
            "name: t\nmatrix: [{models: [bert], backends: [], scenarios: [offline]}]\n",
            2,
            "matrix[0].backends",
            ["at least one"],
        ),
    ],
)
def test_errors_name_file_line_field_and_allowed(write_suite, text, line, field, words):
    path = write_suite(text)
    with pytest.raises(SpecError) as ei:
        load_suite(path)
    e = ei.value
    msg = str(e)
    assert e.file == str(path)
    assert e.line == line, msg
    assert e.field == field, msg
    for w in words:
        assert w in msg, msg


def test_yaml_syntax_error_has_line(write_suite):
    with pytest.raises(SpecError) as ei:
        load_suite(write_suite("name: t\nmatrix:\n  - models: [bert\n"))
    assert ei.value.line is not None and "YAML syntax error" in str(ei.value)


def test_missing_file():
    with pytest.raises(SpecError, match="cannot read suite file"):
        load_suite("/nonexistent/suite.yaml")


def test_shipped_suites_validate():
    from pathlib import Path

    for p in sorted((Path(__file__).parent.parent / "workloads" / "suites").glob("*.yaml")):
        _, cells = load_suite(p)
        assert cells, p


def test_a_backend_module_that_does_not_compile_is_a_spec_error(write_suite, tmp_path, monkeypatch):
    (tmp_path / "brokenmod.py").write_text("def oops(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpecError) as ei:
        load_suite(write_suite(GOOD.replace("backends: [null,", "backends: [brokenmod:Backend,")))
    assert ei.value.line == 5 and "cannot import backend 'brokenmod:Backend': SyntaxError" in str(ei.value)
