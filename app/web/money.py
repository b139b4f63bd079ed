"""The money pages, for owners and managers (issue 20): the club's billing settings, recurring
plan terms, the SEPA collection page (what is due → prepare the pain.008 file → download → mark
submitted), the bank returns import with a dry run, and the owner's money figures with their
charts, CSV downloads and the month's accounting export.

Thin over `app.dues.club_settings`, `app.memberships.service`, `app.dues.sepa_batches`,
`app.dues.sepa_returns`, `app.analytics.money_figures` and `app.analytics.money_export`
(docs/billing.md).
A returns file is kept server-side for an hour under a random token (`app.imports.storage`), so
the dry run and the import read the same bytes.
"""
import re
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analytics import money_export
from app.analytics.money_figures import BY_NAME, FIGURES
from app.clubs import service as clubs_service
from app.core.actors import Actor
from app.core.bodylimit import SEPA_RETURNS_FILE
from app.core.errors import DomainError, Invalid, NotFound
from app.core.schemas import IdPath
from app.dues import club_settings, sepa_batches, sepa_returns
from app.dues.contracts_schemas import DuesSettingsUpdate
from app.imports import storage as import_storage
from app.memberships import service as memberships_service
from app.memberships.schemas import PlanCreate, PlanUpdate
from app.web import charts
from app.web.auth import PageSession, back_to
from app.web.kit import ManagerPage, Tick, build, clean, done, page_router, render, ticked
from app.web.owner import HALF, WIDE, resolve_period

router = page_router()

SETTINGS_PAGE = "/manage/billing"
PLANS_PAGE = "/manage/billing/plans"
COLLECTIONS_PAGE = "/manage/billing/collections"
RETURNS_PAGE = "/manage/billing/returns"
MONEY_PAGE = "/owner/money"

