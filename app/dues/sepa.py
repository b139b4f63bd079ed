"""SEPA Direct Debit mandates (CORE): taken, amended, revoked, expired; the creditor identifier.

- A **mandate** is what a payer signed: the account (IBAN checked and normalised with
  `schwifty`; the BIC derived from the IBAN where the bank registry knows it), the signature
  date and a **reference** unique in the club (at most 35 characters of the SEPA identifier set
  `A-Z a-z 0-9 / - ? : ( ) . , ' +` and space, not starting or ending with `/`, no `//`;
  compared without regard to case). One is generated when none is given.
- **Amendment** (`change_iban`): the payer gives a new account; the reference stays, the old
  IBAN is kept in `previous_iban` and the next debit carries the amendment information
  (`AmdmntInd` true; the original IBAN when the bank is the same, `SMNDA` — same mandate, new
  debtor account — when it is another bank). Since the EPC SDD Core rulebook 9.0 (Nov 2016) the
  sequence type FRST is optional, also after an account change, so the sequence goes on: RCUR
  once the mandate was collected.
- **Expiry**: a mandate not used for 36 months (since its last collection, or its signature
  when it was never collected) expires; a debit on or after `expires_on` is refused with that
  reason, and the payer must sign a new mandate.
- The **creditor identifier** (CI) is checked with ISO 7064 MOD 97-10 over the national part,
  the country code and `00` (the creditor business code, positions 5-7, is not part of it).
"""
import re
from datetime import date
from html import escape

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clubs.models import Club
from app.core import clock
from app.core.actors import Actor
from app.core.db import club_row
from app.core.errors import Conflict, Invalid, NotFound
from app.dues import terms
from app.dues.models import Mandate, Payer
from app.memberships.rules import add_months

EXPIRY_MONTHS = 36
SEPA_ID = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]{1,35}$")
CI_SHAPE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{3}[A-Z0-9]{1,28}$")


# --- account and creditor checks ----------------------------------------------------------------

def normalise_iban(iban: str) -> IBAN:
    """The IBAN, checked (country, length, bank code, check digits) and compacted."""
    try:
        return IBAN(iban)
    except SchwiftyException as exc:
        raise Invalid(f"The IBAN {iban!r} is not valid: {exc}", code="invalid_iban",
                      details={"field": "iban"}) from exc


def check_bic(bic: str) -> BIC:
    """The BIC, checked (length, structure, country) and compacted."""
    try:
        return BIC(bic)
    except SchwiftyException as exc:
        raise Invalid(f"The BIC {bic!r} is not valid: {exc}", code="invalid_bic",
                      details={"field": "bic"}) from exc


def resolve_bic(iban: IBAN, bic: str | None) -> str | None:
    """The BIC given (checked), else the one the IBAN's bank code is registered with, else None."""
    if bic:
        checked = check_bic(bic)
        if checked.country_code != iban.country_code and iban.country_code not in (
                "MC", "SM", "VA", "GF", "GP", "MQ", "RE", "PM", "BL", "MF", "YT"):
            raise Invalid(f"The BIC {bic} belongs to a bank in {checked.country_code}, the IBAN "
                          f"to one in {iban.country_code}", code="bic_iban_mismatch",
                          details={"field": "bic"})
        return checked.compact
    try:
        derived = iban.bic
    except SchwiftyException:
        derived = None
    return derived.compact if derived is not None else None


def _mod97(text: str) -> int:
    digits = "".join(str(int(ch, 36)) for ch in text)
    return int(digits) % 97


def check_creditor_id(creditor_id: str) -> str:
    """The creditor identifier compacted and upper-cased; Invalid when its check digits fail."""
    ci = re.sub(r"\s+", "", creditor_id or "").upper()
    if not CI_SHAPE.match(ci) or len(ci) > 35:
        raise Invalid(f"{creditor_id!r} is not a SEPA creditor identifier: it is the country "
                      "code, two check digits, a three-character business code (often ZZZ) "
                      "and the national identifier, e.g. DE98ZZZ09999999999",
                      code="invalid_creditor_id", details={"field": "creditor_id"})
    if _mod97(ci[7:] + ci[:4]) != 1:  # national part + country + check digits
        raise Invalid(f"The creditor identifier {ci} has wrong check digits (ISO 7064 "
                      "MOD 97-10): check it against the letter from your bank or the "
                      "Bundesbank", code="invalid_creditor_id", details={"field": "creditor_id"})
    return ci


