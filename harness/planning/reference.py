"""MLPerf Inference reference results: a third provenance, ``reference:mlperf-v<round>``.

The shipped table (``harness/planning/reference_data/mlperf_inference_results.csv``, 822 rows; see
``harness/planning/reference_data/README.md`` for columns and provenance) holds published datacenter,
closed-division results for ResNet-50, BERT-99 and Llama-2-70B in the Offline and Server
scenarios, normalised per accelerator (per CPU socket for CPU-only systems). Every number taken
from it keeps its row's ``source`` link in :attr:`Metric.method`.

Accelerators map to our hardware profiles through :data:`ACCELERATOR_TO_PROFILE` (an explicit
table; only rows with ``in_device_list == yes`` map). :mod:`harness.planning.calibration` fits
the projection's efficiency on the older rounds (:data:`CALIBRATION_ROUNDS`) and scores it on
the newer ones (:data:`VALIDATION_ROUNDS`).

MLPerf submissions use their vendors' tuned stacks (TensorRT, INT8/FP8): the figures are
ceilings for a device, not what an untuned PyTorch run reaches.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

from harness.core.metrics import Metric

CSV_FILE = "mlperf_inference_results.csv"
COLUMNS: tuple[str, ...] = (
    "mlperf_version",
    "submitter",
    "system",
    "accelerator",
    "n_accelerators",
    "benchmark",
    "scenario",
    "result",
    "per_accelerator",
    "source",
    "units",
    "platform",
    "accelerator_raw",
    "nodes",
    "host_cpu",
    "in_device_list",
    "data_via",
    "notes",
)
CALIBRATION_ROUNDS: tuple[str, ...] = ("3.1", "4.0")
VALIDATION_ROUNDS: tuple[str, ...] = ("4.1", "5.0", "5.1")

#: ``accelerator`` column -> hardware profile id (explicit; unknown names do not map)
ACCELERATOR_TO_PROFILE: dict[str, str] = {
    "NVIDIA A100 80GB SXM": "nvidia-a100-80gb-sxm",
    "NVIDIA H100 PCIe": "nvidia-h100-pcie",
    "NVIDIA H100 SXM": "nvidia-h100-sxm",
    "NVIDIA H200 SXM": "nvidia-h200-sxm",
    "NVIDIA B200": "nvidia-b200",
    "NVIDIA L4": "nvidia-l4",
    "NVIDIA L40S": "nvidia-l40s",
    "NVIDIA T4": "nvidia-t4",
    "AMD Instinct MI300X": "amd-mi300x",
    "AMD Instinct MI325X": "amd-mi325x",
    "Intel Gaudi 2": "intel-gaudi2",
    "Intel Xeon Platinum 8480+ (SPR)": "intel-xeon-8480p",
    "Intel Xeon 6980P (GNR)": "intel-xeon-6980p",
}

#: benchmark column -> cost-model benchmark (accuracy variants share one model)
BENCHMARK_FAMILY: dict[str, str] = {
    "resnet50": "resnet50",
    "bert-99": "bert-99",
    "bert-99.9": "bert-99",
    "llama2-70b-99": "llama2-70b",
    "llama2-70b-99.9": "llama2-70b",
}
#: the precision MLPerf submissions run each benchmark in (requested; falls back per profile)
BENCHMARK_DTYPE: dict[str, str] = {"resnet50": "int8", "bert-99": "int8", "llama2-70b": "fp8"}
#: workload class of each benchmark (calibration key next to device kind)
BENCHMARK_CLASS: dict[str, str] = {"resnet50": "vision", "bert-99": "encoder", "llama2-70b": "decoder"}
#: MLPerf Server latency bounds (datacenter rules): p99 ms for resnet50/bert, TTFT/TPOT p99 ms
#: for llama2-70b. Source: MLPerf Inference rules, "Latency constraints" table,
#: https://github.com/mlcommons/inference_policies/blob/master/inference_rules.adoc
SERVER_BOUNDS_MS: dict[str, dict[str, float]] = {
    "resnet50": {"p99": 15.0},
    "bert-99": {"p99": 130.0},
    "llama2-70b": {"ttft_p99": 2000.0, "tpot_p99": 200.0},
}
#: rows left out of calibration and validation (different power envelope than the profile)
EXCLUDE_NOTE_PATTERNS: tuple[str, ...] = ("MaxQ", "H200-CTS")


class ReferenceError(ValueError):
    """The reference table is missing or malformed; the message names the file and column."""


@lru_cache(maxsize=1)
def load_mlperf() -> pd.DataFrame:
    """The shipped MLPerf table with added columns: ``round`` (e.g. ``"4.1"``), ``family``,
    ``profile_id`` (None where unmapped), ``provenance`` (``reference:mlperf-v<round>``) and
    ``excluded`` (MaxQ / non-standard thermal rows)."""
    ref = resources.files("harness.planning").joinpath("reference_data", CSV_FILE)
    with resources.as_file(ref) as path:
        try:
            df = pd.read_csv(path, dtype={"mlperf_version": str})
        except FileNotFoundError as exc:
            raise ReferenceError(f"{path}: MLPerf reference table not found") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ReferenceError(f"{ref}: missing column(s) {missing}; expected {list(COLUMNS)}")
    df["round"] = df["mlperf_version"].astype(str)
    df["family"] = df["benchmark"].map(BENCHMARK_FAMILY)
    mapped = df["accelerator"].map(ACCELERATOR_TO_PROFILE)
    df["profile_id"] = mapped.where((df["in_device_list"] == "yes") & mapped.notna(), None)
    df["provenance"] = "reference:mlperf-v" + df["round"]
    notes = df["notes"].fillna("")
    df["excluded"] = notes.apply(lambda s: any(p in s for p in EXCLUDE_NOTE_PATTERNS))
    return df


def row_metric(row: pd.Series[Any]) -> Metric:
    """One row's per-accelerator result as a ``reference`` metric with its source link."""
    unit = {"Samples/s": "samples/s", "Queries/s": "queries/s", "Tokens/s": "tokens/s"}.get(
        row["units"], str(row["units"])
    )
    return Metric(
        value=float(row["per_accelerator"]),
        unit=unit,
        provenance=str(row["provenance"]),
        method=(
            f"MLPerf Inference v{row['round']} {row['benchmark']} {row['scenario']}, "
            f"{row['submitter']} '{row['system']}', {row['n_accelerators']} accelerator(s), "
            f"per accelerator; source: {row['source']}"
        ),
    )


def reference_for(profile_id: str, benchmark: str, scenario: str) -> Metric | None:
    """The median per-accelerator result (lower median: an actual row, with its link) of the
    latest round that has ``profile_id`` x ``benchmark`` family x ``scenario``; None if none."""
    df = load_mlperf()
    fam = BENCHMARK_FAMILY.get(benchmark, benchmark)
    sel = df[
        (df["profile_id"] == profile_id)
        & (df["family"] == fam)
        & (df["scenario"].str.lower() == scenario.lower())
        & ~df["excluded"]
    ]
    if sel.empty:
        return None
    latest = max(sel["round"], key=lambda r: tuple(int(x) for x in r.split(".")))
    rows = sel[sel["round"] == latest].sort_values("per_accelerator")
    row = rows.iloc[(len(rows) - 1) // 2]
    m = row_metric(row)
    return m.model_copy(
        update={
            "ci_low": float(rows["per_accelerator"].min()),
            "ci_high": float(rows["per_accelerator"].max()),
            "method": m.method + f" (median of {len(rows)} result(s) in v{latest}; range = min..max)",
        }
    )
