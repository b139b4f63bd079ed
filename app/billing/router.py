from fastapi import APIRouter

from app.billing import service
from app.billing.schemas import BalanceRead, SaleCreate, SalePaymentCreate, SaleRead
from app.clubs.deps import DeskActor
from app.core.deps import SessionDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath, LargeOffset, Limit, Page

router = APIRouter(prefix="/api/v1", tags=["sales and payments"])


@router.post("/sales", response_model=SaleRead, status_code=201)
def create_sale(session: SessionDep, actor: DeskActor, body: SaleCreate, idem: Idempotency):
    """Sell lines of any registered kind (membership, product, pt_package …) in one receipt.

    Payments may be less than the total (the rest is the member's debt), never more.
    Send an `Idempotency-Key` so a retried request never sells twice.
    """

    def action() -> SaleRead:
        sale = service.create_sale(session, actor=actor, member_id=body.member_id,
                                   lines=[line.model_dump() for line in body.lines],
                                   payments=body.payments, note=body.note,
                                   to_account=body.to_account)
        return SaleRead.model_validate(service.get_sale(session, club_id=actor.club_id,
                                                        sale_id=sale.id))

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.get("/sales/{sale_id}", response_model=SaleRead)
def get_sale(session: SessionDep, actor: DeskActor, sale_id: IdPath("sale id")):
    return SaleRead.model_validate(service.get_sale(session, club_id=actor.club_id,
                                                    sale_id=sale_id))


@router.post("/sales/{sale_id}/payments", response_model=SaleRead, status_code=201)
def pay_sale(session: SessionDep, actor: DeskActor, sale_id: IdPath("sale id"),
             body: SalePaymentCreate, idem: Idempotency):
    """Pay (part of) what is still owed on a sale; answers the sale with its payments."""

    def action() -> SaleRead:
        service.add_payment(session, actor=actor, sale_id=sale_id, method=body.method,
                            amount=body.amount)
        return SaleRead.model_validate(service.get_sale(session, club_id=actor.club_id,
                                                        sale_id=sale_id))

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.get("/members/{member_id}/sales", response_model=Page[SaleRead])
def member_sales(session: SessionDep, actor: DeskActor, member_id: IdPath("member id"),
                 limit: Limit = 50, offset: LargeOffset = 0):
    items, total = service.member_sales(session, club_id=actor.club_id, member_id=member_id,
                                        limit=limit, offset=offset)
    return Page[SaleRead](items=[SaleRead.model_validate(i) for i in items], total=total,
                          limit=limit, offset=offset)


@router.get("/members/{member_id}/balance", response_model=BalanceRead)
def member_balance(session: SessionDep, actor: DeskActor, member_id: IdPath("member id")):
    """Totals over all of the member's sales, computed in SQL; debt = total_sales − paid."""
    b = service.member_balance(session, club_id=actor.club_id, member_id=member_id)
    return BalanceRead(member_id=b.member_id, total_sales=b.total_sales, paid=b.paid,
                       refunded=b.refunded, debt=b.debt)
