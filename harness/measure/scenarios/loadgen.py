"""MLPerf LoadGen interoperability: run any backend under LoadGen's own scenarios.

Needs the optional extra ``mlperf`` (``pip install 'inference-harness[mlperf]'``, which
installs ``mlcommons-loadgen``, imported as ``mlperf_loadgen``). Scenario ``loadgen``
(registered under ``harness.measure.scenarios``) drives a cell with LoadGen instead of our issuer;
its metrics are *LoadGen's* numbers, read back from ``mlperf_log_detail.txt`` (falling back
to ``mlperf_log_summary.txt``), with ``method`` naming the source.

Adapter
-------
* QSL: ``performance_sample_count`` sample indices; ``LoadSamplesToRam`` is a no-op
  because every batch is staged before ``StartTest`` (``stage_pools``, untimed).
* SUT ``IssueQuery``: ``sut: queue`` (default) puts samples on the same dynamic batcher and
  worker threads as the ``online`` scenario (one per instance) and completes each batch with
  ``QuerySamplesComplete``; ``sut: inline`` runs the backend inside ``IssueQuery`` on
  LoadGen's issue thread (batches of up to ``max_batch_size``).
* Raw rows: LoadGen does not expose its schedule, so ``scheduled_ns`` and ``issued_ns``
  are both the time ``IssueQuery`` reached the adapter; the latency metrics are LoadGen's
  (from its own scheduled times).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.core.clock import now_ns
from harness.core.metrics import Metric
from harness.measure.load.batching import Dispatch, DynamicBatcher
from harness.measure.scenarios.base import CellContext, Scenario, ScenarioOptions, ScenarioResult
from harness.measure.scenarios.online import stage_pools

EXTRA_HINT = (
    "MLPerf LoadGen is not installed: install the 'mlperf' extra "
    "(pip install 'inference-harness[mlperf]', package mlcommons-loadgen)"
)
LG_SCENARIOS = ("SingleStream", "Server", "Offline")


class LoadGenMissing(ImportError):
    pass


def import_loadgen() -> Any:
    """``mlperf_loadgen`` or :class:`LoadGenMissing` naming the extra to install."""
    try:
        # deferred: optional extra [mlperf]
        import mlperf_loadgen
    except ImportError as exc:
        raise LoadGenMissing(EXTRA_HINT) from exc
    return mlperf_loadgen


def available() -> tuple[bool, str]:
    try:
        import_loadgen()
    except LoadGenMissing as exc:
        return False, str(exc)
    return True, ""


class LoadGenOptions(ScenarioOptions):
    """Options of the ``loadgen`` scenario (LoadGen TestSettings plus the SUT adapter)."""

    lg_scenario: Literal["SingleStream", "Server", "Offline"] = Field(
        "SingleStream", description="LoadGen scenario: SingleStream, Server or Offline"
    )
    target_qps: float = Field(100.0, gt=0, description="Server: server_target_qps; Offline: offline_expected_qps")
    target_latency_ms: float = Field(100.0, gt=0, description="Server: server_target_latency_ns (as ms)")
    target_percentile: float = Field(0.99, gt=0, lt=1, description="Server: target latency percentile")
    expected_latency_ms: float = Field(1.0, gt=0, description="SingleStream: single_stream_expected_latency_ns")
    sut: Literal["queue", "inline"] = Field(
        "queue", description="queue: batcher + worker threads; inline: in IssueQuery"
    )
    max_batch_size: int = Field(1, ge=1, description="largest batch the SUT runs")
    max_queue_delay_ms: float = Field(0.0, ge=0, description="queue SUT: dynamic batcher delay")
    instances: int = Field(1, ge=1, description="queue SUT: worker threads")
    performance_sample_count: int = Field(64, ge=1, description="QSL performance sample count")
    seed: int | None = Field(None, description="LoadGen schedule/sample rng seed (default: the cell seed)")
    log_dir: str | None = Field(None, description="where LoadGen writes its logs (default: a temp dir)")


def parse_summary(path: str | Path) -> dict[str, str]:
    """``key : value`` lines of ``mlperf_log_summary.txt`` (first occurrence of each key)."""
    out: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\s*\*?\s*([^:=]+?)\s*:\s*(.+?)\s*$", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def parse_detail(path: str | Path) -> dict[str, Any]:
    """Last value of every ``:::MLLOG`` key in ``mlperf_log_detail.txt``."""
    out: dict[str, Any] = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith(":::MLLOG"):
            try:
                rec = json.loads(line[len(":::MLLOG") :])
            except json.JSONDecodeError:
                continue
            out[rec.get("key")] = rec.get("value")
    return out


_PCT = {"50.00": "p50", "90.00": "p90", "95.00": "p95", "97.00": "p97", "99.00": "p99", "99.90": "p99.9"}


def loadgen_metrics(
    detail: dict[str, Any], summary: dict[str, str], lg_scenario: str
) -> tuple[dict[str, Metric], dict[str, bool]]:
    """Our metric names from LoadGen's results (``method`` names the source)."""
    src = "mlperf_loadgen result"

    def num(dkey: str, skey: str) -> float | None:
        if dkey in detail and detail[dkey] is not None:
            return float(detail[dkey])
        if skey in summary:
            try:
                return float(summary[skey])
            except ValueError:
                return None
        return None

    m: dict[str, Metric] = {}
    for k, name in _PCT.items():
        v = num(f"result_{k}_percentile_latency_ns", f"{k} percentile latency (ns)")
        if v is not None:
            m[f"latency_{name}"] = Metric(value=v / 1e6, unit="ms", method=f"{src} ({k} percentile)")
    for key, name in (("mean", "Mean"), ("min", "Min"), ("max", "Max")):
        v = num(f"result_{key}_latency_ns", f"{name} latency (ns)")
        if v is not None:
            m[f"latency_{key}"] = Metric(value=v / 1e6, unit="ms", method=src)
    if lg_scenario == "Server":
        for dkey, skey, name in (
            ("result_completed_samples_per_sec", "Completed samples per second", "achieved_qps"),
            ("result_scheduled_samples_per_sec", "Scheduled samples per second", "scheduled_qps"),
        ):
            v = num(dkey, skey)
            if v is not None:
                m[name] = Metric(value=v, unit="queries/s", method=src)
        if "achieved_qps" in m:
            m["throughput"] = Metric(value=m["achieved_qps"].value, unit="samples/s", method=src)
    elif lg_scenario == "Offline":
        v = num("result_samples_per_second", "Samples per second")
        if v is not None:
            m["throughput"] = Metric(value=v, unit="samples/s", method=src)
    else:
        v = num("result_qps_with_loadgen_overhead", "QPS w/ loadgen overhead")
        if v is not None:
            m["queries_per_s"] = Metric(value=v, unit="queries/s", method=src + " (with loadgen overhead)")
    es = detail.get("early_stopping_result")
    validity = {"loadgen_valid": str(detail.get("result_validity", summary.get("Result is", ""))).upper() == "VALID"}
    for dkey, name in (
        ("result_min_duration_met", "min_duration_met"),
        ("result_min_queries_met", "min_queries_met"),
        ("result_perf_constraints_met", "perf_constraints_met"),
        ("early_stopping_met", "early_stopping_met"),
    ):
        if dkey in detail:
            validity[name] = bool(detail[dkey])
    if isinstance(es, (int, float)) and lg_scenario == "SingleStream":
        m["latency_early_stop"] = Metric(value=float(es) / 1e6, unit="ms", method=src + " early stopping")
    return m, validity


