"""SEPA collection files: what is due on a date, the file prepared once, submitted, downloaded.

- **Due** are the planned SEPA collections of the club on the collection date that are in no file
  and whose invoice still has money open; each debits its planned amount, or what is open when
  that is less (an invoice paid at the desk, by transfer or a credit note meanwhile is not debited
  again). A debit whose mandate is revoked, expired (36 months unused) or missing is **blocked**
  and stays planned, listed with the reason; when the payer has signed a newer mandate that can
  be collected, the debit is collected on that one.
- **Prepare** (`prepare_batch`) first lets the date's planned debits follow their invoices
  (`invoicing.follow_open_amount`: cancelled when settled, lowered to the open amount), then locks
  the due collections (`SELECT ... FOR UPDATE` on PostgreSQL;
  SQLite has one writer at a time), builds the pain.008 file, validates it, and only then writes:
  the batch (with the XML, kept byte for byte), each collection `in_file` with its batch and
  sequence (one guarded `UPDATE ... WHERE status = 'planned'`), the mandates' first/last
  collection days, amendments reported. A second manager preparing the same date at the same time
  waits on the locks and then finds nothing new: they get the first one's batch. A charge is
  never in two files.
- The **message id** is `FC<club>-<yyyymmdd>-<first collection id>`: deterministic, unique.
- **Sequence**: FRST for a mandate never collected, RCUR after (FRST again when a first debit came
  back before any other was collected).
- **Submitted** (`mark_submitted`, idempotent): the collections are `submitted` and the money is
  recorded as paid (`sepa:<collection id>`): a debit counts as paid unless it comes back. Other
  planned collections of those invoices follow the ledger as after any payment.
"""
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.clubs.models import Club
from app.core import clock
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.dues import invoicing, sepa, terms
from app.dues.models import Collection, CollectionBatch, Invoice, Mandate, Payer
from app.dues.sepa_file import Creditor, Debit, build_file

CHUNK = 1000


@dataclass
class DueDebit:
    collection: Collection
    invoice_number: str
    payer_name: str
    mandate: Mandate | None
    amount: Decimal
    """What is debited: the planned amount, or what is open on the invoice when that is less."""
    sequence: str | None = None
    blocked: str | None = None


@dataclass
class Due:
    collection_date: date
    ready: list[DueDebit] = field(default_factory=list)
    blocked: list[DueDebit] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((d.amount for d in self.ready), terms.ZERO)


def creditor_for(session: Session, club_id: int) -> Creditor:
    """The club's creditor details, checked; Invalid (422) naming what is missing or wrong."""
    settings = terms.settings_for(session, club_id)
    missing = [label for label, value in (("creditor identifier", settings.creditor_id),
                                          ("creditor name", settings.creditor_name),
                                          ("creditor IBAN", settings.creditor_iban))
               if not value]
    if missing:
        raise Invalid("Set the club's SEPA " + ", ".join(missing) + " in the billing settings "
                      "before preparing a collection file", code="creditor_missing",
                      details={"missing": missing})
    creditor_id = sepa.check_creditor_id(settings.creditor_id)
    iban = sepa.normalise_iban(settings.creditor_iban)
    bic = sepa.resolve_bic(iban, settings.creditor_bic)
    club = session.get(Club, club_id)
    return Creditor(name=settings.creditor_name, iban=iban.compact, bic=bic,
                    creditor_id=creditor_id, currency=club.currency if club else "EUR")


def _collectable_mandates(session: Session, club_id: int, payer_ids: set[int]) -> dict:
    """Per payer, their mandates newest first (for a debit whose own mandate is unusable)."""
    found: dict[int, list[Mandate]] = {}
    ids = sorted(payer_ids)
    for start in range(0, len(ids), CHUNK):
        for mandate in session.scalars(select(Mandate).where(
                Mandate.club_id == club_id, Mandate.payer_id.in_(ids[start:start + CHUNK]),
                Mandate.revoked_on.is_(None)).order_by(Mandate.signed_on.desc(),
                                                       Mandate.id.desc())):
            found.setdefault(mandate.payer_id, []).append(mandate)
    return found


def _due_where(club_id: int, collection_date: date) -> list:
    return [Collection.club_id == club_id, Collection.method == "sepa",
            Collection.status == "planned", Collection.due_on == collection_date,
            Collection.batch_id.is_(None)]


