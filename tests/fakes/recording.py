"""What every provider fake shares: a log of the requests it received and a queue of failures
(status, headers, body) to answer the next requests with."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


async def record(request: Request, log: list[dict[str, Any]]) -> None:
    body = await request.body()
    log.append({"method": request.method, "path": request.url.path, "params": dict(request.query_params),
                "json": json.loads(body) if body else None, "headers": dict(request.headers)})


def injected(failures: list[tuple[int, dict[str, str], str]]) -> Response | None:
    if not failures:
        return None
    status, headers, text = failures.pop(0)
    return Response(text, status, headers=headers, media_type="application/json")
