"""Ask an upstream what a model is, when its name does not say: Ollama, llama.cpp and vLLM can tell.

For a model the catalogue and the name rules cannot place (see wattlens.estimate.names), the
gateway asks the upstream once and keeps the answer per (upstream, model):

- llama.cpp server: `GET /v1/models` lists the loaded model with `meta.n_params` and `meta.size`
  (bytes), so bits per weight give the precision; `GET /props` names the GGUF file (`model_path`),
  whose name may say the active parameters of an MoE (tools/server/README.md).
- vLLM: `GET /v1/models` gives each served name's `root` (the model it loaded, a Hugging Face id
  or path) and `parent` (the base model of a LoRA adapter), which the name rules then resolve
  (vllm/entrypoints/openai/protocol.py, ModelCard).
- Ollama: `POST /api/show {"model": NAME}` gives `details.parameter_size` ("8.0B"),
  `details.quantization_level` ("Q4_K_M") and `model_info["general.parameter_count"]` (docs/api.md).

A lookup never fails or holds up a request for long: the first request for a model waits at most
LOOKUP_S for the answer (it goes on in the background if slower, for the next request), any error
is an empty answer, and receipts then come from the name. Only the upstream's own configured key
is sent, and only to the upstream's own host; the client's key never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from wattlens.estimate.names import precision_of, resolve, size_of
from wattlens.metering import Call, ModelParams, Serving

if TYPE_CHECKING:
    from wattlens.factors import FactorSet
    from wattlens.gateway.config import Upstream
    from wattlens.gateway.transport import Transport

LOOKUP_S = 2.0  # the most the first request for an unknown model waits for the upstream's answer
RETRY_FAILED_S = 300.0  # an upstream that could not tell is asked again after this long
MAX_MODELS = 1024  # (upstream, model) answers kept; clients choose model names, so the cache is bounded
ASKED = ("known", "name", "generic")  # resolutions the upstream may improve on
FAILURES = (  # whatever an upstream's answer can make the lookup raise: deep nesting and huge numbers included
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
    ArithmeticError,
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$", re.IGNORECASE)
_SCALE = {"k": 1e-6, "m": 1e-3, "b": 1.0, "t": 1e3}


@dataclass(frozen=True, slots=True)
class Reported:
    """What an upstream said about a model: its parameters (billions), precision, and where it was read."""

    params: ModelParams
    said: str


def _billions(v: Any) -> float | None:
    """Ollama's parameter_size ("8.0B", "494.03M") in billions."""
    m = _SIZE.match(v) if isinstance(v, str) else None
    return float(m.group(1)) * _SCALE[m.group(2).lower()] if m else None


def _bits_precision(size_bytes: float, n_params: float) -> str:
    """Precision from a GGUF file's bits per weight: Q4_K_M ~4.9, Q6_K ~6.6, Q8_0 ~8.5, F16 16."""
    bits = size_bytes * 8.0 / n_params
    return "int4" if bits < 6.0 else "int8" if bits < 10.0 else "fp16"


def _moe_active(name: str, total_b: float) -> float | None:
    """An MoE's active parameters, when the name says them (`30b-a3b`); None otherwise."""
    size = size_of(name)
    if size is not None and size[0] < size[1]:
        return size[0] * total_b / size[1]  # the name's share, applied to the exact total
    return None


def from_ollama(name: str, show: Any) -> Reported | None:
    """An Ollama /api/show answer -> parameters, or None when it does not say enough."""
    details = show.get("details") if isinstance(show, dict) else None
    if not isinstance(details, dict):
        return None
    info = show.get("model_info") if isinstance(show.get("model_info"), dict) else {}
    count = info.get("general.parameter_count")
    total = count / 1e9 if isinstance(count, int) and count > 0 else _billions(details.get("parameter_size"))
    if total is None or total <= 0:
        return None
    quant = str(details.get("quantization_level") or "")
    precision = precision_of(quant) if quant else None
    active = total
    experts = [v for k, v in info.items() if k.endswith(".expert_count") and isinstance(v, int) and v > 0]
    if experts:  # MoE: the active share only from the name; else the name rules are the better guess
        moe = _moe_active(name, total)
        if moe is None:
            return None
        active = moe
    said = f"Ollama /api/show: {details.get('parameter_size') or f'{total:.3g}B'} {quant}".strip()
    return Reported(ModelParams(active, total, precision), said)


def from_llamacpp(entry: Mapping[str, Any], props: Any) -> Reported | None:
    """A llama.cpp /v1/models entry (with `meta`) and /props -> parameters."""
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        return None
    n, size = meta.get("n_params"), meta.get("size")
    if not isinstance(n, int | float) or n <= 0:
        return None
    total = float(n) / 1e9
    file = props.get("model_path") if isinstance(props, dict) and isinstance(props.get("model_path"), str) else ""
    name = file or str(entry.get("id", ""))
    precision = precision_of(name) or (_bits_precision(float(size), float(n)) if isinstance(size, int | float) else None)
    active = _moe_active(name, total) or total
    return Reported(ModelParams(active, total, precision), f"llama.cpp /v1/models: {n} parameters ({name})")