def due(session: Session, *, club_id: int, collection_date: date, lock: bool = False) -> Due:
    """The SEPA debits due on the date in no file yet whose invoice has money open: ready (with
    their sequence and amount) and blocked."""
    open_cents = invoicing.open_cents_of(Collection.invoice_id)
    stmt = (select(Collection, Invoice.number, Payer.name, Mandate, open_cents.label("open"))
            .join(Invoice, Invoice.id == Collection.invoice_id)
            .join(Payer, Payer.id == Collection.payer_id)
            .outerjoin(Mandate, Mandate.id == Collection.mandate_id)
            .where(*_due_where(club_id, collection_date), open_cents > 0)
            .order_by(Collection.id))
    if lock:
        stmt = stmt.with_for_update(of=Collection)
    rows = [DueDebit(c, number, name, mandate, min(c.amount, terms.cents(Decimal(cents) / 100)))
            for c, number, name, mandate, cents in session.execute(stmt)]
    result = Due(collection_date)
    unusable = [d for d in rows if sepa.unusable_reason(d.mandate, collection_date)]
    others = _collectable_mandates(session, club_id, {d.collection.payer_id for d in unusable})
    first_use: dict[int, str] = {}
    for debit in rows:
        reason = sepa.unusable_reason(debit.mandate, collection_date)
        if reason:
            usable = next((m for m in others.get(debit.collection.payer_id, [])
                           if sepa.unusable_reason(m, collection_date) is None), None)
            if usable is None:
                debit.blocked = reason
                result.blocked.append(debit)
                continue
            debit.mandate = usable
        mandate = debit.mandate
        sequence = first_use.setdefault(mandate.id, "RCUR" if mandate.first_collected_on
                                        else "FRST")
        debit.sequence = sequence
        result.ready.append(debit)
    return result


def end_to_end_id(club_id: int, collection: Collection) -> str:
    return collection.end_to_end_id or f"FC{club_id}-{collection.id}"


def _debit(club_id: int, d: DueDebit) -> Debit:
    mandate = d.mandate
    original = mandate.previous_iban
    return Debit(end_to_end_id=end_to_end_id(club_id, d.collection), amount=d.amount,
                 sequence=d.sequence, mandate_reference=mandate.reference,
                 mandate_signed_on=mandate.signed_on, name=mandate.account_holder,
                 iban=mandate.iban, bic=mandate.bic,
                 description=f"Invoice {d.invoice_number}",
                 original_iban=original,
                 same_bank=bool(original) and sepa.same_bank(original, mandate.iban))


def _latest_batch(session: Session, club_id: int, collection_date: date) -> CollectionBatch | None:
    return session.scalars(select(CollectionBatch).where(
        CollectionBatch.club_id == club_id, CollectionBatch.collection_date == collection_date)
        .order_by(CollectionBatch.id.desc())).first()


def prepare_batch(session: Session, *, actor: Actor, collection_date: date) -> CollectionBatch:
    """The collection file for the date: a new one of what is due, or the last one when nothing new
    is due (a second manager at once gets the first one's file)."""
    club_id = actor.club_id
    creditor = creditor_for(session, club_id)
    # settled invoices are not debited again; part-paid ones only for what is open
    invoicing.follow_open_amount(session, club_id=club_id,
                                 where=_due_where(club_id, collection_date))
    found = due(session, club_id=club_id, collection_date=collection_date, lock=True)
    if not found.ready:
        existing = _latest_batch(session, club_id, collection_date)
        if existing is not None:
            return existing
        blocked = "; ".join(d.blocked for d in found.blocked[:3])
        raise Invalid(f"Nothing can be collected on {collection_date.isoformat()}"
                      + (f": {len(found.blocked)} debit(s) blocked — {blocked}" if blocked
                         else ": no planned SEPA debit is due that day"),
                      code="nothing_due", details={"blocked": len(found.blocked)})
    club = session.get(Club, club_id)
    if collection_date < clock.today(sepa_zone(club)):
        raise Invalid(f"The collection date {collection_date.isoformat()} is in the past: the "
                      "bank would refuse the file. Choose a day at least one bank business day "
                      "ahead", code="collection_date_past")
    created = clock.now().astimezone(sepa_zone(club)).replace(tzinfo=None)
    message_id = f"FC{club_id}-{collection_date:%Y%m%d}-{found.ready[0].collection.id}"
    debits = [_debit(club_id, d) for d in found.ready]
    xml = build_file(creditor=creditor, message_id=message_id, created=created,
                     collection_date=collection_date, debits=debits)
    batch = CollectionBatch(club_id=club_id, collection_date=collection_date,
                            message_id=message_id, count=len(debits),
                            total=sum((d.amount for d in debits), terms.ZERO),
                            xml=xml.decode("utf-8"), created_at=clock.now(),
                            created_by=actor.user_id)
    session.add(batch)
    session.flush()
    _claim(session, club_id, batch, found.ready, debits)
    _mark_mandates(session, found.ready, collection_date)
    return batch


def sepa_zone(club: Club | None) -> ZoneInfo:
    return ZoneInfo(club.timezone if club and club.timezone else "UTC")


