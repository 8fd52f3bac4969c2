"""Projection vs MLPerf: calibrate on older rounds, validate on newer ones.

Efficiencies are fitted per device kind and workload class on MLPerf Inference v3.1 and v4.0
Offline results (:func:`harness.planning.calibration.mlperf_calibration`); the calibrated roofline then
predicts every mapped v4.1 / v5.x result (Offline directly, Server through the calibrated
Server/Offline factor). Prints the ratio error (max(measured/predicted, predicted/measured))
per device, benchmark and scenario as a Markdown table. Target: median within 1.5x, worst 3x.
"""

from __future__ import annotations

from harness.planning.calibration import mlperf_calibration, validate_projection
from harness.planning.reference import CALIBRATION_ROUNDS, VALIDATION_ROUNDS


def main() -> int:
    cal = mlperf_calibration()
    print(
        f"calibration rounds: v{', v'.join(CALIBRATION_ROUNDS)}; validation rounds: v{', v'.join(VALIDATION_ROUNDS)}\n"
    )
    print("| kind | class | compute eff | memory eff | ratio range (calibration) |")
    print("|---|---|---|---|---|")
    for (kind, cls), e in sorted(cal.items()):
        print(f"| {kind} | {cls} | {e.compute:.3g} | {e.memory:.3g} | {e.ratio_low:.2f}..{e.ratio_high:.2f} |")
    v = validate_projection()
    print("\n| device | benchmark | scenario | n | median measured/predicted | median error | worst error |")
    print("|---|---|---|---|---|---|---|")
    for (pid, bench, scen), g in v.groupby(["profile_id", "benchmark", "scenario"]):
        print(
            f"| {pid} | {bench} | {scen} | {len(g)} | {g['ratio'].median():.2f} | "
            f"{g['abs_ratio_error'].median():.2f}x | {g['abs_ratio_error'].max():.2f}x |"
        )
    print(
        f"\nall validation results: n={len(v)}, median error {v['abs_ratio_error'].median():.2f}x, "
        f"worst {v['abs_ratio_error'].max():.2f}x, "
        f"share within 1.5x {float((v['abs_ratio_error'] <= 1.5).mean()):.0%}, "
        f"within 3x {float((v['abs_ratio_error'] <= 3).mean()):.0%}"
    )
    for scen, g in v.groupby("scenario"):
        print(f"- {scen}: median {g['abs_ratio_error'].median():.2f}x, worst {g['abs_ratio_error'].max():.2f}x")
    worst = v.sort_values("abs_ratio_error").iloc[-1]
    print(
        f"- worst row: {worst['profile_id']} {worst['benchmark']} {worst['scenario']} v{worst['round']} "
        f"measured {worst['measured']:.4g} vs predicted {worst['predicted']:.4g} ({worst['source']})"
    )
    med, top = float(v["abs_ratio_error"].median()), float(v["abs_ratio_error"].max())
    print(
        f"\ncriteria: median error <= 1.5x: {'pass' if med <= 1.5 else 'FAIL'} ({med:.2f}x); "
        f"worst error <= 3x: {'pass' if top <= 3 else 'FAIL'} ({top:.2f}x)"
    )
    return 0 if med <= 1.5 and top <= 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
