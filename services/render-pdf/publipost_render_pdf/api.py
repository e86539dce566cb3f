from typing import Any

from fastapi import APIRouter

from .context import Context

router = APIRouter(tags=["render-pdf"])


@router.get("/workers")
async def workers(ctx: Context) -> list[dict[str, Any]]:
    """Each LibreOffice worker: running, busy, conversions, restarts."""
    return ctx.converter.describe()
