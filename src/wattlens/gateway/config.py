"""Gateway configuration: upstreams per model name, where each runs, keys, ledger.

These sections sit in the same file as the rest of the configuration (wattlens.toml or
--config); an upstream's place falls back to the file's [defaults] and the environment.

[server]
host = "127.0.0.1"
port = 8787
ledger = "~/.local/share/wattlens/ledger.db"   # or postgresql://...
max_body_mb = 8
keys_file = "keys.toml"                         # required when binding beyond loopback
header_timeout_s = 10                           # headers within this, then bodies at >= 500 B/s; else 408

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
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattlens.config import Settings, check_keys, load_settings, read_toml
from wattlens.context import Context, Place
from wattlens.errors import ConfigError
from wattlens.metering import ModelParams, Serving

MODEL_PARAM_KEYS = ("active_params_b", "total_params_b", "precision")
KEY_KEYS = ("id", "sha256", "team", "user", "admin", "tags")


@dataclass(frozen=True)
class Upstream:
    name: str
    kind: str  # a registered wire protocol: openai, anthropic, or a plugin's
    base_url: str
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed
    models: tuple[str, ...] = ("*",)
    place: Place = field(default_factory=Place)  # where it runs; unset fields come from the configuration's defaults
    serving: Serving = field(default_factory=Serving)
    timeout_s: float = 600.0
    local: bool = False  # runs on this host: receipts come from the Meter's sensors
    model_info: bool = True  # ask the upstream what a model the name rules cannot place is (gateway/modelinfo.py)

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def serves(self, model: str) -> bool:
        return _matches(self.models, model)


@functools.lru_cache(maxsize=4096)
def _matches(patterns: tuple[str, ...], model: str) -> bool:
    """Whether a model name matches an upstream's patterns (asked on every request: cached)."""
    return any(p == "*" or fnmatch.fnmatchcase(model, p) for p in patterns)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    sha256: str
    team: str | None = None
    user: str | None = None
    admin: bool = False
    tags: tuple[tuple[str, str], ...] = ()  # default tags of this key's requests (a request may set others)


@dataclass(frozen=True)
class Route:
    """A virtual model name that sends each request to the smaller model when it will do."""

    name: str
    small: str
    large: str
    artefact: str | None = None  # default: the router shipped with wattlens
    threshold: float | None = None  # default: the artefact's calibrated threshold
    embed_all: bool = False  # True: skip the cheap first stage (better routing, slower decisions)
    embedder: str = "int8"  # how the embedding stage runs all-MiniLM-L6-v2: route.ROUTER_EMBEDDER (a test checks)


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
    allowed_hosts: tuple[str, ...] = ()  # host names beyond loopback and the bind address (a proxy's name)
    header_timeout_s: float = 10.0  # to receive a request's headers, then its body (gateway/timeouts.py)
    context: Context = field(default_factory=Context)  # factors, grid feed and default place of every upstream
    budgets: tuple[Any, ...] = ()  # wattlens.gateway.budgets.Budget, from [[budgets]]

    def upstream_for(self, model: str) -> Upstream | None:
        for u in self.upstreams:
            if u.serves(model):
                return u
        return None


def _opt_float(v: Any) -> float | None:
    return float(v) if v is not None else None


def base_url(raw: object, where: str) -> str:
    """An upstream's base URL, checked: http(s), a host, and nothing the gateway would send astray (a
    user and password, which belong in api_key_env; a query or fragment, which the path would follow)."""
    from urllib.parse import urlsplit

    text = str(raw).strip().rstrip("/")
    try:
        u = urlsplit(text)
        _ = u.port  # an out-of-range or non-numeric port raises here, not on the first request
    except ValueError as e:
        raise ConfigError(f"{where}: base_url is not a URL ({e})") from e  # not echoed: it may hold a password
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(
            f"{where}: base_url must be an http:// or https:// URL with a host, e.g. https://api.openai.com/v1"
        )
    if u.username is not None or u.password is not None:
        raise ConfigError(
            f"{where}: base_url must not carry a user or password: name the environment variable holding the key "
            "in api_key_env"
        )
    if u.query or u.fragment or text.endswith(("?", "#")):
        raise ConfigError(f"{where}: base_url must not carry a query or fragment (the endpoint's path is added after it)")
    return text


