"""Invoices as documents (list, one, printable page, credit notes) and the billing run now.

Invoices are never changed: there is no PATCH or DELETE; a correction is a credit note.
"""
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.clubs import service as clubs_service
from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeOffset, Limit, Page
from app.core.types import MAX_ID
from app.dues import documents
from app.dues.invoices_schemas import (
    BillingRunRead,
    CreditNoteCreate,
    DuesPaymentRead,
    InvoiceDetail,
    InvoiceLineRead,
    InvoiceRead,
)
from app.dues.run import run_billing

router = APIRouter(prefix="/api/v1", tags=["invoices"])


def _read(view: documents.InvoiceView) -> dict:
    i = view.invoice
    return {"id": i.id, "number": i.number, "kind": i.kind, "corrects_id": i.corrects_id,
            "payer_id": i.payer_id, "payer_name": (i.payer_snapshot or {}).get("name"),
            "issued_on": i.issued_on, "due_on": i.due_on, "method": i.method,
            "currency": i.currency, "net": i.net, "tax": i.tax, "gross": i.gross,
            "paid": view.paid, "open": view.open}


def _detail(view: documents.InvoiceView) -> InvoiceDetail:
    return InvoiceDetail(
        **_read(view), payer=view.invoice.payer_snapshot or {},
        seller=view.invoice.seller_snapshot or {},
        lines=[InvoiceLineRead.model_validate(line) for line in view.lines],
        payments=[DuesPaymentRead.model_validate(p) for p in view.payments],
        credited_line_ids=view.credited_line_ids)


@router.get("/invoices", response_model=Page[InvoiceRead])
def list_invoices(session: SessionDep, actor: DeskActor,
                  payer_id: int | None = Query(None, ge=1, le=MAX_ID),
                  member_id: int | None = Query(None, ge=1, le=MAX_ID),
                  open_only: bool = Query(False, alias="open"), limit: Limit = 50,
                  offset: LargeOffset = 0):
    """Invoices and credit notes, newest first; `open=true`: only those with money open."""
    views, total = documents.list_invoices(session, club_id=actor.club_id, payer_id=payer_id,
                                           member_id=member_id, open_only=open_only, limit=limit,
                                           offset=offset)
    return Page[InvoiceRead](items=[InvoiceRead(**_read(v)) for v in views], total=total,
                             limit=limit, offset=offset)


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail)
def get_invoice(session: SessionDep, actor: DeskActor, invoice_id: IdPath("invoice id")):
    """One invoice with its lines, payments and open amount."""
    return _detail(documents.get_invoice(session, club_id=actor.club_id, invoice_id=invoice_id))


@router.get("/invoices/{invoice_id}/print", response_class=HTMLResponse)
def print_invoice(session: SessionDep, actor: DeskActor, invoice_id: IdPath("invoice id")):
    """The invoice as a printable page (a PDF is the browser's print to PDF)."""
    return HTMLResponse(documents.print_invoice(session, club_id=actor.club_id,
                                                invoice_id=invoice_id))


@router.post("/invoices/{invoice_id}/credit-note", response_model=InvoiceDetail,
             status_code=201)
def credit_note(session: SessionDep, actor: ManagerActor, invoice_id: IdPath("invoice id"),
                body: CreditNoteCreate, idem: Idempotency):
    """Credit the whole invoice or some lines (each line once only); answers the credit note."""

    def action() -> InvoiceDetail:
        note = documents.credit_note(session, actor=actor, invoice_id=invoice_id,
                                     line_ids=body.line_ids, reason=body.reason)
        return _detail(documents.get_invoice(session, club_id=actor.club_id,
                                             invoice_id=note.id))

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.post("/dues/run", response_model=BillingRunRead)
def run_now(request: Request, session: SessionDep, actor: ManagerActor):
    """Run today's billing for this club now; once a day (a finished run answers done_before)."""
    today = clubs_service.club_today_by_id(session, actor.club_id)
    # the run commits chunk by chunk in its own transactions: end this request's first
    # (SQLite has one writer)
    session.commit()
    result = run_billing(request.app.state.sessionmaker, club_id=actor.club_id, day=today)
    return BillingRunRead.model_validate(result)
