"""The desk's dues API: paying invoices, the open dunning cases, write-offs, close-outs."""
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, Limit, Offset, Page
from app.dues import desk, dunning, invoicing
from app.dues.desk_schemas import (
    CloseoutCreate,
    CloseoutPreview,
    CloseoutRead,
    DunningCaseRead,
    InvoicePaymentCreate,
    InvoicePaymentRead,
)
from app.dues.models import DunningCase, Invoice, Payer

router = APIRouter(prefix="/api/v1", tags=["dues at the desk"])

DeskQ = Annotated[str, Query(alias="desk", min_length=1, max_length=40, pattern=r"^[\w .\-]+$")]
MoneyQ = Annotated[Decimal, Query(ge=0, max_digits=12, decimal_places=2)]


@router.post("/invoices/{invoice_id}/payments", response_model=InvoicePaymentRead,
             status_code=201)
def pay_invoice(session: SessionDep, actor: DeskActor, invoice_id: IdPath("invoice id"),
                body: InvoicePaymentCreate, idem: Idempotency):
    """Take money for an open invoice at the desk (repeat the Idempotency-Key safely)."""
    def action():
        payment = desk.pay_invoice(session, actor=actor, invoice_id=invoice_id,
                                   amount=body.amount, method=body.method, desk=body.desk)
        invoice = session.get(Invoice, invoice_id)
        closed = session.scalar(select(DunningCase.closed_on).where(
            DunningCase.invoice_id == invoice_id)) is not None
        return InvoicePaymentRead(
            id=payment.id, invoice_id=invoice_id, amount=payment.amount, method=payment.method,
            occurred_on=payment.occurred_on, desk=payment.desk, staff_id=payment.staff_id,
            open_after=invoicing.open_amount(session, invoice), case_closed=closed)

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


def _case_read(case: DunningCase, number: str, payer: str) -> DunningCaseRead:
    return DunningCaseRead(
        id=case.id, invoice_id=case.invoice_id, invoice_number=number, payer_id=case.payer_id,
        payer_name=payer, member_id=case.member_id, opened_on=case.opened_on, amount=case.amount,
        retries=case.retries, reminders=case.reminders, fee_charged=case.fee_charged,
        next_step_on=case.next_step_on, blocks_entry_from=case.blocks_entry_from,
        closed_on=case.closed_on, outcome=case.outcome)


def _names(session, cases) -> dict[int, tuple[str, str]]:
    ids = [c.id for c in cases]
    if not ids:
        return {}
    rows = session.execute(select(DunningCase.id, Invoice.number, Payer.name)
                           .join(Invoice, Invoice.id == DunningCase.invoice_id)
                           .join(Payer, Payer.id == DunningCase.payer_id)
                           .where(DunningCase.id.in_(ids))).all()
    return {r.id: (r.number, r.name) for r in rows}


@router.get("/dunning", response_model=Page[DunningCaseRead])
def open_cases(session: SessionDep, actor: DeskActor, limit: Limit = 50, offset: Offset = 0):
    """The club's open dunning cases, oldest first (the desk reads them; managers act)."""
    cases, total = dunning.list_open_cases(session, club_id=actor.club_id, limit=limit,
                                           offset=offset)
    names = _names(session, cases)
    return Page[DunningCaseRead](items=[_case_read(c, *names[c.id]) for c in cases],
                                 total=total, limit=limit, offset=offset)


@router.post("/dunning/{case_id}/write-off", response_model=DunningCaseRead)
def write_off(session: SessionDep, actor: ManagerActor, case_id: IdPath("dunning case id")):
    """Give up on an unpaid case (managers and owners)."""
    case = dunning.write_off(session, actor=actor, case_id=case_id)
    return _case_read(case, *_names(session, [case])[case.id])


@router.get("/desk/closeouts/preview", response_model=CloseoutPreview)
def closeout_preview(session: SessionDep, actor: DeskActor, desk_name: DeskQ = "main",
                     business_day: date | None = None, opening_float: MoneyQ = Decimal(0),
                     counted_cash: MoneyQ | None = None):
    """The close-out figures as they stand (nothing stored); `closed` shows a close-out done."""
    return desk.closeout_preview(session, actor=actor, desk=desk_name, business_day=business_day,
                                 opening_float=opening_float, counted_cash=counted_cash)


@router.get("/desk/closeouts", response_model=list[CloseoutRead])
def list_closeouts(session: SessionDep, actor: DeskActor, desk_name: DeskQ | None = None,
                   limit: Limit = 50, offset: Offset = 0):
    """The club's close-outs, newest day first."""
    rows = desk.list_closeouts(session, actor=actor, desk=desk_name, limit=limit, offset=offset)
    return [desk.closeout_read(r) for r in rows]


@router.post("/desk/closeouts", response_model=CloseoutRead, status_code=201)
def close_desk(session: SessionDep, actor: DeskActor, body: CloseoutCreate):
    """Close a desk's business day (once: a second close-out answers 409 with the first)."""
    row = desk.close_desk(session, actor=actor, desk=body.desk, business_day=body.business_day,
                          opening_float=body.opening_float, counted_cash=body.counted_cash)
    return desk.closeout_read(row)
