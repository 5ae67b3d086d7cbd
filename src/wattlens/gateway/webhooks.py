"""Alerts to webhooks: a JSON POST, time-bounded, retried once, never naming more than the host."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("wattlens.budgets")
WEBHOOK_TIMEOUT_S = 5.0


def post(url: str, body: dict[str, Any]) -> None:
    """POST a JSON alert; the URL may hold a token, so a failure names only its host."""
    import urllib.error
    import urllib.parse
    import urllib.request

    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"content-type": "application/json", "user-agent": "wattlens"}
    )
    host = urllib.parse.urlsplit(url).hostname
    for attempt in (1, 2):
        try:
            with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S) as r:
                r.read(1024)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            if attempt == 2:
                log.warning("budget webhook to %s failed: %s", host, type(e).__name__)
            else:
                time.sleep(0.5)
