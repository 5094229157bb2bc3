"""`GET /health`: the process is up and serving. Backends are not probed here, so a slow backend never makes
an orchestrator restart a healthy observer."""

from __future__ import annotations

from fastapi import APIRouter

from domain.timeutil import format_rfc3339, now_ns

router = APIRouter(tags=["Health"])


@router.get("/health", operation_id="health")
async def health() -> dict[str, str]:
    return {"status": "healthy", "timestamp": format_rfc3339(now_ns() // 10**9 * 10**9)}