def check_reference(reference: str) -> str:
    """A mandate reference in the SEPA identifier character set, at most 35 characters."""
    ref = (reference or "").strip()
    if not SEPA_ID.match(ref) or ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise Invalid("A mandate reference is 1-35 characters of A-Z a-z 0-9 / - ? : ( ) . , "
                      "' + and space, not starting or ending with '/' and without '//'",
                      code="invalid_mandate_reference", details={"field": "reference"})
    return ref


# --- expiry -------------------------------------------------------------------------------------

def expires_on(mandate: Mandate) -> date:
    """The first day the mandate can no longer be collected (36 months unused)."""
    return add_months(mandate.last_collected_on or mandate.signed_on, EXPIRY_MONTHS)


def unusable_reason(mandate: Mandate | None, on: date) -> str | None:
    """Why a debit on `on` cannot be collected on this mandate; None when it can."""
    if mandate is None:
        return "The payer has no SEPA mandate for this debit: take one at the desk"
    if mandate.revoked_on is not None and mandate.revoked_on <= on:
        return (f"Mandate {mandate.reference} was revoked on {mandate.revoked_on.isoformat()}: "
                "the payer must sign a new mandate")
    if mandate.signed_on > on:
        return (f"Mandate {mandate.reference} is signed on {mandate.signed_on.isoformat()}, "
                "after the collection date")
    if on >= expires_on(mandate):
        last = mandate.last_collected_on
        since = (f"last collected on {last.isoformat()}" if last
                 else f"signed on {mandate.signed_on.isoformat()} and never collected")
        return (f"Mandate {mandate.reference} expired on {expires_on(mandate).isoformat()}: "
                f"it was not used for 36 months ({since}); the payer must sign a new mandate")
    return None


# --- mandates -----------------------------------------------------------------------------------

def _payer(session: Session, club_id: int, payer_id: int, for_update: bool = False) -> Payer:
    return club_row(session, Payer, club_id=club_id, row_id=payer_id, for_update=for_update,
                    missing=NotFound("Payer not found", code="payer_not_found"))


def get_mandate(session: Session, *, club_id: int, mandate_id: int) -> Mandate:
    """One mandate of the club (404 for another club's)."""
    mandate = session.get(Mandate, mandate_id)
    if mandate is None or mandate.club_id != club_id:
        raise NotFound("Mandate not found", code="mandate_not_found")
    return mandate


def _reference_taken(session: Session, club_id: int, reference: str) -> bool:
    return session.scalar(select(Mandate.id).where(
        Mandate.club_id == club_id,
        func.upper(Mandate.reference) == reference.upper())) is not None


def _generated_reference(session: Session, club_id: int, payer_id: int) -> str:
    count = session.scalar(select(func.count()).select_from(Mandate).where(
        Mandate.club_id == club_id, Mandate.payer_id == payer_id)) or 0
    for n in range(count + 1, count + 1000):
        reference = f"FC-{payer_id}-{n}"
        if not _reference_taken(session, club_id, reference):
            return reference
    raise Conflict("No free mandate reference: give one", code="mandate_reference_taken")


