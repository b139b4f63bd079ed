"""Idempotency-Key for POSTs that create money: a repeat gets the original answer, never a 2nd sale.

The key row is claimed (INSERT ... ON CONFLICT DO NOTHING) *before* the business writes and
updated with the answer afterwards, all in the request's transaction. A concurrent repeat
therefore waits on the unique index until the first commits (PostgreSQL) or on the write lock
(SQLite, BEGIN IMMEDIATE), then finds the stored answer. If the first request fails, its key
row rolls back with it and a retry runs afresh.

Router usage::

    @router.post("/sales", response_model=SaleRead, status_code=201)
    def create_sale(session: SessionDep, actor: DeskActor, body: SaleCreate, idem: Idempotency):
        return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                        action=lambda: SaleRead.model_validate(service.create_sale(...)))
"""
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core import clock
from app.core.db import Base, IdMixin
from app.core.errors import Conflict, Invalid
from app.core.sql import dialect_insert
from app.core.types import BigId

MAX_KEY_LENGTH = 200
REPLAY_HEADER = "Idempotent-Replayed"


class IdempotencyKey(IdMixin, Base):
    """A client's Idempotency-Key and the answer it got, replayed for a repeat of the same request."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("club_id", "key", "endpoint"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class IdempotentRequest:
    """The client's key (None when not sent), the route it was sent to and the path values."""

    key: str | None
    endpoint: str
    path_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)


def idempotent_request(
    request: Request,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID) per intended operation; a repeat with the same "
                    "key and body returns the original answer instead of acting twice")] = None,
) -> IdempotentRequest:
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise Invalid(f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} visible ASCII characters "
                      "without spaces", code="invalid_idempotency_key")
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return IdempotentRequest(idempotency_key, f"{request.method} {path}",
                             dict(request.path_params))


Idempotency = Annotated[IdempotentRequest, Depends(idempotent_request)]


def request_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a request (sorted keys, no spaces)."""
    canonical = json.dumps(jsonable_encoder(payload), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(session: Session, *, club_id: int, key: str, endpoint: str,
            request_hash: str) -> StoredResponse:
    row = session.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.status_code, IdempotencyKey.response)
        .where(IdempotencyKey.club_id == club_id, IdempotencyKey.key == key,
               IdempotencyKey.endpoint == endpoint)
    ).first()
    if row is None:  # the other request rolled back between our INSERT and SELECT: rare, retryable
        raise Conflict("A request with this Idempotency-Key was just abandoned; retry",
                       code="idempotency_retry")
    if row.request_hash != request_hash:
        raise Invalid("This Idempotency-Key was already used for a different request; "
                      "use a new key for a new operation", code="idempotency_key_reused")
    if row.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still being processed",
                       code="idempotency_in_flight")
    return StoredResponse(row.status_code, row.response)


def claim(session: Session, *, club_id: int, key: str, endpoint: str,
          request_hash: str) -> int | StoredResponse:
    """Claim a key for this request: its row id if new, else the stored answer to replay.

    Raises Invalid (422, `idempotency_key_reused`) when the key came with a different request.
    On PostgreSQL a concurrent claim of the same key waits here until the first one commits.
    """
    stmt = (dialect_insert(session, IdempotencyKey)
            .values(club_id=club_id, key=key, endpoint=endpoint, request_hash=request_hash,
                    created_at=clock.now())
            .on_conflict_do_nothing(index_elements=["club_id", "key", "endpoint"])
            .returning(IdempotencyKey.id))
    claimed = session.execute(stmt).scalar()
    if claimed is not None:
        return claimed
    return _stored(session, club_id=club_id, key=key, endpoint=endpoint,
                   request_hash=request_hash)


def remember(session: Session, *, claim_id: int, status_code: int, body: Any) -> None:
    """Store the answer on a claimed key (same transaction as the business writes)."""
    session.execute(update(IdempotencyKey).where(IdempotencyKey.id == claim_id)
                    .values(status_code=status_code, response=body))


def _encode(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return jsonable_encoder(result)


def run_once(session: Session, *, club_id: int, request: IdempotentRequest,
             body: BaseModel | None, status_code: int,
             action: Callable[[], Any]) -> JSONResponse:
    """Run `action` once per (club, key, endpoint); replay the stored answer for a repeat.

    `action` returns the response (a Pydantic model or JSON-able value). Without a key it just
    runs. The stored hash covers the path values and the validated body.
    """
    if request.key is None:
        return JSONResponse(_encode(action()), status_code=status_code)
    digest = request_hash({"path": request.path_params,
                           "body": body.model_dump(mode="json") if body is not None else None})
    claimed = claim(session, club_id=club_id, key=request.key, endpoint=request.endpoint,
                    request_hash=digest)
    if isinstance(claimed, StoredResponse):
        return JSONResponse(claimed.body, status_code=claimed.status_code,
                            headers={REPLAY_HEADER: "true"})
    content = _encode(action())
    remember(session, claim_id=claimed, status_code=status_code, body=content)
    return JSONResponse(content, status_code=status_code)
