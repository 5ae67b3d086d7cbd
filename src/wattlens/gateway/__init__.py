"""The metering gateway (`wattlens serve`)."""

from __future__ import annotations

import ipaddress
import socket

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


def serve(config: GatewayConfig, log_level: str = "warning") -> None:
    import uvicorn

    from wattlens.gateway.app import create_app
    from wattlens.ledger import LedgerWriter, open_ledger

    check_exposure(config)
    ledger = LedgerWriter(open_ledger(config.ledger)) if config.ledger != "none" else None
    app = create_app(config, ledger)
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, lets in-flight requests finish, then runs
    # the app's shutdown, which flushes the ledger.
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, access_log=False, timeout_graceful_shutdown=30)


__all__ = ["GatewayConfig", "Upstream", "check_exposure", "is_loopback", "load_gateway_config", "serve"]
