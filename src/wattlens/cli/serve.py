"""The gateway: serve, keys."""

from __future__ import annotations

from typing import Annotated

import typer

from wattlens.cli.common import FactorsOpt, GridOpt, app, err, group, out, settings_for


@app.command()
def serve(
    config: Annotated[
        str | None, typer.Option(help="Config file with [[upstreams]], [server], [defaults] (default ./wattlens.toml).")
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="One OpenAI-compatible upstream for every model, e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, llama.cpp)."
        ),
    ] = None,
    upstream_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the upstream key.")] = None,
    ledger: Annotated[str | None, typer.Option(help="Ledger file or postgresql:// URL ('none' to disable).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default 8787).")] = None,
    zone: Annotated[str | None, typer.Option(help="Grid zone of upstreams that name none.")] = None,
    region: Annotated[str | None, typer.Option(help="Cloud region of upstreams that name none.")] = None,
    hardware: Annotated[str | None, typer.Option(help="Accelerator of the --upstream, e.g. H100.")] = None,
    local_model: Annotated[
        str | None,
        typer.Option(help="Without --config/--upstream: a local causal LM (path or Hugging Face id) for chat."),
    ] = None,
    self_test: Annotated[
        bool,
        typer.Option("--self-test", help="Start, send one embeddings request through the gateway, print its receipt, stop."),
    ] = False,
    factors: FactorsOpt = None,
    grid: GridOpt = None,
) -> None:
    """Run the metering gateway: OpenAI- and Anthropic-compatible, a receipt on every response.

    With no --config and no --upstream it serves a built-in local model (the 'local' extra):
    embeddings by all-MiniLM-L6-v2, chat by --local-model, measured on this machine.
    """
    import dataclasses

    from wattlens.context import Context
    from wattlens.gateway import embedded_config
    from wattlens.gateway import serve as run_gateway
    from wattlens.gateway.config import GatewayConfig, Upstream, base_url, gateway_config
    from wattlens.metering import Serving

    st = settings_for(config, factors, zone=zone, region=region, ledger=ledger, grid_feed=grid)
    # A live grid feed must never put a provider's latency on a request: fetch off the request path
    # unless the config says otherwise.
    st = dataclasses.replace(st, grid_options={"fetch": "background", **st.grid_options})
    context = st.context()
    local = None
    if upstream:
        url = base_url(upstream, "--upstream")
        up = Upstream("default", "openai", url, upstream_key_env, serving=Serving(hardware=hardware))
        cfg = GatewayConfig(upstreams=(up,), ledger=st.ledger, context=context)
    elif st.data.get("upstreams"):
        cfg = gateway_config(st, context)
    else:
        from wattlens.gateway.local import LocalModels, embedding_model_path

        embedding_model_path()  # a clear message now if the 'local' extra is missing
        cfg = dataclasses.replace(embedded_config(port or 8787, context, host or "127.0.0.1"), ledger=st.ledger)
        local = LocalModels(local_model)
    cfg = dataclasses.replace(cfg, host=host or cfg.host, port=port or cfg.port)
    assert isinstance(cfg.context, Context)
    if self_test:
        from wattlens.cli.present import receipt_table
        from wattlens.footprint import Footprint
        from wattlens.gateway.selftest import self_test as run_self_test

        fp = run_self_test(cfg, local)
        out.print(receipt_table(Footprint.from_dict(fp)))
        out.print("[green]self-test passed[/]: the gateway served its built-in models and attached their receipts")
        return
    from wattlens.gateway import check_port

    check_port(cfg.host, cfg.port)  # before saying where it listens
    if local is not None:
        import time

        from wattlens.gateway.local import CHAT_INSTALL

        err.print("loading and measuring the built-in models on this machine…")
        t0 = time.perf_counter()
        # Load and measure now: no request is charged for loading, and the picker shows this machine's figures.
        typical = local.load()
        took = time.perf_counter() - t0
        chat = f"{local.chat_name} (chat)" if local.chat_available() else "no chat model: " + CHAT_INSTALL
        err.print(f"built-in models (ready in {took:.0f} s): sentence-transformers/all-MiniLM-L6-v2 (embeddings), {chat}")
        for name, t in typical.items():
            err.print(
                f"  {name}: ~{t['energy_wh']['mid']:.3g} Wh per typical answer, {t['note']}", markup=False, highlight=False
            )
    from wattlens.metering import public_url

    where = ", ".join(f"{u.name} ({public_url(u.base_url)})" for u in cfg.upstreams)
    err.print(f"wattlens gateway on http://{cfg.host}:{cfg.port}/v1 · upstreams: {where}")
    from wattlens.gateway.logapi import log_settings

    run_gateway(cfg, local=local, log=log_settings(st))  # [log] of --config too, not only the default file


keys_app = group("Gateway API keys (stored hashed).")
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    team: Annotated[str | None, typer.Option(help="Team the key bills to.")] = None,
    user: Annotated[str | None, typer.Option(help="User of the key.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May read /metrics, the dashboard and exports.")] = False,
) -> None:
    """Create a gateway key: prints the key once, and the [[keys]] entry (hash only) for the keys file."""
    from wattlens.gateway.auth import new_key

    key, digest = new_key()
    err.print("[bold]key[/] (shown once, give it to the client):")
    print(key)
    entry = f'[[keys]]\nid = "{digest[:8]}"\nsha256 = "{digest}"'
    entry += f'\nteam = "{team}"' if team else ""
    entry += f'\nuser = "{user}"' if user else ""
    entry += "\nadmin = true" if admin else ""
    err.print("add to the keys file:\n" + entry, markup=False, highlight=False, soft_wrap=True)
