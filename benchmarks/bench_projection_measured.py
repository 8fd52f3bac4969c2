"""Stack-aware projection vs the measured H200 torch records, leave one out, beside two naive baselines.

Each offline / single-stream cell of the shipped H200 records (torch eager fp16/bf16 and
torch.compile, ResNet-50 and BERT-base, batch 1 to 256) is projected from a calibration on all
the other cells (:func:`harness.planning.stack_model.leave_one_out`). Baselines, as a user
scaling published figures would: the reference device's MLPerf Offline result (H100 SXM, the
latest round; ResNet-50 for vision, BERT-99 for encoders) converted to the cell's model by
FLOPs per sample, then scaled to the H200 by (a) peak compute in the cell's dtype over the
MLPerf dtype, (b) memory bandwidth. Error = max(measured/predicted, predicted/measured) on
throughput (samples/s; for batch 1 the inverse of latency).

Targets (issue 13): median <= 1.5x, worst <= 2.5x, batch 1 included; better than both baselines.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import statistics

from harness.core.hardware import load_profiles
from harness.planning.mlperf_score import REFERENCE_DEVICE, anchor, tuned_dtype, usable_rows
from harness.planning.stack_model import leave_one_out, shipped_points
from harness.planning.workload_cost import mlperf_cost, workload_cost

FAMILY_OF_MODEL = {"resnet50": "resnet50", "bert": "bert-99"}


def main() -> int:
    profiles = load_profiles()
    rows = leave_one_out(shipped_points(), profiles)
    df = usable_rows()
    ref = profiles[REFERENCE_DEVICE]
    print(
        "| model | stack | batch | measured samples/s | projected | error | bound | peak-ratio error | bandwidth-ratio error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    errs: dict[str, list[float]] = {"projected": [], "peak": [], "bandwidth": []}
    for r in rows:
        p = r.point
        dev = profiles[p.profile_id]
        fam = FAMILY_OF_MODEL[p.model]
        last = max(set(df["round"]), key=lambda s: tuple(int(x) for x in s.split(".")))
        a = anchor(df, fam, "Offline", last)
        assert a is not None
        per_model = a[0] * mlperf_cost(fam).flops_per_sample / workload_cost(p.model, p.size).flops_per_sample
        ref_peak = ref.peak(tuned_dtype(ref, fam) or "int8") or 1.0
        base = {
            "peak": per_model * (dev.peak(p.dtype) or 0.0) / ref_peak,
            "bandwidth": per_model * (dev.memory_bw_gbps or 0.0) / (ref.memory_bw_gbps or 1.0),
        }
        e = {k: max(p.throughput_per_s / v, v / p.throughput_per_s) for k, v in base.items()}
        errs["projected"].append(r.error)
        errs["peak"].append(e["peak"])
        errs["bandwidth"].append(e["bandwidth"])
        print(
            f"| {p.model} | {p.stack} | {p.batch} | {p.throughput_per_s:,.0f} | {r.predicted_throughput_per_s:,.0f} | "
            f"{r.error:.2f}x | {r.bound} | {e['peak']:.2f}x | {e['bandwidth']:.2f}x |"
        )
    med = {k: statistics.median(v) for k, v in errs.items()}
    top = {k: max(v) for k, v in errs.items()}
    print(
        f"\nleave-one-out over {len(rows)} cells: projected median {med['projected']:.2f}x, worst {top['projected']:.2f}x; "
        f"peak-ratio baseline median {med['peak']:.2f}x, worst {top['peak']:.2f}x; "
        f"bandwidth-ratio baseline median {med['bandwidth']:.2f}x, worst {top['bandwidth']:.2f}x"
    )
    ok = (
        med["projected"] <= 1.5
        and top["projected"] <= 2.5
        and med["projected"] < min(med["peak"], med["bandwidth"])
        and top["projected"] < min(top["peak"], top["bandwidth"])
    )
    print(f"criteria (median <= 1.5x, worst <= 2.5x, better than both baselines): {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