def _account_holder(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 70:
        raise Invalid("The account holder's name is required, at most 70 characters",
                      code="invalid_account_holder", details={"field": "account_holder"})
    return name


def create_mandate(session: Session, *, actor: Actor, payer_id: int, iban: str,
                   bic: str | None = None, account_holder: str, signed_on: date,
                   reference: str | None = None) -> Mandate:
    """Record a signed SEPA mandate for a payer of the actor's club. The payer is locked: two
    desks at once get the payer's next generated references one after the other."""
    payer = _payer(session, actor.club_id, payer_id, for_update=True)
    club = session.get(Club, actor.club_id)
    if signed_on > clock.today(club.timezone or "UTC"):
        raise Invalid("A mandate cannot be signed in the future: give the day the payer "
                      "signed it", code="invalid_signature_date",
                      details={"field": "signed_on"})
    checked = normalise_iban(iban)
    bic_value = resolve_bic(checked, bic)
    holder = _account_holder(account_holder)
    if reference:
        reference = check_reference(reference)
        if _reference_taken(session, actor.club_id, reference):
            raise Conflict(f"The mandate reference {reference} is already used in this club",
                           code="mandate_reference_taken", details={"field": "reference"})
    else:
        reference = _generated_reference(session, actor.club_id, payer.id)
    mandate = Mandate(club_id=actor.club_id, payer_id=payer.id, reference=reference,
                      account_holder=holder, iban=checked.compact, bic=bic_value,
                      signed_on=signed_on)
    try:
        with session.begin_nested():
            session.add(mandate)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The mandate reference {reference} is already used in this club",
                       code="mandate_reference_taken", details={"field": "reference"}) from exc
    return mandate


def change_iban(session: Session, *, actor: Actor, mandate_id: int, iban: str,
                bic: str | None = None, account_holder: str | None = None) -> Mandate:
    """Amend a mandate to a new account: same reference; the next debit reports the change."""
    mandate = get_mandate(session, club_id=actor.club_id, mandate_id=mandate_id)
    if mandate.revoked_on is not None:
        raise Conflict(f"Mandate {mandate.reference} is revoked: take a new mandate",
                       code="mandate_revoked")
    checked = normalise_iban(iban)
    if checked.compact == mandate.iban:
        if account_holder:
            mandate.account_holder = _account_holder(account_holder)
            session.flush()
        return mandate
    bic_value = resolve_bic(checked, bic)
    if mandate.previous_iban is None:  # an amendment not yet reported keeps the first original
        mandate.previous_iban = mandate.iban
    if mandate.previous_iban == checked.compact:  # back to the account the bank knows
        mandate.previous_iban = None
    mandate.iban = checked.compact
    mandate.bic = bic_value
    if account_holder:
        mandate.account_holder = _account_holder(account_holder)
    session.flush()
    return mandate


def revoke_mandate(session: Session, *, actor: Actor, mandate_id: int,
                   revoked_on: date | None = None) -> Mandate:
    """Revoke a mandate (idempotent: the first revocation date stays), from today or a day
    since its signature."""
    mandate = get_mandate(session, club_id=actor.club_id, mandate_id=mandate_id)
    if mandate.revoked_on is None:
        club = session.get(Club, actor.club_id)
        today = clock.today(club.timezone or "UTC")
        day = revoked_on or today
        if not mandate.signed_on <= day <= today:
            raise Invalid(f"A mandate is revoked from a day between its signature "
                          f"({mandate.signed_on.isoformat()}) and today, not from "
                          f"{day.isoformat()}", code="invalid_revocation_date",
                          details={"field": "revoked_on"})
        mandate.revoked_on = day
        session.flush()
    return mandate


def same_bank(old_iban: str, new_iban: str) -> bool:
    """Whether two IBANs are held at the same bank (country and bank code)."""
    try:
        old, new = IBAN(old_iban), IBAN(new_iban)
    except SchwiftyException:
        return False
    return (old.country_code, old.bank_code) == (new.country_code, new.bank_code)


# --- the printable mandate form -----------------------------------------------------------------

WORDING_EN = (
    "By signing this mandate form, you authorise (A) {creditor} to send instructions to your "
    "bank to debit your account and (B) your bank to debit your account in accordance with the "
    "instructions from {creditor}. As part of your rights, you are entitled to a refund from "
    "your bank under the terms and conditions of your agreement with your bank. A refund must "
    "be claimed within 8 weeks starting from the date on which your account was debited. Your "
    "rights are explained in a statement that you can obtain from your bank.")