def _upstream(d: dict[str, Any], i: int) -> Upstream:
    where = f"[[upstreams]] #{i + 1}"
    if "base_url" not in d:
        raise ConfigError(f"{where}: missing base_url")
    if "api_key" in d:
        raise ConfigError(f"{where}: put the upstream key in an environment variable and name it in api_key_env")
    params = {}
    for model, p in (d.get("model_params") or {}).items():
        check_keys(p, MODEL_PARAM_KEYS, f"{where} model_params.{model}")
        if "active_params_b" not in p:
            raise ConfigError(f"{where}: model_params.{model} needs active_params_b")
        params[model] = ModelParams(float(p["active_params_b"]), _opt_float(p.get("total_params_b")), p.get("precision"))
    models = d.get("models", ["*"])
    if isinstance(models, str):
        models = [models]
    return Upstream(
        name=str(d.get("name", f"upstream{i + 1}")),
        kind=str(d.get("kind", "openai")),
        base_url=base_url(d["base_url"], where),
        api_key_env=d.get("api_key_env"),
        models=tuple(models),
        place=Place(
            zone=d.get("zone"),
            region=d.get("region"),
            provider=d.get("provider"),
            facility=d.get("facility"),
            pue=_opt_float(d.get("pue")),
            wue_l_per_kwh=_opt_float(d.get("wue_l_per_kwh")),
        ),
        serving=Serving(d.get("hardware"), d.get("gpus"), _opt_float(d.get("batch_size")), params),
        timeout_s=float(d.get("timeout_s", 600.0)),
        model_info=bool(d.get("model_info", True)),
    )


def load_keys(path: Path) -> tuple[ApiKey, ...]:
    data = read_toml(path, "keys file")
    check_keys(data, ("keys",), str(path))
    out = []
    for k in data.get("keys", []):
        check_keys(k, KEY_KEYS, f"{path} [[keys]]")
        h = str(k.get("sha256", ""))
        if len(h) != 64:
            raise ConfigError(f"{path}: each [[keys]] needs sha256 = the hex SHA-256 of the key (wattlens keys new)")
        from wattlens.gateway.tags import key_tags

        tags = key_tags(k.get("tags"), f"{path} [[keys]] {k.get('id', h[:8])}")
        out.append(ApiKey(str(k.get("id", h[:8])), h, k.get("team"), k.get("user"), bool(k.get("admin", False)), tags))
    return tuple(out)


def gateway_config(settings: Settings, context: Context | None = None) -> GatewayConfig:
    """The gateway sections of the configuration file ([server], [[upstreams]], [[routes]])."""
    from wattlens.protocols import protocols

    data, where = settings.data, settings.path or "config"
    ups = tuple(_upstream(u, i) for i, u in enumerate(data.get("upstreams", [])))
    if not ups:
        raise ConfigError(f"{where}: no [[upstreams]] configured")
    kinds = protocols()
    for i, u in enumerate(ups):
        if u.kind not in kinds:
            raise ConfigError(f"[[upstreams]] #{i + 1}: kind must be one of {', '.join(kinds)}, got {u.kind!r}")
    server = data.get("server", {})
    keys: tuple[ApiKey, ...] = ()
    base = Path(settings.path).expanduser().parent if settings.path else Path(".")
    if server.get("keys_file"):
        keys = load_keys((base / str(server["keys_file"])).expanduser())
    routes = []
    for i, r in enumerate(data.get("routes", [])):
        if not all(k in r for k in ("small", "large")):
            raise ConfigError(f"{where}: [[routes]] #{i + 1} needs small and large model names")
        from wattlens.route import EMBEDDERS, ROUTER_EMBEDDER  # with routes only: the gateway loads it for them

        embedder = str(r.get("embedder", ROUTER_EMBEDDER))
        if embedder not in EMBEDDERS:
            raise ConfigError(
                f"{where}: [[routes]] #{i + 1} embedder must be one of {', '.join(EMBEDDERS)}, got {embedder!r}"
            )
        routes.append(
            Route(
                str(r.get("name", "wattlens/auto")),
                str(r["small"]),
                str(r["large"]),
                r.get("artefact"),
                _opt_float(r.get("threshold")),
                bool(r.get("embed_all", False)),
                embedder,
            )
        )
    return GatewayConfig(
        routes=tuple(routes),
        upstreams=ups,
        host=str(server.get("host", "127.0.0.1")),
        port=int(server.get("port", 8787)),
        ledger=settings.ledger,
        max_body_bytes=int(float(server.get("max_body_mb", 8)) * 1024 * 1024),
        keys=keys,
        allowed_hosts=tuple(str(h) for h in server.get("allowed_hosts", [])),
        header_timeout_s=server.get("header_timeout_s", 10.0),  # checked by serve()
        context=context or settings.context(),
        budgets=_budgets(data, str(where)),
    )


def _budgets(data: dict[str, Any], where: str) -> tuple[Any, ...]:
    from wattlens.gateway.budget_rules import parse_budgets

    return parse_budgets(data.get("budgets", []), where)


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """A gateway configuration file on its own (the environment still applies)."""
    return gateway_config(load_settings(path))