class _Adapter:
    """SUT + QSL callbacks around a backend; records when each query reached us and finished."""

    def __init__(self, lg: Any, ctx: CellContext, o: LoadGenOptions) -> None:

        self.lg = lg
        self.infer = ctx.backend.infer
        self.o = o
        self.pools = stage_pools(ctx, o.max_batch_size, o.batch_size)
        self.counters = dict.fromkeys(self.pools, 0)
        self.policy = DynamicBatcher(o.max_batch_size, int(round(o.max_queue_delay_ms * 1e6)))
        self.arrived: dict[int, int] = {}
        self.done: list[tuple[int, int, int, int]] = []  # (arrived, dispatch, completed, batch)
        self.cond = threading.Condition(threading.Lock())
        self.q: deque[tuple[int, int]] = deque()  # (response id, arrival ns)
        self.idle = 0
        self.closing = False
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    # ---- SUT
    def issue(self, samples: list[Any]) -> None:
        t = now_ns()
        if self.o.sut == "inline":
            mb = self.o.max_batch_size
            for i in range(0, len(samples), mb):
                chunk = samples[i : i + mb]
                self._run([(s.id, t) for s in chunk])
            return
        with self.cond:
            for s in samples:
                self.q.append((s.id, t))
            if self.idle:
                self.cond.notify(len(samples))

    def flush(self) -> None:
        pass

    def _run(self, items: list[tuple[int, int]]) -> None:
        k = len(items)
        pool = self.pools[k]
        c = self.counters[k]
        self.counters[k] = c + 1
        ts = now_ns()
        self.infer(pool[c % len(pool)])
        te = now_ns()
        lg = self.lg
        lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, 0, 0) for qid, _ in items])
        self.done.extend((a, ts, te, k) for _, a in items)

    def _worker(self) -> None:
        decide = self.policy.decide
        q = self.q
        try:
            while True:
                with self.cond:
                    while True:
                        ql = len(q)
                        if ql:
                            d = decide(ql, q[0][1], now_ns())
                            if isinstance(d, Dispatch):
                                items = [q.popleft() for _ in range(d.size)]
                                break
                            timeout = max(d.until_ns - now_ns(), 0) * 1e-9  # type: ignore[operator]
                        elif self.closing:
                            return
                        else:
                            timeout = None
                        self.idle += 1
                        self.cond.wait(timeout)
                        self.idle -= 1
                self._run(items)
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> None:
        if self.o.sut == "queue":
            self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.o.instances)]
            for t in self.threads:
                t.start()

    def stop(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()


def settings_for(lg: Any, o: LoadGenOptions, seed: int) -> Any:
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, o.lg_scenario)
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = int(o.stop.min_duration_s * 1000)
    s.max_duration_ms = int(o.stop.max_duration_s * 1000)
    s.min_query_count = int(o.stop.min_queries)
    if o.stop.max_queries is not None:
        s.max_query_count = int(o.stop.max_queries)
    s.server_target_qps = float(o.target_qps)
    s.server_target_latency_ns = int(o.target_latency_ms * 1e6)
    s.server_target_latency_percentile = float(o.target_percentile)
    s.offline_expected_qps = float(o.target_qps)
    s.single_stream_expected_latency_ns = int(o.expected_latency_ms * 1e6)
    sd = seed if o.seed is None else o.seed
    s.qsl_rng_seed = sd
    s.sample_index_rng_seed = sd + 1
    s.schedule_rng_seed = sd + 2
    return s


