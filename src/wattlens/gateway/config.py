"""Gateway configuration: upstreams per model name, where each runs, keys, ledger.

[server]
host = "127.0.0.1"
port = 8787
ledger = "~/.local/share/wattlens/ledger.db"   # or postgresql://...
max_body_mb = 8
keys_file = "keys.toml"                         # required when binding beyond loopback

[[upstreams]]
name = "openai"
kind = "openai"                 # openai | anthropic (an OpenAI-compatible server is "openai")
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"  # the key itself never sits in this file
models = ["gpt-*", "o3*"]       # glob patterns of model names routed here
region = "eastus"               # or zone = "US-VA"; facility = "microsoft"
hardware = "H100"

[upstreams.model_params."llama3.1:8b"]   # models not in the catalogue
active_params_b = 8
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlens.config import read_toml
from wattlens.errors import ConfigError

KINDS = ("openai", "anthropic")


@dataclass(frozen=True)
class ModelParams:
    active_params_b: float
    total_params_b: float | None = None
    precision: str | None = None


@dataclass(frozen=True)
class Upstream:
    name: str
    kind: str
    base_url: str
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed
    models: tuple[str, ...] = ("*",)
    zone: str | None = None
    region: str | None = None
    facility: str | None = None
    pue: float | None = None
    hardware: str | None = None
    gpus: int | None = None
    batch_size: float | None = None
    model_params: dict[str, ModelParams] = field(default_factory=dict)
    timeout_s: float = 600.0
    local: bool = False  # runs on this host: receipts come from the Meter's sensors

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, p) for p in self.models)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    sha256: str
    team: str | None = None
    user: str | None = None
    admin: bool = False


@dataclass(frozen=True)
class Route:
    """A virtual model name that sends each request to the smaller model when it will do."""

    name: str
    small: str
    large: str
    artefact: str | None = None  # default: the router shipped with wattlens
    threshold: float | None = None  # default: the artefact's calibrated threshold
    embed_all: bool = False  # True: skip the cheap first stage (better routing, slower decisions)


@dataclass(frozen=True)
class GatewayConfig:
    upstreams: tuple[Upstream, ...]
    host: str = "127.0.0.1"
    port: int = 8787
    ledger: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    keys: tuple[ApiKey, ...] = ()
    require_keys: bool = False
    routes: tuple[Route, ...] = ()

    def upstream_for(self, model: str) -> Upstream | None:
        for u in self.upstreams:
            if u.serves(model):
                return u
        return None


def _upstream(d: dict[str, Any], i: int) -> Upstream:
    where = f"[[upstreams]] #{i + 1}"
    for req in ("base_url",):
        if req not in d:
            raise ConfigError(f"{where}: missing {req}")
    kind = d.get("kind", "openai")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if "api_key" in d:
        raise ConfigError(f"{where}: put the upstream key in an environment variable and name it in api_key_env")
    params = {}
    for model, p in (d.get("model_params") or {}).items():
        if "active_params_b" not in p:
            raise ConfigError(f"{where}: model_params.{model} needs active_params_b")
        params[model] = ModelParams(
            float(p["active_params_b"]),
            float(p["total_params_b"]) if "total_params_b" in p else None,
            p.get("precision"),
        )
    models = d.get("models", ["*"])
    if isinstance(models, str):
        models = [models]
    return Upstream(
        name=str(d.get("name", f"upstream{i + 1}")),
        kind=kind,
        base_url=str(d["base_url"]).rstrip("/"),
        api_key_env=d.get("api_key_env"),
        models=tuple(models),
        zone=d.get("zone"),
        region=d.get("region"),
        facility=d.get("facility"),
        pue=d.get("pue"),
        hardware=d.get("hardware"),
        gpus=d.get("gpus"),
        batch_size=d.get("batch_size"),
        model_params=params,
        timeout_s=float(d.get("timeout_s", 600.0)),
    )


def load_keys(path: Path) -> tuple[ApiKey, ...]:
    data = read_toml(path, "keys file")
    out = []
    for k in data.get("keys", []):
        h = str(k.get("sha256", ""))
        if len(h) != 64:
            raise ConfigError(f"{path}: each [[keys]] needs sha256 = the hex SHA-256 of the key (wattlens keys new)")
        out.append(ApiKey(str(k.get("id", h[:8])), h, k.get("team"), k.get("user"), bool(k.get("admin", False))))
    return tuple(out)


def load_gateway_config(path: str | Path) -> GatewayConfig:
    p = Path(path).expanduser()
    data = read_toml(p, "gateway config")
    ups = tuple(_upstream(u, i) for i, u in enumerate(data.get("upstreams", [])))
    if not ups:
        raise ConfigError(f"{p}: no [[upstreams]] configured")
    server = data.get("server", {})
    keys: tuple[ApiKey, ...] = ()
    if server.get("keys_file"):
        keys = load_keys((p.parent / str(server["keys_file"])).expanduser())
    routes = []
    for i, r in enumerate(data.get("routes", [])):
        if not all(k in r for k in ("small", "large")):
            raise ConfigError(f"{p}: [[routes]] #{i + 1} needs small and large model names")
        threshold = float(r["threshold"]) if "threshold" in r else None
        routes.append(
            Route(
                str(r.get("name", "wattlens/auto")),
                str(r["small"]),
                str(r["large"]),
                r.get("artefact"),
                threshold,
                bool(r.get("embed_all", False)),
            )
        )
    return GatewayConfig(
        routes=tuple(routes),
        upstreams=ups,
        host=str(server.get("host", "127.0.0.1")),
        port=int(server.get("port", 8787)),
        ledger=server.get("ledger"),
        max_body_bytes=int(float(server.get("max_body_mb", 8)) * 1024 * 1024),
        keys=keys,
    )
