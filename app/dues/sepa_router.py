"""SEPA Direct Debit over the API: mandates (desk), collection files and returns (managers)."""
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import HTMLResponse, Response

from app.clubs import service as clubs_service
from app.clubs.deps import DeskActor, ManagerActor
from app.core.bodylimit import SEPA_RETURNS_FILE
from app.core.deps import SessionDep
from app.core.errors import DomainError
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeOffset, Limit, Page
from app.dues import sepa, sepa_batches, sepa_returns
from app.dues.models import Mandate
from app.dues.sepa_schemas import (
    BatchCreate,
    BatchRead,
    DueItem,
    DueRead,
    MandateCreate,
    MandateIbanChange,
    MandateRead,
    MandateRevoke,
    ReturnsReport,
)

router = APIRouter(prefix="/api/v1", tags=["sepa direct debit"])

MAX_RETURNS_FILE = SEPA_RETURNS_FILE


def _mandate_read(session, actor, mandate: Mandate) -> MandateRead:
    today = clubs_service.club_today_by_id(session, actor.club_id)
    status = ("revoked" if mandate.revoked_on is not None and mandate.revoked_on <= today
              else "expired" if today >= sepa.expires_on(mandate) else "active")
    return MandateRead.model_validate({**{c.key: getattr(mandate, c.key)
                                          for c in Mandate.__table__.columns},
                                       "expires_on": sepa.expires_on(mandate), "status": status})


@router.post("/payers/{payer_id}/mandates", response_model=MandateRead, status_code=201)
def create_mandate(session: SessionDep, actor: DeskActor, payer_id: IdPath("payer id"),
                   body: MandateCreate, idem: Idempotency):
    """Record a SEPA mandate the payer signed (IBAN checked, BIC derived where known)."""

    def action() -> MandateRead:
        mandate = sepa.create_mandate(session, actor=actor, payer_id=payer_id, iban=body.iban,
                                      bic=body.bic, account_holder=body.account_holder,
                                      signed_on=body.signed_on, reference=body.reference)
        return _mandate_read(session, actor, mandate)

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.get("/mandates/{mandate_id}", response_model=MandateRead)
def get_mandate(session: SessionDep, actor: DeskActor, mandate_id: IdPath("mandate id")):
    return _mandate_read(session, actor, sepa.get_mandate(session, club_id=actor.club_id,
                                                          mandate_id=mandate_id))


@router.get("/mandates/{mandate_id}/form", response_class=HTMLResponse)
def mandate_form(session: SessionDep, actor: DeskActor, mandate_id: IdPath("mandate id")):
    """The printable mandate form (English and German) for the payer to sign."""
    return HTMLResponse(sepa.mandate_form(session, actor=actor, mandate_id=mandate_id))


@router.post("/mandates/{mandate_id}/revoke", response_model=MandateRead)
def revoke_mandate(session: SessionDep, actor: DeskActor, mandate_id: IdPath("mandate id"),
                   body: MandateRevoke | None = None):
    mandate = sepa.revoke_mandate(session, actor=actor, mandate_id=mandate_id,
                                  revoked_on=body.revoked_on if body else None)
    return _mandate_read(session, actor, mandate)


@router.post("/mandates/{mandate_id}/iban", response_model=MandateRead)
def change_iban(session: SessionDep, actor: DeskActor, mandate_id: IdPath("mandate id"),
                body: MandateIbanChange):
    """The payer's new account on the same mandate (the next debit reports the amendment)."""
    mandate = sepa.change_iban(session, actor=actor, mandate_id=mandate_id, iban=body.iban,
                               bic=body.bic, account_holder=body.account_holder)
    return _mandate_read(session, actor, mandate)


def _due_item(d: sepa_batches.DueDebit) -> DueItem:
    c = d.collection
    return DueItem(collection_id=c.id, invoice_id=c.invoice_id, invoice_number=d.invoice_number,
                   payer_id=c.payer_id, payer_name=d.payer_name, amount=d.amount,
                   mandate_id=d.mandate.id if d.mandate else None,
                   mandate_reference=d.mandate.reference if d.mandate else None,
                   sequence=d.sequence, blocked=d.blocked)


@router.get("/sepa/due", response_model=DueRead)
def sepa_due(session: SessionDep, actor: ManagerActor,
             collection_date: Annotated[date, Query(alias="date")]):
    """What a collection file for the date would hold, and what is blocked (and why)."""
    found = sepa_batches.due(session, club_id=actor.club_id, collection_date=collection_date)
    return DueRead(collection_date=collection_date, count=len(found.ready), total=found.total,
                   items=[_due_item(d) for d in found.ready],
                   blocked=[_due_item(d) for d in found.blocked])


@router.post("/sepa/batches", response_model=BatchRead, status_code=201)
def prepare_batch(session: SessionDep, actor: ManagerActor, body: BatchCreate):
    """Prepare the pain.008 file of the date (the same file again when nothing new is due)."""
    batch = sepa_batches.prepare_batch(session, actor=actor,
                                       collection_date=body.collection_date)
    return BatchRead.model_validate(batch)


@router.get("/sepa/batches", response_model=Page[BatchRead])
def list_batches(session: SessionDep, actor: ManagerActor, limit: Limit = 50,
                 offset: LargeOffset = 0):
    items, total = sepa_batches.list_batches(session, club_id=actor.club_id, limit=limit,
                                             offset=offset)
    return Page[BatchRead](items=[BatchRead.model_validate(b) for b in items], total=total,
                           limit=limit, offset=offset)


@router.get("/sepa/batches/{batch_id}", response_model=BatchRead)
def get_batch(session: SessionDep, actor: ManagerActor, batch_id: IdPath("batch id")):
    return BatchRead.model_validate(sepa_batches.get_batch(session, club_id=actor.club_id,
                                                           batch_id=batch_id))


@router.get("/sepa/batches/{batch_id}/file", response_class=Response,
            responses={200: {"content": {"application/xml": {}}}})
def batch_file(session: SessionDep, actor: ManagerActor, batch_id: IdPath("batch id")):
    """The pain.008 XML to upload to the bank (the same bytes on every download)."""
    name, content = sepa_batches.batch_file(session, club_id=actor.club_id, batch_id=batch_id)
    return Response(content, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/sepa/batches/{batch_id}/submitted", response_model=BatchRead)
def mark_submitted(session: SessionDep, actor: ManagerActor, batch_id: IdPath("batch id")):
    """The file was uploaded to the bank: its debits count as paid unless they come back."""
    return BatchRead.model_validate(sepa_batches.mark_submitted(session, actor=actor,
                                                                batch_id=batch_id))


@router.post("/sepa/returns", response_model=ReturnsReport)
def import_returns(session: SessionDep, actor: ManagerActor,
                   file: Annotated[UploadFile, File(description=(
                       "camt.054 / camt.053 XML from the bank, or the CSV return format "
                       "(end_to_end_id, amount, reason_code, date, fee)"))],
                   dry_run: bool = False):
    """Import returned debits; `dry_run=true` reports each row and writes nothing."""
    content = file.file.read(MAX_RETURNS_FILE + 1)
    if len(content) > MAX_RETURNS_FILE:
        raise DomainError(f"The returns file is larger than {MAX_RETURNS_FILE >> 20} MB",
                          code="file_too_large", status_code=413)
    return ReturnsReport.model_validate(sepa_returns.import_returns(
        session, actor=actor, content=content, filename=file.filename or "", dry_run=dry_run))