def from_vllm(entry: Mapping[str, Any], factors: FactorSet) -> Reported | None:
    """A vLLM /v1/models entry -> the parameters of the model it loaded (`parent` for a LoRA, else `root`)."""
    loaded = entry.get("parent") or entry.get("root")
    if not isinstance(loaded, str) or not loaded or loaded == entry.get("id"):
        return None
    res = resolve(loaded, factors)
    if not res.known:
        return None
    precision = res.precision or (res.spec.precision if res.spec else None)
    params = ModelParams(res.active_params_b.mid, res.total_params_b.mid, precision)
    return Reported(params, f"vLLM /v1/models: serves {loaded} ({res.note})")


class ModelInfo:
    """What each upstream says about the models it serves, asked once per (upstream, model)."""

    def __init__(self, transports: Mapping[str, Transport], factors_for: Callable[[str], FactorSet]) -> None:
        self.transports = transports
        self.factors_for = factors_for  # upstream name -> its factor set
        self._answers: dict[tuple[str, str], tuple[float, Reported | None]] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._servings: dict[tuple[str, str], Serving] = {}

    def worth_asking(self, u: Upstream, model: str) -> bool:
        if u.local or not u.model_info or u.kind != "openai" or model in u.serving.model_params:
            return False
        return resolve(model, self.factors_for(u.name)).how in ASKED

    async def learn(self, u: Upstream, model: str) -> None:
        """Ask the upstream about `model` unless known; waits at most LOOKUP_S; never raises."""
        key = (u.name, model)
        hit = self._answers.get(key)
        if hit is not None and (hit[1] is not None or time.monotonic() - hit[0] < RETRY_FAILED_S):
            return
        task = self._pending.get(key)
        if task is None:
            if not self.worth_asking(u, model) or len(self._answers) >= MAX_MODELS:
                return
            task = asyncio.ensure_future(self._ask_and_keep(u, model))
            self._pending[key] = task
        # Still asking after LOOKUP_S: this request's receipt comes from the name, the next one's may not.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), LOOKUP_S)

    async def _ask_and_keep(self, u: Upstream, model: str) -> None:
        key = (u.name, model)
        try:
            answer = await self.ask(u, model)
        except FAILURES:
            answer = None
        finally:
            self._pending.pop(key, None)
        self._answers[key] = (time.monotonic(), answer)
        self._servings.pop(key, None)

    async def ask(self, u: Upstream, model: str) -> Reported | None:
        """One lookup: /v1/models (llama.cpp meta, vLLM root), else Ollama's /api/show."""
        t = self.transports[u.name]
        key = u.key()  # the upstream's own key, for its own host; never the client's
        headers = {"authorization": f"Bearer {key}"} if key else {}
        root = u.base_url[: -len("/v1")] if u.base_url.endswith("/v1") else u.base_url
        listed = await t.get_json(u.base_url + "/models", headers, LOOKUP_S)
        listed_data = listed.get("data") if isinstance(listed, dict) else None
        entries = [e for e in listed_data if isinstance(e, dict)] if isinstance(listed_data, list) else []
        entry = next((e for e in entries if e.get("id") == model), None)
        if entry is None and len(entries) == 1 and isinstance(entries[0].get("meta"), dict):
            entry = entries[0]  # llama.cpp serves one model, whatever name the client sends
        if entry is not None and isinstance(entry.get("meta"), dict):
            try:
                props = await t.get_json(root + "/props", headers, LOOKUP_S)
            except FAILURES:
                props = None
            return from_llamacpp(entry, props)
        if entry is not None and (entry.get("root") or entry.get("parent")):
            found = from_vllm(entry, self.factors_for(u.name))
            if found is not None:
                return found
        body = json.dumps({"model": model}).encode()
        r = await asyncio.wait_for(
            t.post(root + "/api/show", body, {**headers, "content-type": "application/json"}), LOOKUP_S
        )
        return from_ollama(model, r.json_or_none()) if r.status == 200 else None

    def reported(self, upstream: str, model: str) -> Reported | None:
        hit = self._answers.get((upstream, model))
        return hit[1] if hit is not None else None

    def serving(self, u: Upstream, call: Call) -> Serving:
        """The upstream's serving, with what it reported about this call's model (and say so in the receipt)."""
        model = call.served_model or call.model
        for name in dict.fromkeys((model, call.model)):
            rep = self.reported(u.name, name)
            if rep is None or model in u.serving.model_params:
                continue
            key = (u.name, model)
            s = self._servings.get(key)
            if s is None:
                s = dataclasses.replace(u.serving, model_params={**u.serving.model_params, model: rep.params})
                self._servings[key] = s
            call.warnings.append("model-params-from-upstream")
            return s
        return u.serving


__all__ = ["LOOKUP_S", "ModelInfo", "Reported", "from_llamacpp", "from_ollama", "from_vllm"]