PlanId = IdPath("plan id")
BatchId = IdPath("collection file id")
DayQ = Annotated[date | None, Query(alias="date", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
FromQ = Annotated[date | None, Query(alias="from", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
ToQ = Annotated[date | None, Query(alias="to", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
MonthQ = Annotated[str | None, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$")]
Field = Annotated[str | None, Form(max_length=1000)]

UPLOAD_TTL = timedelta(hours=1)
MAX_RETURNS_FILE = SEPA_RETURNS_FILE
TOKEN = r"^[A-Za-z0-9_-]{20,64}$"
Token = Annotated[str, PathParam(pattern=TOKEN, max_length=64)]
RETURNS_BUNDLE = "sepa-returns:"


# --- billing settings ---------------------------------------------------------------------------

TEXT_SETTINGS = ("legal_name", "legal_address", "vat_id", "creditor_id", "creditor_name",
                 "creditor_iban", "creditor_bic")
"""Text settings: an empty field clears them."""
NUMBER_SETTINGS = ("default_tax_rate", "invoice_number_format", "prenotice_days", "return_fee",
                   "household_discount", "card_retry_days", "sepa_retry_days", "max_retries",
                   "reminder_days", "dunning_fee", "dunning_fee_after_days")
"""Settings that cannot be empty: an empty field leaves them as they are."""
STRIPE_SECRETS = ("stripe_secret_key", "stripe_webhook_secret")
"""Write-only: the page says whether each is set, never what it is."""
SETTING_LABELS = {
    "legal_name": "Legal name", "legal_address": "Legal address", "vat_id": "VAT id",
    "creditor_id": "Creditor identifier", "creditor_name": "Creditor name",
    "creditor_iban": "Creditor IBAN", "creditor_bic": "Creditor BIC",
    "default_tax_rate": "VAT rate", "invoice_number_format": "Invoice number format",
    "prenotice_days": "Pre-notification days", "return_fee": "Return fee",
    "household_discount": "Household discount", "card_retry_days": "Card retry after days",
    "sepa_retry_days": "SEPA retry after days", "max_retries": "Retries at most",
    "reminder_days": "Reminder every days", "dunning_fee": "Dunning fee",
    "dunning_fee_after_days": "Fee after days", "block_entry_after_days": "Refuse entry after days",
    "stripe_secret_key": "Stripe secret key", "stripe_webhook_secret": "Stripe webhook secret",
}


def _plain(exc: Invalid, labels: dict[str, str]) -> Invalid:
    """The validation message with the form's labels instead of field names."""
    message = exc.message
    for name, label in labels.items():
        message = message.replace(f"{name.replace('_', ' ')}:", f"{label}:")
        if "_" in name:
            message = re.sub(rf"\b{name}\b", label, message)
    return Invalid(message, code=exc.code)


def _number(value: str | None) -> str | None:
    text = clean(value)
    return text.replace(",", ".") if text else None


@router.get(SETTINGS_PAGE)
def settings_page(request: Request, session: PageSession, actor: ManagerPage):
    return render(request, "money_settings.html", {
        "title": "Billing settings", "club_id": actor.club_id,
        "s": club_settings.read_settings(session, club_id=actor.club_id)})


@router.post(SETTINGS_PAGE)
def save_settings(request: Request, session: PageSession, actor: ManagerPage,
                  legal_name: Field = None, legal_address: Field = None, vat_id: Field = None,
                  creditor_id: Field = None, creditor_name: Field = None,
                  creditor_iban: Field = None, creditor_bic: Field = None,
                  default_tax_rate: Field = None, invoice_number_format: Field = None,
                  prenotice_days: Field = None, return_fee: Field = None,
                  household_discount: Field = None, card_retry_days: Field = None,
                  sepa_retry_days: Field = None, max_retries: Field = None,
                  reminder_days: Field = None, dunning_fee: Field = None,
                  dunning_fee_after_days: Field = None, block_entry_after_days: Field = None,
                  vat_registered: Tick = None, freeze_moves_billing: Tick = None,
                  stripe_secret_key: Field = None, stripe_webhook_secret: Field = None,
                  stripe_remove: Tick = None):
    back_to(request, None, SETTINGS_PAGE)
    given = locals()
    data: dict[str, Any] = {name: clean(given[name]) for name in TEXT_SETTINGS}
    for name in STRIPE_SECRETS:  # never shown again: empty leaves it, "remove" clears both
        if clean(given[name]):
            data[name] = clean(given[name])
        elif ticked(stripe_remove):
            data[name] = None
    for name in NUMBER_SETTINGS:
        value = (clean(given[name]) if name == "invoice_number_format"
                 else _number(given[name]))
        if value is not None:  # empty: left as it is
            data[name] = value
    data["block_entry_after_days"] = _number(block_entry_after_days)  # empty: never
    data["vat_registered"] = ticked(vat_registered)
    data["freeze_moves_billing"] = ticked(freeze_moves_billing)
    try:
        changes = build(DuesSettingsUpdate, **data).model_dump(exclude_unset=True)
    except Invalid as exc:
        raise _plain(exc, SETTING_LABELS) from None
    club_settings.update_settings(session, club_id=actor.club_id, changes=changes)
    return done(request, SETTINGS_PAGE, "The billing settings are saved.", "ok", "Saved")


# --- recurring plans ----------------------------------------------------------------------------

PLAN_LABELS = {
    "billing_period": "Billing period", "minimum_months": "Minimum term (months)",
    "notice_value": "Notice", "notice_unit": "Notice unit", "renewal_months": "Renews for (months)",
    "renewal": "After the minimum term", "joining_fee": "Joining fee", "tax_rate": "VAT rate",
    "next_price_from": "New price from", "next_price": "New price", "price": "Price",
    "name": "Name", "freeze_days": "Freeze days",
}
PERIODS = [("month", "Monthly"), ("4weeks", "Every 4 weeks"), ("year", "Yearly")]
UNITS = [("days", "days"), ("weeks", "weeks"), ("months", "months")]
RENEWALS = [("monthly", "runs on monthly (one period's notice)"),
            ("term", "renews for a further term")]


def _plan_fields(name, price, billing_period, minimum_months, notice_value, notice_unit,
                 renewal, renewal_months, joining_fee, tax_rate, next_price, next_price_from,
                 freeze_days) -> dict:
    data = {"name": clean(name), "price": _number(price), "billing": "recurring",
            "billing_period": clean(billing_period),
            "minimum_months": _number(minimum_months) or "0",
            "notice_value": _number(notice_value) or "1", "notice_unit": clean(notice_unit),
            "renewal": clean(renewal) or "monthly",
            "renewal_months": (_number(renewal_months) or "1") if clean(renewal) == "term"
            else "1",
            "joining_fee": _number(joining_fee) or "0", "tax_rate": _number(tax_rate),
            "next_price": _number(next_price), "next_price_from": clean(next_price_from),
            "freeze_days": _number(freeze_days) or "0"}
    return data


def _plan_form(session: Session, actor: Actor) -> dict:
    plans, _ = memberships_service.list_plans(session, club_id=actor.club_id, limit=500)
    return {"plans": [p for p in plans if p.billing == "recurring"], "periods": PERIODS,
            "units": UNITS, "renewals": RENEWALS, "period_titles": dict(PERIODS)}


def _recurring_plan(session: Session, actor: Actor, plan_id: int):
    plan = memberships_service.get_plan(session, club_id=actor.club_id, plan_id=plan_id)
    if plan.billing != "recurring":
        raise NotFound(f"{plan.name} is a prepaid plan: this page sets up recurring plans",
                       code="plan_not_recurring")
    return plan


@router.get(PLANS_PAGE)
def plans_page(request: Request, session: PageSession, actor: ManagerPage):
    return render(request, "money_plans.html", {"title": "Recurring plans", "edit": None,
                                                **_plan_form(session, actor)})


@router.get(PLANS_PAGE + "/{plan_id}")
def plan_page(request: Request, session: PageSession, actor: ManagerPage, plan_id: PlanId):
    plan = _recurring_plan(session, actor, plan_id)
    return render(request, "money_plans.html", {"title": f"Edit {plan.name}", "edit": plan,
                                                **_plan_form(session, actor)})


@router.post(PLANS_PAGE)
def create_plan(request: Request, session: PageSession, actor: ManagerPage, name: Field = None,
                price: Field = None, billing_period: Field = None, minimum_months: Field = None,
                notice_value: Field = None, notice_unit: Field = None, renewal: Field = None,
                renewal_months: Field = None, joining_fee: Field = None, tax_rate: Field = None,
                next_price: Field = None, next_price_from: Field = None,
                freeze_days: Field = None):
    back_to(request, None, PLANS_PAGE)
    data = _plan_fields(name, price, billing_period, minimum_months, notice_value, notice_unit,
                        renewal, renewal_months, joining_fee, tax_rate, next_price,
                        next_price_from, freeze_days)
    try:
        body = build(PlanCreate, **data)
    except Invalid as exc:
        raise _plain(exc, PLAN_LABELS) from None
    plan = memberships_service.create_plan(session, actor=actor, data=body)
    return done(request, PLANS_PAGE, f"{plan.name} is set up as a recurring plan.", "ok",
                "Plan created")


@router.post(PLANS_PAGE + "/{plan_id}")
def update_plan(request: Request, session: PageSession, actor: ManagerPage, plan_id: PlanId,
                name: Field = None, price: Field = None, billing_period: Field = None,
                minimum_months: Field = None, notice_value: Field = None,
                notice_unit: Field = None, renewal: Field = None, renewal_months: Field = None,
                joining_fee: Field = None, tax_rate: Field = None, next_price: Field = None,
                next_price_from: Field = None, freeze_days: Field = None,
                active: Tick = None):
    back_to(request, None, f"{PLANS_PAGE}/{plan_id}")
    data = _plan_fields(name, price, billing_period, minimum_months, notice_value, notice_unit,
                        renewal, renewal_months, joining_fee, tax_rate, next_price,
                        next_price_from, freeze_days)
    data["active"] = ticked(active)
    data["duration_days"] = data["duration_months"] = None
    plan = _recurring_plan(session, actor, plan_id)
    if data["next_price_from"] and plan.next_price_from and (
            data["next_price_from"] == plan.next_price_from.isoformat()):
        del data["next_price_from"]  # unchanged: a day already reached is no new change
    try:
        changes = build(PlanUpdate, **data).model_dump(exclude_unset=True)
    except Invalid as exc:
        raise _plain(exc, PLAN_LABELS) from None
    plan = memberships_service.update_plan(session, actor=actor, plan_id=plan_id,
                                           changes=changes)
    return done(request, f"{PLANS_PAGE}/{plan.id}", f"{plan.name} is saved; contracts already "
                                                   "sold keep their terms.", "ok", "Plan saved")


# --- the collection page ------------------------------------------------------------------------

@router.get(COLLECTIONS_PAGE)
def collections_page(request: Request, session: PageSession, actor: ManagerPage,
                     day: DayQ = None):
    today = clubs_service.club_today_by_id(session, actor.club_id)
    day = day or today
    found = sepa_batches.due(session, club_id=actor.club_id, collection_date=day)
    batches, total = sepa_batches.list_batches(session, club_id=actor.club_id, limit=50,
                                               offset=0)
    counts = {b.id: sepa_batches.submitted_count(session, b.id) for b in batches}
    return render(request, "money_collections.html", {
        "title": "Collections", "day": day, "due": found, "batches": batches,
        "batch_total": total, "counts": counts})


@router.post(COLLECTIONS_PAGE)
def prepare_file(request: Request, session: PageSession, actor: ManagerPage,
                 collection_date: Annotated[date, Form(ge=date(2000, 1, 1),
                                                       le=date(2100, 12, 31))]):
    back = f"{COLLECTIONS_PAGE}?date={collection_date.isoformat()}"
    back_to(request, None, back)
    batch = sepa_batches.prepare_batch(session, actor=actor, collection_date=collection_date)
    return done(request, back, f"The file {batch.message_id} holds {batch.count} debit(s), "
                               f"{batch.total} in all. Download it, upload it to the bank, then "
                               "mark it submitted.", "ok", "File prepared")


@router.get(COLLECTIONS_PAGE + "/{batch_id}/file")
def download_file(session: PageSession, actor: ManagerPage, batch_id: BatchId):
    name, content = sepa_batches.batch_file(session, club_id=actor.club_id, batch_id=batch_id)
    return Response(content, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post(COLLECTIONS_PAGE + "/{batch_id}/submitted")
def submitted(request: Request, session: PageSession, actor: ManagerPage, batch_id: BatchId):
    back_to(request, None, COLLECTIONS_PAGE)
    batch = sepa_batches.mark_submitted(session, actor=actor, batch_id=batch_id)
    return done(request, f"{COLLECTIONS_PAGE}?date={batch.collection_date.isoformat()}",
                f"{batch.message_id} is marked submitted: its {batch.count} debit(s) count as "
                "paid unless the bank returns them.", "ok", "Submitted")


# --- the returns import -------------------------------------------------------------------------

def _stored_returns(session: Session, actor: Actor, token: str) -> tuple[str, bytes]:
    if not re.match(TOKEN, token):
        raise NotFound("This returns file is not known", code="upload_not_found")
    stored = import_storage.find(session, club_id=actor.club_id, bundle=RETURNS_BUNDLE + token,
                                 purpose=import_storage.UPLOAD)
    if stored is None:
        raise NotFound("This returns file is not known, was imported already or is more than an "
                       "hour old; upload it again", code="upload_not_found")
    return stored.name, import_storage.read_bytes(session, stored.id)


STATUS_TITLES = {"matched": "Matched", "unknown": "Unknown debit",
                 "already_imported": "Already imported", "not_in_a_file": "Not in a file",
                 "amount_mismatch": "Amount differs"}


@router.get(RETURNS_PAGE)
def returns_page(request: Request, session: PageSession, actor: ManagerPage):
    return render(request, "money_returns.html", {"title": "Returned debits", "report": None,
                                                  "token": None, "status_titles": STATUS_TITLES})


@router.post(RETURNS_PAGE)
def upload_returns(request: Request, session: PageSession, actor: ManagerPage,
                   file: Annotated[UploadFile, File()]):
    back_to(request, None, RETURNS_PAGE)
    data = file.file.read(MAX_RETURNS_FILE + 1)
    if len(data) > MAX_RETURNS_FILE:
        raise DomainError(f"The returns file is larger than {MAX_RETURNS_FILE >> 20} MB",
                          code="file_too_large", status_code=413)
    if not data.strip():
        raise Invalid("Choose the bank's returns file (the one sent was empty)",
                      code="empty_file")
    name = Path(file.filename or "returns").name[:100] or "returns"
    sepa_returns.parse_returns(data, name)  # an unreadable file is refused now, in words
    token = secrets.token_urlsafe(24)
    import_storage.store(session, club_id=actor.club_id, user_id=actor.user_id,
                         bundle=RETURNS_BUNDLE + token, purpose=import_storage.UPLOAD,
                         name=name, chunks=[data], keep=UPLOAD_TTL)
    return done(request, f"{RETURNS_PAGE}/{token}", f"{name} uploaded: here is what an import "
                                                     "would do. Nothing is written yet.", "info",
                "Dry run")


@router.get(RETURNS_PAGE + "/{token}")
def returns_dry_run(request: Request, session: PageSession, actor: ManagerPage, token: Token):
    name, data = _stored_returns(session, actor, token)
    savepoint = session.begin_nested()
    try:
        report = sepa_returns.import_returns(session, actor=actor, content=data, filename=name,
                                             dry_run=True)
    finally:
        savepoint.rollback()
    return render(request, "money_returns.html", {
        "title": "Returned debits: dry run", "report": report, "token": token,
        "status_titles": STATUS_TITLES})


@router.post(RETURNS_PAGE + "/{token}")
def returns_import(request: Request, session: PageSession, actor: ManagerPage, token: Token):
    back_to(request, None, f"{RETURNS_PAGE}/{token}")
    name, data = _stored_returns(session, actor, token)
    report = sepa_returns.import_returns(session, actor=actor, content=data, filename=name,
                                         dry_run=False)
    import_storage.discard(session, club_id=actor.club_id, bundle=RETURNS_BUNDLE + token)
    matched = report["counts"].get("matched", 0)
    others = sum(report["counts"].values()) - matched
    return done(request, RETURNS_PAGE, f"{matched} returned debit(s) imported from {name}"
                                       + (f"; {others} row(s) left as they were" if others
                                          else "") + ".", "ok", "Imported")


# --- the owner's money figures ------------------------------------------------------------------

WIDE_CHARTS = ("mrr", "movement")  # across the page; the others half of it


def _reports(session: Session, actor: Actor, period: dict) -> dict:
    return {f.name: f.compute(session, club_id=actor.club_id, **period) for f in FIGURES}


def money_charts(reports: dict) -> dict:
    """The SVG charts of the money page (`money_figures`, at the page's widths)."""
    return {c.key: charts.from_spec(c, reports[f.name],
                                    width=WIDE if c.key in WIDE_CHARTS else HALF)
            for f in FIGURES for c in f.charts}


def _period(session: Session, actor: Actor, date_from: date | None,
            date_to: date | None) -> dict:
    """Twelve calendar months to the club's today unless given (as the dashboard)."""
    date_from, date_to = resolve_period(session, actor, date_from, date_to)
    return {"date_from": date_from, "date_to": date_to}


def _query(period: dict) -> str:
    return f"from={period['date_from'].isoformat()}&to={period['date_to'].isoformat()}"


@router.get(MONEY_PAGE)
def money_page(request: Request, session: PageSession, actor: ManagerPage,
               date_from: FromQ = None, date_to: ToQ = None):
    period = _period(session, actor, date_from, date_to)
    reports = _reports(session, actor, period)
    last_month = (period["date_to"].replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return render(request, "money_owner.html", {
        "title": "Money", "r": reports, "charts": money_charts(reports), **period,
        "q": _query(period), "month": last_month,
        "latest": reports["mrr"].items[-1] if reports["mrr"].items else None})


@router.get(MONEY_PAGE + "/csv/{report}.csv")
def money_csv(session: PageSession, actor: ManagerPage, report: str, date_from: FromQ = None,
              date_to: ToQ = None):
    figure = BY_NAME.get(report)
    if figure is None:
        raise NotFound("No such report", code="report_not_found")
    period = _period(session, actor, date_from, date_to)
    return figure.csv(figure.compute(session, club_id=actor.club_id, **period))


@router.get(MONEY_PAGE + "/export.csv")
def accounting_export(session: PageSession, actor: ManagerPage, month: MonthQ = None,
                      fmt: Annotated[str, Query(alias="format", pattern=r"^(csv|datev)$")]
                      = "csv",
                      consultant: Annotated[int, Query(ge=1001, le=9999999)] = 1001,
                      client: Annotated[int, Query(ge=1, le=99999)] = 1):
    if month is None:
        raise Invalid("Choose a month (YYYY-MM) for the accounting export",
                      code="month_required")
    return money_export.download(session, club_id=actor.club_id, month=month,
                                 datev_batch=fmt == "datev", consultant=consultant,
                                 client=client)