WORDING_DE = (
    "Ich ermächtige {creditor}, Zahlungen von meinem Konto mittels Lastschrift einzuziehen. "
    "Zugleich weise ich mein Kreditinstitut an, die von {creditor} auf mein Konto gezogenen "
    "Lastschriften einzulösen. Hinweis: Ich kann innerhalb von acht Wochen, beginnend mit dem "
    "Belastungsdatum, die Erstattung des belasteten Betrages verlangen. Es gelten dabei die mit "
    "meinem Kreditinstitut vereinbarten Bedingungen.")

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>SEPA Direct Debit Mandate {reference}</title>
<style>
body {{ font-family: sans-serif; max-width: 46rem; margin: 2rem auto; color: #111; }}
h1 {{ font-size: 1.3rem; margin-bottom: 0; }} h2 {{ font-size: 1rem; margin-top: 0; }}
table {{ width: 100%; border-collapse: collapse; margin: 1rem 0; }}
th {{ text-align: left; width: 40%; font-weight: normal; color: #444; }}
td, th {{ border-bottom: 1px solid #999; padding: .45rem .3rem; }}
p.wording {{ font-size: .9rem; }} .sign td {{ height: 2.5rem; }}
@media print {{ body {{ margin: 0; }} }}
</style></head><body>
<h1>SEPA Direct Debit Mandate / SEPA-Lastschriftmandat</h1>
<h2>Recurrent payment / Wiederkehrende Zahlung</h2>
<table>
<tr><th>Creditor / Zahlungsempfänger</th><td>{creditor}</td></tr>
<tr><th>Creditor address / Anschrift</th><td>{creditor_address}</td></tr>
<tr><th>Creditor identifier / Gläubiger-Identifikationsnummer</th><td>{creditor_id}</td></tr>
<tr><th>Mandate reference / Mandatsreferenz</th><td>{reference}</td></tr>
</table>
<p class="wording" lang="en">{wording_en}</p>
<p class="wording" lang="de">{wording_de}</p>
<table>
<tr><th>Debtor name / Kontoinhaber</th><td>{holder}</td></tr>
<tr><th>Debtor address / Anschrift</th><td>{address}</td></tr>
<tr><th>IBAN</th><td>{iban}</td></tr>
<tr><th>BIC</th><td>{bic}</td></tr>
</table>
<table class="sign">
<tr><th>Place and date / Ort, Datum</th><td>{signed_on}</td></tr>
<tr><th>Signature(s) / Unterschrift(en)</th><td></td></tr>
</table>
</body></html>
"""


def mandate_form(session: Session, *, actor: Actor, mandate_id: int) -> str:
    """The mandate as a printable HTML page (English and German) for the payer to sign."""
    mandate = get_mandate(session, club_id=actor.club_id, mandate_id=mandate_id)
    payer = session.get(Payer, mandate.payer_id)
    settings = terms.settings_for(session, actor.club_id)
    club = session.get(Club, actor.club_id)
    creditor = settings.creditor_name or settings.legal_name or (club.name if club else "")
    if not settings.creditor_id:
        raise Invalid("Set the club's SEPA creditor identifier in the billing settings before "
                      "printing mandates", code="creditor_id_missing")
    iban = IBAN(mandate.iban, validate_bban=False).formatted
    return _FORM.format(
        reference=escape(mandate.reference), creditor=escape(creditor),
        creditor_address=escape(settings.legal_address or ""),
        creditor_id=escape(settings.creditor_id),
        wording_en=escape(WORDING_EN.format(creditor=creditor)),
        wording_de=escape(WORDING_DE.format(creditor=creditor)),
        holder=escape(mandate.account_holder), address=escape((payer.address if payer else "")
                                                              or ""),
        iban=escape(iban), bic=escape(mandate.bic or ""),
        signed_on=escape(mandate.signed_on.isoformat()))


def payer_mandates(session: Session, *, club_id: int, payer_id: int) -> list[Mandate]:
    """The payer's mandates in this club, newest first (revoked ones too, for history)."""
    payer = _payer(session, club_id, payer_id)
    return list(session.scalars(select(Mandate).where(
        Mandate.club_id == club_id, Mandate.payer_id == payer.id)
        .order_by(Mandate.signed_on.desc(), Mandate.id.desc())))