def _claim(session: Session, club_id: int, batch: CollectionBatch, ready: list[DueDebit],
           debits: list[Debit]) -> None:
    ids = [d.collection.id for d in ready]
    claimed = 0
    for start in range(0, len(ids), CHUNK):
        claimed += session.execute(
            update(Collection).where(Collection.club_id == club_id,
                                     Collection.id.in_(ids[start:start + CHUNK]),
                                     Collection.status == "planned",
                                     Collection.batch_id.is_(None))
            .values(status="in_file", batch_id=batch.id)
            .execution_options(synchronize_session=False)).rowcount
    if claimed != len(ids):  # a concurrent writer took some (only without row locks)
        raise Conflict("Another collection file took some of these debits at the same time: "
                       "prepare again", code="collections_taken")
    session.execute(update(Collection), [
        {"id": d.collection.id, "sequence": debit.sequence, "end_to_end_id": debit.end_to_end_id,
         "mandate_id": d.mandate.id, "amount": debit.amount}
        for d, debit in zip(ready, debits, strict=True)])
    session.expire_all()


def _mark_mandates(session: Session, ready: list[DueDebit], collection_date: date) -> None:
    ids = sorted({d.mandate.id for d in ready})
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        session.execute(update(Mandate).where(Mandate.id.in_(chunk),
                                              Mandate.first_collected_on.is_(None))
                        .values(first_collected_on=collection_date)
                        .execution_options(synchronize_session=False))
        session.execute(update(Mandate).where(
            Mandate.id.in_(chunk),
            (Mandate.last_collected_on.is_(None)) | (Mandate.last_collected_on < collection_date))
            .values(last_collected_on=collection_date)
            .execution_options(synchronize_session=False))
        session.execute(update(Mandate).where(Mandate.id.in_(chunk),
                                              Mandate.previous_iban.is_not(None))
                        .values(previous_iban=None)
                        .execution_options(synchronize_session=False))


def get_batch(session: Session, *, club_id: int, batch_id: int) -> CollectionBatch:
    """One collection file of the club (404 for another club's)."""
    batch = session.get(CollectionBatch, batch_id)
    if batch is None or batch.club_id != club_id:
        raise NotFound("Collection file not found", code="batch_not_found")
    return batch


def batch_file(session: Session, *, club_id: int, batch_id: int) -> tuple[str, bytes]:
    """The file name and the stored pain.008 bytes (the same on every download)."""
    batch = get_batch(session, club_id=club_id, batch_id=batch_id)
    return f"{batch.message_id}.xml", batch.xml.encode("utf-8")


def list_batches(session: Session, *, club_id: int, limit: int,
                 offset: int) -> tuple[list[CollectionBatch], int]:
    """The club's collection files, newest first."""
    where = CollectionBatch.club_id == club_id
    total = session.scalar(select(func.count()).select_from(CollectionBatch).where(where)) or 0
    items = list(session.scalars(select(CollectionBatch).where(where)
                                 .order_by(CollectionBatch.collection_date.desc(),
                                           CollectionBatch.id.desc())
                                 .limit(limit).offset(offset)))
    return items, total


def mark_submitted(session: Session, *, actor: Actor, batch_id: int) -> CollectionBatch:
    """The file was uploaded to the bank: its debits are submitted and counted as paid
    (idempotent: a second call changes nothing)."""
    batch = get_batch(session, club_id=actor.club_id, batch_id=batch_id)
    rows = session.execute(
        update(Collection).where(Collection.batch_id == batch.id, Collection.status == "in_file")
        .values(status="submitted")
        .returning(Collection.id, Collection.invoice_id, Collection.amount)
        .execution_options(synchronize_session=False)).all()
    # RETURNING comes back in no defined order; the ledger records in collection order
    for collection_id, invoice_id, amount in sorted(rows):
        invoicing.record_payment(session, club_id=actor.club_id, invoice_id=invoice_id,
                                 amount=amount, method="sepa", kind="payment",
                                 occurred_on=batch.collection_date,
                                 event_key=f"sepa:{collection_id}", collection_id=collection_id,
                                 reference=batch.message_id, staff_id=actor.user_id,
                                 follow=False)
    invoicing.follow_open_amount(session, club_id=actor.club_id,
                                 invoice_ids=[invoice_id for _, invoice_id, _ in rows])
    if batch.submitted_at is None:
        batch.submitted_at = clock.now()
        batch.submitted_by = actor.user_id
    session.flush()
    return batch


def submitted_count(session: Session, batch_id: int) -> dict[str, int]:
    """How many of the file's debits are in each status."""
    return dict(session.execute(select(Collection.status, func.count()).where(
        Collection.batch_id == batch_id).group_by(Collection.status)).all())

