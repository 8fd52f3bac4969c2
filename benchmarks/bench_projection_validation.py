"""Tuned-stack projection vs published MLPerf, beside two naive baselines, on the same rows.

Calibration on MLPerf Inference v3.1/v4.0 (device factors, the tuned stack's fusion factor);
scoring on every usable v4.1/v5.x result (rows left out only by the rules in
:mod:`harness.planning.mlperf_score`). For each row three predictions from the same round's
reference-device result: the projection, peak-compute scaling and memory-bandwidth scaling.
Error of a row = max(measured/predicted, predicted/measured).

Targets (issue 13): ResNet-50 and BERT-99 median <= 1.05x, worst <= 1.5x; Llama-2-70B median
<= 1.15x, worst <= 3x; and the projection better than both baselines (median and worst).
Exit status 1 when a target is missed.
"""

from __future__ import annotations

from harness.planning.mlperf_score import REFERENCE_DEVICE, act_scale, rule_of, score
from harness.planning.reference import CALIBRATION_ROUNDS, VALIDATION_ROUNDS, load_mlperf

TARGETS: dict[str, tuple[float, float]] = {"resnet50": (1.05, 1.5), "bert-99": (1.05, 1.5), "llama2-70b": (1.15, 3.0)}


def main() -> int:
    r = score()
    all_rows = load_mlperf()
    val = all_rows[all_rows["round"].isin(VALIDATION_ROUNDS)]
    rules = rule_of(val).value_counts()
    left = ", ".join(f"{n} {k}" for k, n in rules.items() if k)
    print(
        f"calibration v{', v'.join(CALIBRATION_ROUNDS)}; scored v{', v'.join(VALIDATION_ROUNDS)}; "
        f"reference device {REFERENCE_DEVICE}; {len(r)} rows scored; left out by rule: {left}"
    )
    print(
        f"tuned-stack balance (calibrated): fusion factor resnet50 {act_scale('resnet50')}, "
        f"bert-99 {act_scale('bert-99')}; decode compute efficiency llama2-70b {act_scale('llama2-70b')}\n"
    )
    print(
        "| benchmark | n | projected median | projected worst | peak-ratio median | peak-ratio worst "
        "| bandwidth-ratio median | bandwidth-ratio worst | target (median/worst) | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok_all = True
    for bench, (tmed, tworst) in TARGETS.items():
        g = r[r["benchmark"] == bench]
        if g.empty:
            continue
        med = {c: float(g[f"err_{c}"].median()) for c in ("projected", "peak", "bandwidth")}
        top = {c: float(g[f"err_{c}"].max()) for c in ("projected", "peak", "bandwidth")}
        ok = (
            med["projected"] <= tmed
            and top["projected"] <= tworst
            and med["projected"] < min(med["peak"], med["bandwidth"])
            and top["projected"] < min(top["peak"], top["bandwidth"])
        )
        ok_all &= ok
        print(
            f"| {bench} | {len(g)} | {med['projected']:.3f}x | {top['projected']:.2f}x | {med['peak']:.3f}x | "
            f"{top['peak']:.2f}x | {med['bandwidth']:.3f}x | {top['bandwidth']:.2f}x | {tmed}x / {tworst}x | "
            f"{'pass' if ok else 'FAIL'} |"
        )
    print("\n| device | benchmark | scenario | n | anchor | projected median | peak median | bandwidth median |")
    print("|---|---|---|---|---|---|---|---|")
    for (pid, bname, scen), g in r.groupby(["profile_id", "benchmark", "scenario"]):
        anchors = ",".join(sorted(set(g["anchor_device"])))
        print(
            f"| {pid} | {bname} | {scen} | {len(g)} | {anchors} | {g['err_projected'].median():.2f}x | "
            f"{g['err_peak'].median():.2f}x | {g['err_bandwidth'].median():.2f}x |"
        )
    worst = r.sort_values("err_projected").iloc[-1]
    print(
        f"\nworst projected row: {worst['profile_id']} {worst['benchmark']} {worst['scenario']} v{worst['round']} "
        f"measured {worst['measured']:.4g} vs projected {worst['projected']:.4g} ({worst['source']})"
    )
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
