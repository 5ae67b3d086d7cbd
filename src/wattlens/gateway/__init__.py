"""The metering gateway (`wattlens serve`)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from typing import Any

from wattlens.context import Context
from wattlens.errors import ConfigError
from wattlens.gateway.config import GatewayConfig, Upstream, load_gateway_config


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def check_exposure(config: GatewayConfig) -> None:
    if not is_loopback(config.host) and not config.keys:
        raise ConfigError(
            f"refusing to serve on {config.host} without API keys: create one with `wattlens keys new` and "
            "name the keys file in [server] keys_file, or bind 127.0.0.1"
        )


def embedded_config(port: int, context: Context | None = None, host: str = "127.0.0.1") -> GatewayConfig:
    """No gateway sections: every model goes to the built-in local upstream on this same server."""
    up = Upstream("local", "openai", f"http://127.0.0.1:{port}/local/v1", models=("*",), local=True)
    return GatewayConfig(upstreams=(up,), host=host, port=port, context=context or Context())


def serve(config: GatewayConfig, log_level: str = "warning", local: Any = None, log: Any = None) -> None:
    """Run the gateway until stopped; `log` (gateway.logapi.LogSettings) signs the transparency log."""
    from wattlens.gateway.app import create_app
    from wattlens.ledger import LedgerWriter, open_ledger

    check_exposure(config)
    options = server_options(config)  # a bad [server] setting is refused before anything starts
    check_port(config.host, config.port)
    if local is not None:
        local.embedder()  # load now, so no request is charged for loading the model
    ledger = LedgerWriter(open_ledger(config.ledger)) if config.ledger != "none" else None
    app = create_app(config, ledger, local, log=log)
    server = gateway_server(app, log_level, options)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
        server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run: the server could not start


def gateway_server(app: Any, log_level: str, options: dict[str, Any]) -> Any:
    """A uvicorn server that tells the gateway it is stopping as soon as a signal comes, before the
    grace period ends and uvicorn cuts what is left: those streams are then recorded `shutdown`,
    not `client_disconnected`."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.gateway.stopping = True
            super().handle_exit(sig, frame)

    return Server(uvicorn.Config(app, log_level=log_level, **options))


MAX_CONNECTIONS = 768  # under the usual 1,024 file descriptors, with room for upstream and ledger sockets


def server_options(config: GatewayConfig, max_connections: int = MAX_CONNECTIONS) -> dict[str, Any]:
    """uvicorn's settings for the gateway (serve() and the tests use the same ones).

    uvicorn handles SIGINT/SIGTERM: it stops accepting, lets in-flight requests finish, then runs the
    app's shutdown, which flushes the ledger. Past `max_connections` concurrent connections it answers
    503 instead of letting slow clients exhaust the file descriptors, and the read deadlines
    (gateway/timeouts.py) close connections whose headers or body trickle in, so slow clients cannot
    hold those places either.
    """
    from wattlens.gateway.timeouts import deadline_protocol

    t = config.header_timeout_s
    if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0:
        raise ConfigError(f"[server] header_timeout_s must be a number of seconds above 0, got {t!r}")
    return {
        "host": config.host,
        "port": config.port,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "limit_concurrency": max_connections,
        "timeout_keep_alive": 5,
        "http": deadline_protocol(float(t)),
    }


def check_port(host: str, port: int) -> None:
    """A clear error now when the port is taken, rather than a start message and exit code 3."""
    if not 0 < port < 65536:  # a config file's port is not checked by the command line
        raise ConfigError(f"port {port} is out of range: give 1-65535 (--port or [server] port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {e.strerror} (is another gateway running? use --port)"
            ) from e


__all__ = [
    "GatewayConfig",
    "Upstream",
    "check_exposure",
    "embedded_config",
    "is_loopback",
    "load_gateway_config",
    "serve",
    "server_options",
]
