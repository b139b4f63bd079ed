"""CSV exports of a club's members and leads, in the columns the member import reads back.

An export imported into another club (or the same one after a fix in a spreadsheet) recreates
the members: the profile columns carry the import's field names, custom fields are
`custom.<key>`, and columns only an export has (`fitclub_id`, the membership, lead pipeline
details) are read past by the import. Cells a spreadsheet would run as a formula (= + - @ …)
are written with a leading ' (the import takes it off again, so "+4930…" survives a round trip).

Members are read in id order, `BATCH` at a time (one query each for cards, custom values and
membership summaries per batch), and written to a spooled temporary file that the response
streams — memory stays bounded and the database transaction short.
"""
import tempfile
from collections.abc import Iterator
from datetime import date
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import StaffUser
from app.core import csvout
from app.crm.models import Lead
from app.customfields import service as custom_fields
from app.members.models import Card, Member
from app.memberships import rules

BATCH = 1000
SPOOL_BYTES = 4 << 20

PROFILE = ("first_name", "last_name", "email", "phone", "birth_date", "gender", "card",
           "external_id", "source", "email_consent", "sms_consent", "preferred_channel")
MEMBERSHIP = ("membership_plan", "membership_status", "membership_start", "membership_end")
LEAD = ("stage", "lead_source", "source_detail", "utm_source", "utm_medium", "utm_campaign",
        "assignee", "trial_date", "lost_reason", "first_contact_at", "won_at", "lost_at")


def _members_in_batches(session: Session, club_id: int, *extra_where) -> Iterator[list[Member]]:
    last_id = 0
    while True:
        batch = list(session.scalars(
            select(Member).where(Member.club_id == club_id, Member.erased_at.is_(None),
                                 Member.id > last_id, *extra_where)
            .order_by(Member.id).limit(BATCH)))
        if not batch:
            return
        yield batch
        last_id = batch[-1].id


def _cards(session: Session, club_id: int, member_ids: list[int]) -> dict[int, str]:
    """Each member's newest active card."""
    cards: dict[int, str] = {}
    for member_id, code in session.execute(
            select(Card.member_id, Card.code)
            .where(Card.club_id == club_id, Card.member_id.in_(member_ids),
                   Card.status == "active").order_by(Card.id)):
        cards[member_id] = code
    return cards


def _profile(member: Member, card: str | None) -> list[Any]:
    return [member.first_name, member.last_name, member.email, member.phone, member.birth_date,
            member.gender, card, member.external_ref, member.source, member.email_consent,
            member.sms_consent, member.preferred_channel]


def member_rows(session: Session, *, club_id: int, as_of: date | None = None
                ) -> Iterator[list[Any]]:
    """The header, then one row per member (erased people left out), in id order."""
    club = clubs_service.get_club(session, club_id)
    as_of = as_of or clubs_service.club_today(club)
    fields = custom_fields.definitions(session, club_id=club_id)
    yield ["fitclub_id", *PROFILE, *(f"custom.{f.key}" for f in fields), *MEMBERSHIP,
           "created_at"]
    for batch in _members_in_batches(session, club_id):
        ids = [m.id for m in batch]
        cards = _cards(session, club_id, ids)
        values = custom_fields.values_for(session, club_id=club_id, member_ids=ids)
        summaries = rules.summaries(session, ids, as_of)
        for member in batch:
            summary = summaries[member.id]
            yield [member.id, *_profile(member, cards.get(member.id)),
                   *(custom_fields.format_text(f, values[member.id].get(f.key)) for f in fields),
                   summary.plan_name, summary.status, summary.start_date, summary.end_date,
                   member.created_at]


def lead_rows(session: Session, *, club_id: int) -> Iterator[list[Any]]:
    """The header, then one row per lead with the person's profile columns, in member order."""
    clubs_service.get_club(session, club_id)
    yield ["fitclub_id", *PROFILE, *LEAD, "created_at"]
    has_lead = select(Lead.id).where(Lead.member_id == Member.id).exists()
    for batch in _members_in_batches(session, club_id, has_lead):
        ids = [m.id for m in batch]
        cards = _cards(session, club_id, ids)
        leads = {lead.member_id: (lead, email) for lead, email in session.execute(
            select(Lead, StaffUser.email).outerjoin(StaffUser,
                                                    StaffUser.id == Lead.assignee_user_id)
            .where(Lead.club_id == club_id, Lead.member_id.in_(ids)))}
        for member in batch:
            lead, assignee = leads[member.id]
            yield [member.id, *_profile(member, cards.get(member.id)), lead.stage, lead.source,
                   lead.source_detail, lead.utm_source, lead.utm_medium, lead.utm_campaign,
                   assignee, lead.trial_date, lead.lost_reason, lead.first_contact_at,
                   lead.won_at, lead.lost_at, lead.created_at]


def write_csv(rows: Iterator[list[Any]]) -> tuple[IO[bytes], int]:
    """The rows as UTF-8 CSV (with a BOM, so Excel reads the umlauts) in a spooled temporary file,
    rewound; and the number of data rows."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")  # noqa: SIM115 - see chunks
    writer = csvout.writer(_TextSink(out), lineterminator="\r\n")
    out.write("\ufeff".encode())
    count = -1
    try:
        for row in rows:
            writer.writerow(row)
            count += 1
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out, max(count, 0)


class _TextSink:
    """What csv.writer needs (`write`), encoding into a binary file."""

    def __init__(self, out: IO[bytes]):
        self.out = out

    def write(self, text: str) -> int:
        return self.out.write(text.encode("utf-8"))


def chunks(out: IO[bytes], size: int = 64 << 10) -> Iterator[bytes]:
    """A rewound file in pieces, closed at the end (the response body of an export)."""
    try:
        while piece := out.read(size):
            yield piece
    finally:
        out.close()