def run_loadgen(ctx: CellContext, o: LoadGenOptions, *, in_window: bool = True) -> tuple[_Adapter, Path]:
    """Run LoadGen with the adapter; return it and the log directory."""
    lg = import_loadgen()
    ad = _Adapter(lg, ctx, o)
    log_dir = Path(o.log_dir) if o.log_dir else Path(tempfile.mkdtemp(prefix="mlperf-loadgen-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    ls = lg.LogSettings()
    ls.log_output.outdir = str(log_dir)
    ls.log_output.copy_summary_to_stdout = False
    sut = lg.ConstructSUT(ad.issue, ad.flush)
    qsl = lg.ConstructQSL(o.performance_sample_count, o.performance_sample_count, lambda s: None, lambda s: None)
    try:
        ad.start()
        settings = settings_for(lg, o, ctx.seed)
        if in_window:
            with ctx.window():
                lg.StartTestWithLogSettings(sut, qsl, settings, ls)
        else:
            lg.StartTestWithLogSettings(sut, qsl, settings, ls)
    finally:
        ad.stop()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    if ad.errors:
        raise ad.errors[0]
    return ad, log_dir


class LoadGenScenario(Scenario):
    """Any backend under MLPerf LoadGen's SingleStream, Server or Offline scenario; metrics
    imported from LoadGen's logs."""

    name: ClassVar[str] = "loadgen"
    Options: ClassVar[type[ScenarioOptions]] = LoadGenOptions
    headline: ClassVar[str] = "latency_p99"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, LoadGenOptions)
        ad, log_dir = run_loadgen(ctx, o)
        detail_p, summary_p = log_dir / "mlperf_log_detail.txt", log_dir / "mlperf_log_summary.txt"
        detail = parse_detail(detail_p) if detail_p.exists() else {}
        summary = parse_summary(summary_p) if summary_p.exists() else {}
        if not detail and not summary:
            raise RuntimeError(f"LoadGen wrote no logs to {log_dir}")
        metrics, validity = loadgen_metrics(detail, summary, o.lg_scenario)
        rows = np.asarray(sorted(ad.done), dtype=np.int64).reshape(-1, 4)
        n = rows.shape[0]
        queries = {
            "query_id": np.arange(n, dtype=np.int64),
            "batch_size": np.full(n, o.batch_size, dtype=np.int64),
            "scheduled_ns": rows[:, 0],  # LoadGen's schedule is internal: arrival at the SUT
            "issued_ns": rows[:, 0],
            "dispatch_ns": rows[:, 1],
            "completed_ns": rows[:, 2],
            "served_batch": rows[:, 3],
        }
        extra = {
            "driver": "mlperf_loadgen",
            "lg_scenario": o.lg_scenario,
            "log_dir": str(log_dir),
            "loadgen_version": detail.get("loadgen_version"),
            "summary": summary,
            "note": "latency metrics are LoadGen's; raw scheduled_ns = arrival at the SUT adapter",
        }
        w = (int(rows[:, 0].min()), int(rows[:, 2].max())) if n else None
        return ScenarioResult(queries, metrics, validity, {}, extra=extra, window_ns=w)
