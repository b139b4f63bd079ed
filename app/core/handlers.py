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


def install(app: FastAPI) -> None:
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
