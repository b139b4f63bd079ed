"""One JSON envelope for every error: {"error": code, "message": text, "details": ...}."""
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DomainError

log = logging.getLogger("fitclub.errors")


def envelope(status: int, code: str, message: str, details=None, headers=None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "details": details},
                        status_code=status, headers=headers)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "description": "The one error envelope every 4xx/5xx answer uses.",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "description": "stable machine-readable code"},
        "message": {"type": "string", "description": "what went wrong, for a person"},
        "details": {"description": "field errors or other context; may be null"},
    },
}
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
_COMMON_ERRORS = {
    "400": "Malformed request (e.g. a body that is not valid JSON or form data)",
    "404": "Not found — also the answer for another club's records",
    "409": "Conflicts with existing data, or the same Idempotency-Key is still in flight",
    "422": "Invalid input: the envelope's details list the fields",
    "503": "The database is busy or unavailable; retry after Retry-After seconds",
}
_AUTH_ERRORS = {
    "401": "Not signed in, token expired or revoked, or unknown device key",
    "403": "Signed in, but this role may not do this",
}
_LOGIN_ERRORS = {
    "401": "Wrong email or password",
    "429": "Too many failed logins; try again later",
}


def document_errors(app: FastAPI) -> None:
    """Declare the error envelope in the OpenAPI schema for the statuses operations answer.

    FastAPI documents only the success status and a 422 shaped like its own validation error;
    ours answer {"error", "message", "details"} with 400/401/403/404/409/422/503, and a schema
    that says so lets clients (and the fuzz tests) check every answer against it.
    """
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"] = ERROR_SCHEMA
        json_error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if method not in _METHODS:
                    continue
                content = json_error
                if any("text/html" in (r.get("content") or {})
                       for r in operation.get("responses", {}).values()):
                    # pages answer their own errors as a page, framework errors as JSON
                    content = json_error | {"text/html": {"schema": {"type": "string"}}}
                errors = dict(_COMMON_ERRORS)
                if operation.get("security"):
                    errors |= _AUTH_ERRORS
                if path.endswith("/auth/token"):
                    errors |= _LOGIN_ERRORS
                responses = operation.setdefault("responses", {})
                for status, description in errors.items():
                    declared = responses.get(status) or {}
                    # a route's own error format (the ZKTeco text answers) is kept beside ours
                    responses[status] = {
                        "description": declared.get("description", description),
                        "content": content | (declared.get("content") or {})}
        if not any("HTTPValidationError" in str(item) for item in schema.get("paths", {}).values()):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def install(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError):
        return envelope(exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        errors = [
            {"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid"),
             "type": e.get("type")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return envelope(422, "validation_error", f"Please check the input — {summary}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated",
                403: "forbidden"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "Nothing here: check the address"
        return envelope(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError):
        log.warning("integrity error reached the edge: %s", exc.orig.__class__.__name__)
        return envelope(409, "conflict", "This change conflicts with existing data; reload and retry")

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError):
        log.warning("data error reached the edge: %s", exc.orig.__class__.__name__)
        return envelope(422, "invalid_value", "A value is out of range or malformed")

    @app.exception_handler(OperationalError)
    async def _operational(_request: Request, exc: OperationalError):
        log.error("database unavailable or busy: %s", exc.orig.__class__.__name__)
        return envelope(503, "unavailable", "The database is busy; please retry",
                        headers={"Retry-After": "1"})
