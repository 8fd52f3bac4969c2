"""Dynamic batching in ``harness serve``: concurrent requests are joined into batches and each
gets exactly its own rows back, through the batcher alone and through a real server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from harness.serve.batcher import Batcher


def _double(t):
    time.sleep(0.002)  # a model that takes a while, so requests pile up
    return [("y", t["x"] * 2.0), ("s", t["x"].sum(axis=1))]


def _concurrent(b, inputs):
    futs = [None] * len(inputs)

    def send(i):
        futs[i] = b.submit(inputs[i])

    ths = [threading.Thread(target=send, args=(i,)) for i in range(len(inputs))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return [f.result(timeout=10) for f in futs]


def test_requests_are_joined_and_split_back():
    rng = np.random.default_rng(0)
    inputs = [{"x": rng.standard_normal((int(rng.integers(1, 3)), 4)).astype(np.float32)} for _ in range(24)]
    b = Batcher(_double, max_batch_size=8, max_delay_ns=50_000_000)
    try:
        outs = _concurrent(b, inputs)
    finally:
        b.close()
    for t, out in zip(inputs, outs):
        assert [n for n, _ in out] == ["y", "s"]
        np.testing.assert_array_equal(out[0][1], t["x"] * 2.0)
        np.testing.assert_allclose(out[1][1], t["x"].sum(axis=1))
    assert b.stats["requests"] == 24
    assert b.stats["batches"] < 24 and 1 < b.stats["max_batch"] <= 8


def test_mismatched_inputs_and_unsplittable_outputs_run_alone():
    calls = []

    def whole(t):
        calls.append(t["x"].shape)
        return [("total", np.asarray(t["x"].sum()))]  # no per-sample rows

    b = Batcher(whole, max_batch_size=8, max_delay_ns=50_000_000)
    try:
        a = {"x": np.ones((1, 3), np.float32)}
        c = {"x": np.ones((1, 5), np.float32)}  # other per-sample shape: never joined with a
        outs = _concurrent(b, [a, a, c])
    finally:
        b.close()
    assert [float(o[0][1]) for o in outs] == [3.0, 3.0, 5.0]


def test_an_error_reaches_every_request_of_its_batch():
    def boom(t):
        raise RuntimeError("model failed")

    b = Batcher(boom, max_batch_size=4, max_delay_ns=10_000_000)
    try:
        futs = [b.submit({"x": np.ones((1, 2))}) for _ in range(3)]
        for f in futs:
            with pytest.raises(RuntimeError, match="model failed"):
                f.result(timeout=10)
    finally:
        b.close()


def test_server_batches_kserve_requests():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    pytest.importorskip("torch")
    from harness.measure.backends.remote.kserve_v2 import KServeV2Backend
    from harness.serve import ServerThread
    from harness.serve.model import ServedModel
    from workloads.registry import get_workload

    served = ServedModel("tabular_mlp", "torch", "tiny", max_batch_size=8, max_queue_delay_ms=100)
    srv = ServerThread(served).start()
    w = get_workload("tabular_mlp", "tiny")
    be = KServeV2Backend(url=srv.url, binary=True)
    be.load(w)
    try:
        inputs = [w.make_inputs(1, seed=i) for i in range(12)]
        got: list = [None] * 12

        def call(i):
            got[i] = be.to_numpy(be.infer(be.prepare(inputs[i])))

        ths = [threading.Thread(target=call, args=(i,)) for i in range(12)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        stats = served.describe()["dynamic_batching"]
        assert stats["requests"] == 12 and stats["max_batch"] > 1
        for i in range(12):  # each request got its own rows: same as alone, in process
            alone = served.backend.to_numpy(served.backend.infer(served.backend.prepare(inputs[i])))
            np.testing.assert_allclose(got[i][0], alone[0], rtol=1e-4, atol=1e-5)
    finally:
        be.close()
        srv.stop()
