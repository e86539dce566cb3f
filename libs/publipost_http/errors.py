"""How every route says no, in one place: a domain's refusal, a database out of reach, and the OpenAPI
document declaring each answer a route can give with its body."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from publipost_refusals import Conflict, Gone, Invalid, NotFound
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure

REFUSAL_STATUS = ((NotFound, 404), (Gone, 410), (Invalid, 422), (Conflict, 409))
RETRY_AFTER_S = 5


class Refused(BaseModel):
    """Why the request was not done, in words the person who asked reads (naming the field to blame)."""

    detail: str


class TooLargePart(BaseModel):
    loc: list[str]
    msg: str
    type: str
    ctx: dict[str, int]


class TooLarge(BaseModel):
    """The body was refused while it arrived: `detail[0].ctx.limit` is the route's limit in bytes."""

    detail: list[TooLargePart]


async def refusal_answer(_: Request, exc: Exception) -> JSONResponse:
    """A domain's refusal (publipost_refusals) as every route answers it: its kind's status, its words."""
    status = next((code for kind, code in REFUSAL_STATUS if isinstance(exc, kind)), 409)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def database_unreachable(_: Request, exc: Exception) -> JSONResponse:
    """A request that met the database out of reach is answered 503 with a time to come back after, not 500:
    nothing was done that a retry would do twice (writes are idempotent or refused)."""
    return JSONResponse(
        {"detail": "the database is out of reach for now; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def answer_errors(app: FastAPI) -> None:
    app.add_exception_handler(ConnectionFailure, database_unreachable)


# What each error means, as the OpenAPI document says it.
ERRORS: dict[str, tuple[str, type[BaseModel]]] = {
    "401": ("No credentials, or credentials not valid (expired token, revoked or unknown API key).", Refused),
    "403": ("The caller's role or tenant may not do this.", Refused),
    "404": ("It names something the caller's tenant does not have, or may not use.", Refused),
    "409": ("What it names is not in a state to do this (a mailing not ready, an account in use).", Refused),
    "413": ("The request body is over this route's limit.", TooLarge),
    "422": ("The request is not valid: the answer names the field.", Refused),
    "503": ("A dependency (the database, the identity issuer) is out of reach: retry after Retry-After.", Refused),
}


def errors_of(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The errors a route can answer: every route may meet the database down; a guarded one refuses
    callers; a path naming something may not find it; a change may not fit the state or the request."""
    codes = ["503"]
    if operation.get("security"):
        codes += ["401", "403"]
    if "{" in path:
        codes.append("404")
    if method != "get":
        codes += ["409", "422"]
    if "requestBody" in operation:
        codes.append("413")
    return codes


def declare_errors(app: FastAPI) -> None:
    """The app's OpenAPI document lists every error of every route with its body (FastAPI lists only 422)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (Refused, TooLarge):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            for path, operations in document["paths"].items():
                if path in ("/healthz", "/readyz", "/metrics"):
                    continue
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    for code in errors_of(path, method, operation):
                        description, model = ERRORS[code]
                        responses.setdefault(
                            code,
                            {
                                "description": description,
                                "content": {
                                    "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                                },
                            },
                        )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
