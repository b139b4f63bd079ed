"""Payers, contracts (read, cancel, payment method), the member's dues panel, dues settings."""
from fastapi import APIRouter, Query, Response

from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath, LargeOffset, Limit, Page
from app.dues import club_settings, contracts, panel, payers
from app.dues.contracts_schemas import (
    ContractCancel,
    ContractPayment,
    ContractRead,
    DuesPanel,
    DuesSettingsRead,
    DuesSettingsUpdate,
    PayerCreate,
    PayerRead,
    PayerUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["contracts and payers"])


# ----------------------------------------------------------------------------- payers

@router.post("/payers", response_model=PayerRead, status_code=201)
def create_payer(session: SessionDep, actor: DeskActor, body: PayerCreate):
    """A person who pays for memberships: a member (`member_id`) or not (a parent, a partner)."""
    return payers.create_payer(session, club_id=actor.club_id, data=body)


@router.get("/payers", response_model=Page[PayerRead])
def list_payers(session: SessionDep, actor: DeskActor,
                q: str | None = Query(None, max_length=100, description="name starts with"),
                member_id: int | None = Query(None, ge=1), limit: Limit = 50,
                offset: LargeOffset = 0):
    items, total = payers.list_payers(session, club_id=actor.club_id, q=q, member_id=member_id,
                                      limit=limit, offset=offset)
    return Page[PayerRead](items=[PayerRead.model_validate(p) for p in items], total=total,
                           limit=limit, offset=offset)


@router.get("/payers/{payer_id}", response_model=PayerRead)
def get_payer(session: SessionDep, actor: DeskActor, payer_id: IdPath("payer id")):
    return payers.get_payer(session, club_id=actor.club_id, payer_id=payer_id)


@router.patch("/payers/{payer_id}", response_model=PayerRead)
def update_payer(session: SessionDep, actor: DeskActor, payer_id: IdPath("payer id"),
                 body: PayerUpdate):
    return payers.update_payer(session, club_id=actor.club_id, payer_id=payer_id,
                               changes=body.model_dump(exclude_unset=True))


@router.delete("/payers/{payer_id}", status_code=204)
def delete_payer(session: SessionDep, actor: DeskActor, payer_id: IdPath("payer id")):
    """Remove a payer who pays for no contract and was never invoiced (else 409)."""
    payers.delete_payer(session, club_id=actor.club_id, payer_id=payer_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- contracts

@router.get("/contracts/{contract_id}", response_model=ContractRead)
def get_contract(session: SessionDep, actor: DeskActor, contract_id: IdPath("contract id")):
    return contracts.get_contract(session, club_id=actor.club_id, contract_id=contract_id)


@router.post("/contracts/{contract_id}/cancel", response_model=ContractRead)
def cancel_contract(session: SessionDep, actor: DeskActor, contract_id: IdPath("contract id"),
                    body: ContractCancel):
    """Record a cancellation: the end date follows from the notice period and the minimum term;
    the payer (and the member) get a written confirmation. A second one answers 409."""
    return contracts.cancel_contract(session, actor=actor, contract_id=contract_id,
                                     received_on=body.received_on, channel=body.channel)


@router.post("/contracts/{contract_id}/withdraw-cancellation", response_model=ContractRead)
def withdraw_cancellation(session: SessionDep, actor: DeskActor,
                          contract_id: IdPath("contract id")):
    """Take a cancellation back before the contract ends."""
    return contracts.withdraw_cancellation(session, actor=actor, contract_id=contract_id)


@router.patch("/contracts/{contract_id}/payment", response_model=ContractRead)
def change_payment(session: SessionDep, actor: DeskActor, contract_id: IdPath("contract id"),
                   body: ContractPayment):
    """Pay by SEPA (with a mandate of the payer), by a stored card of the payer, or at the desk."""
    return contracts.change_payment(session, actor=actor, contract_id=contract_id,
                                    method=body.method, mandate_id=body.mandate_id,
                                    card_id=body.card_id)


@router.get("/members/{member_id}/dues", response_model=DuesPanel)
def member_dues(session: SessionDep, actor: DeskActor, member_id: IdPath("member id")):
    """The member card's payment panel: who pays and how, the next charge, open invoices."""
    found = panel.member_dues(session, club_id=actor.club_id, member_id=member_id)
    return DuesPanel.model_validate({
        "member_id": found.member_id, "open_invoices": found.open_invoices,
        "invoiced": found.invoiced, "paid": found.paid, "open": found.open,
        "contracts": [{"contract": v.contract, "payer": v.payer, "mandate": v.mandate,
                       "card": v.card, "next_charge_on": v.next_charge_on,
                       "next_charge_amount": v.next_charge_amount} for v in found.contracts]})


# ----------------------------------------------------------------------------- settings

@router.get("/dues/settings", response_model=DuesSettingsRead)
def read_settings(session: SessionDep, actor: ManagerActor):
    """The club's billing set-up (managers and owners); the Stripe keys only as set or not."""
    return club_settings.read_settings(session, club_id=actor.club_id)


@router.patch("/dues/settings", response_model=DuesSettingsRead)
def update_settings(session: SessionDep, actor: ManagerActor, body: DuesSettingsUpdate):
    return club_settings.update_settings(session, club_id=actor.club_id,
                                         changes=body.model_dump(exclude_unset=True))
