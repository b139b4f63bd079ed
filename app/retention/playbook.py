"""The playbook: touchpoint definitions per club, the defaults every club starts with, and edits."""
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import clock
from app.core.errors import Conflict, Invalid, NotFound
from app.core.sql import dialect_insert
from app.retention import templates
from app.retention.models import TouchpointDefinition


class Stage(StrEnum):
    prospect = "prospect"
    onboarding = "onboarding"
    establishing = "establishing"
    active = "active"
    at_risk = "at_risk"
    renewal_due = "renewal_due"
    lapsed = "lapsed"
    lost = "lost"
    frozen = "frozen"


# stages of a member who holds a membership today: "any stage" (stage None) means these
MEMBER_STAGES = (Stage.onboarding, Stage.establishing, Stage.active, Stage.at_risk,
                 Stage.renewal_due, Stage.frozen)


class Trigger(StrEnum):
    days_after_stage_entry = "days_after_stage_entry"  # days = offset
    days_before_end = "days_before_end"  # days = offset before the membership's last day
    visit_milestone = "visit_milestone"  # visits = N (the member's Nth visit)
    no_visit_days = "no_visit_days"  # days = N days in the stage without any visit
    birthday = "birthday"
    visits_below_by_day = "visits_below_by_day"  # fewer than `visits` visits by stage day `days`
    payment_problem = "payment_problem"  # days = N days after the member's dues payment failed
    # (an open dunning case, `dues_dunning_cases`; any stage unless one is chosen)
    contract_cancelled = "contract_cancelled"  # days = N days after a recurring contract's
    # cancellation was received (`dues_contracts.cancel_received_on`), while it has not ended


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    call_task = "call_task"
    trainer_task = "trainer_task"


MESSAGE_CHANNELS = (Channel.email, Channel.sms)  # consent, frequency cap and quiet hours apply
TASK_CHANNELS = (Channel.call_task, Channel.trainer_task)


class StopCondition(StrEnum):
    none = "none"
    visited_since_scheduled = "visited_since_scheduled"
    renewed = "renewed"
    payment_settled = "payment_settled"  # the member has no open dunning case any more
    cancellation_withdrawn = "cancellation_withdrawn"  # the contract runs on (ends_on NULL again)


STAGE_TRIGGERS = (Trigger.days_after_stage_entry, Trigger.no_visit_days,
                  Trigger.visits_below_by_day)


def check_definition(*, stage: str | None, trigger: str, days: int | None, visits: int | None,
                     channel: str, subject_template: str, body_template: str) -> None:
    """Refuse incoherent triggers and broken templates (422 with the reason)."""
    trig = Trigger(trigger)
    needs_days = trig in (Trigger.days_after_stage_entry, Trigger.days_before_end,
                          Trigger.no_visit_days, Trigger.visits_below_by_day,
                          Trigger.payment_problem, Trigger.contract_cancelled)
    needs_visits = trig in (Trigger.visit_milestone, Trigger.visits_below_by_day)
    if needs_days and days is None:
        raise Invalid(f"Trigger {trig.value} needs 'days'", code="invalid_trigger",
                      details={"field": "days"})
    if needs_visits and visits is None:
        raise Invalid(f"Trigger {trig.value} needs 'visits'", code="invalid_trigger",
                      details={"field": "visits"})
    if trig in STAGE_TRIGGERS and stage is None:
        raise Invalid(f"Trigger {trig.value} counts days in a stage: choose the stage",
                      code="invalid_trigger", details={"field": "stage"})
    if trig is Trigger.days_before_end and stage in (Stage.prospect, Stage.lapsed, Stage.lost):
        raise Invalid("days_before_end needs a stage with a running membership",
                      code="invalid_trigger", details={"field": "stage"})
    if Channel(channel) is Channel.email and not subject_template.strip():
        raise Invalid("An email needs a subject", code="invalid_template",
                      details={"field": "subject_template"})
    templates.check("subject_template", subject_template)
    templates.check("body_template", body_template)


@dataclass(frozen=True)
class Play:
    key: str
    name: str
    stage: Stage | None
    trigger: Trigger
    channel: Channel
    subject: str
    body: str
    days: int | None = None
    visits: int | None = None
    stop: StopCondition = StopCondition.none
    priority: int = 50


_SIGN = "\n\nSee you soon,\nthe team at {{ club.name }}"

DEFAULT_PLAYBOOK: tuple[Play, ...] = (
    # onboarding: the adaptation period
    Play("welcome", "Welcome", Stage.onboarding, Trigger.days_after_stage_entry, Channel.email,
         "Welcome to {{ club.name }}, {{ member.first_name }}!",
         "Hello {{ member.first_name }},\n\nwelcome to {{ club.name }}! Your {{ membership.plan }} "
         "runs until {{ membership.end_date | nice_date }}. Your first session with a trainer is "
         "free: book it in the app ({{ app.training }}), at the desk or by replying to this "
         "email." + _SIGN,
         days=0, priority=90),
    Play("intro_session", "Book the free intro session", Stage.onboarding,
         Trigger.days_after_stage_entry, Channel.trainer_task,
         "Book an intro session with {{ member.name }}",
         "New member since {{ stage.since | nice_date }}. Call {{ member.phone or member.email }} "
         "and book the free intro session (technique, goals, a first plan).",
         days=2, priority=70),
    Play("no_first_visit", "No first visit by day 7", Stage.onboarding, Trigger.no_visit_days,
         Channel.call_task, "Call {{ member.name }}: no first visit yet",
         "{{ member.first_name }} joined on {{ stage.since | nice_date }} and has not come in yet. "
         "Call, ask what stands in the way and offer to book a first session.",
         days=7, stop=StopCondition.visited_since_scheduled, priority=85),
    Play("how_is_it_going", "How is it going? (day 7)", Stage.onboarding,
         Trigger.days_after_stage_entry, Channel.call_task,
         "Call {{ member.name }}: how is the first week going?",
         "A friendly first-week call: how are the visits going, anything missing, "
         "would a class or a trainer help?",
         days=7, priority=60),
    Play("low_visits_sms", "Fewer than 4 visits by day 14: encouragement", Stage.onboarding,
         Trigger.visits_below_by_day, Channel.sms, "",
         "Hi {{ member.first_name }}, the first weeks are the hardest - and the most worth it. "
         "Two short visits a week make a routine. See you at {{ club.name }}!",
         days=14, visits=4, priority=65),
    Play("low_visits_call", "Fewer than 4 visits by day 14: call", Stage.onboarding,
         Trigger.visits_below_by_day, Channel.call_task,
         "Call {{ member.name }}: fewer than 4 visits in the first two weeks",
         "Help {{ member.first_name }} find a routine: fixed days, a class, a training partner.",
         days=14, visits=4, priority=64),
    Play("class_invite", "Invitation to a group class (day 21)", Stage.onboarding,
         Trigger.days_after_stage_entry, Channel.email,
         "{{ member.first_name }}, join a group class this week",
         "Hello {{ member.first_name }},\n\nclasses are the easiest way to keep going: a fixed "
         "time, a coach and people who expect you. Pick one that suits you in the app - "
         "{{ app.classes }} - or at the desk; your membership includes them." + _SIGN,
         days=21, priority=50),
    Play("progress_check", "Progress check / fitness assessment (day 28)", Stage.onboarding,
         Trigger.days_after_stage_entry, Channel.trainer_task,
         "Progress check with {{ member.name }}",
         "Four weeks in: offer {{ member.first_name }} a short progress check and adjust the plan.",
         days=28, priority=60),
    # establishing / active
    Play("visit_10", "10th visit", None, Trigger.visit_milestone, Channel.email,
         "10 visits, {{ member.first_name }}!",
         "Hello {{ member.first_name }},\n\nthat was your 10th visit at {{ club.name }}. "
         "A routine is forming - keep it up!" + _SIGN,
         visits=10, priority=40),
    Play("visit_50", "50th visit", None, Trigger.visit_milestone, Channel.email,
         "50 visits - congratulations, {{ member.first_name }}!",
         "Hello {{ member.first_name }},\n\n50 visits! You are one of our regulars now. "
         "Ask at the desk for a free shake on us." + _SIGN,
         visits=50, priority=40),
    Play("birthday", "Birthday greeting", None, Trigger.birthday, Channel.sms, "",
         "Happy birthday, {{ member.first_name }}! Your friends at {{ club.name }}",
         priority=30),
    Play("member_event", "Member event invitation", Stage.active, Trigger.days_after_stage_entry,
         Channel.email, "You're invited: members' evening at {{ club.name }}",
         "Hello {{ member.first_name }},\n\njoin us for our members' evening: open classes, "
         "trainers' tips and a bring-a-friend pass." + _SIGN,
         days=30, priority=20),
    # at risk
    Play("miss_you", "We miss you", Stage.at_risk, Trigger.days_after_stage_entry, Channel.email,
         "We miss you, {{ member.first_name }}",
         "Hello {{ member.first_name }},\n\nwe haven't seen you for a while. Life gets busy - a "
         "short visit still counts. Drop by this week, or reply and we'll find a time that "
         "works." + _SIGN,
         days=0, stop=StopCondition.visited_since_scheduled, priority=80),
    Play("at_risk_call", "At risk: call if still no visit (day 3)", Stage.at_risk,
         Trigger.no_visit_days, Channel.call_task, "Call {{ member.name }}: at risk, no visit",
         "{{ member.first_name }} has been at risk since {{ stage.since | nice_date }} and "
         "has not come back. Call, listen, offer help (a trainer session, another time slot).",
         days=3, stop=StopCondition.visited_since_scheduled, priority=85),
    Play("at_risk_trainer", "At risk: free session with a trainer (day 10)", Stage.at_risk,
         Trigger.days_after_stage_entry, Channel.trainer_task,
         "Offer {{ member.name }} a free trainer session",
         "{{ member.first_name }} is at risk. Offer a free session to restart the routine.",
         days=10, stop=StopCondition.visited_since_scheduled, priority=70),
    # renewal due (memberships that do not renew automatically)
    Play("renewal_reminder", "Renewal reminder (30 days before)", Stage.renewal_due,
         Trigger.days_before_end, Channel.email,
         "Your membership ends on {{ membership.end_date | nice_date }}",
         "Hello {{ member.first_name }},\n\nyour {{ membership.plan }} ends on "
         "{{ membership.end_date | nice_date }}. Renew at the desk to keep your routine "
         "going." + _SIGN,
         days=30, stop=StopCondition.renewed, priority=75),
    Play("renewal_offer", "Renewal offer (14 days before)", Stage.renewal_due,
         Trigger.days_before_end, Channel.email,
         "{{ member.first_name }}, an offer to stay with us",
         "Hello {{ member.first_name }},\n\nrenew your membership before "
         "{{ membership.end_date | nice_date }} and your next month is on us." + _SIGN,
         days=14, stop=StopCondition.renewed, priority=80),
    Play("renewal_call", "Renewal call (7 days before)", Stage.renewal_due,
         Trigger.days_before_end, Channel.call_task,
         "Call {{ member.name }}: membership ends {{ membership.end_date | nice_date }}",
         "Offer the renewal; note the reason if {{ member.first_name }} does not want to renew.",
         days=7, stop=StopCondition.renewed, priority=85),
    Play("renewal_last", "Last reminder (the day before)", Stage.renewal_due,
         Trigger.days_before_end, Channel.sms, "",
         "{{ member.first_name }}, your {{ club.name }} membership ends tomorrow. Renew at the "
         "desk to keep access.",
         days=1, stop=StopCondition.renewed, priority=90),
    # a payment problem: the member's dues could not be collected (a dunning case is open)
    Play("payment_failed", "Payment failed: update your details", None,
         Trigger.payment_problem, Channel.email,
         "{{ member.first_name }}, your payment didn't go through",
         "Hello {{ member.first_name }},\n\nyour last membership payment to {{ club.name }} "
         "didn't go through. Please update your payment details or pay at the desk on your "
         "next visit - it only takes a minute." + _SIGN,
         days=0, stop=StopCondition.payment_settled, priority=88),
    Play("payment_call", "Payment problem: call (day 3)", None, Trigger.payment_problem,
         Channel.call_task, "Call {{ member.name }}: dues payment failed",
         "{{ member.first_name }}'s dues could not be collected. Call kindly, offer to take the "
         "payment at the desk or to update the bank or card details.",
         days=3, stop=StopCondition.payment_settled, priority=80),
    Play("payment_still_open", "Payment still open (day 10)", None, Trigger.payment_problem,
         Channel.email, "{{ member.first_name }}, your payment is still open",
         "Hello {{ member.first_name }},\n\nyour membership payment is still open. Settle it "
         "at the desk or update your payment details, so your access keeps working." + _SIGN,
         days=10, stop=StopCondition.payment_settled, priority=85),
    # a recurring contract was cancelled: offers only *after* the cancellation is recorded
    # (never a hurdle to cancelling), measured against the held-out group like every play
    Play("cancel_freeze", "Cancelled: freeze instead? (day 1)", None,
         Trigger.contract_cancelled, Channel.email,
         "Sorry to see you go, {{ member.first_name }} - freeze instead?",
         "Hello {{ member.first_name }},\n\nyour cancellation is recorded - nothing more to do. "
         "If it is only a break you need (travel, an injury, a busy season), we can withdraw "
         "the cancellation and freeze your membership instead: you keep your place and your "
         "price. See how long you could freeze in the app ({{ app.freeze }}) and tell us at "
         "the desk or reply to this email." + _SIGN,
         days=1, stop=StopCondition.cancellation_withdrawn, priority=70),
    Play("cancel_call", "Cancelled: call, ask why, offer a cheaper plan (day 3)", None,
         Trigger.contract_cancelled, Channel.call_task,
         "Call {{ member.name }}: contract cancelled",
         "{{ member.first_name }} cancelled (the cancellation stands - no pressure). Ask kindly "
         "why and record the reason; if it is the price, offer a cheaper plan; if it is a "
         "break, offer a freeze.",
         days=3, stop=StopCondition.cancellation_withdrawn, priority=65),
    Play("cancel_cheaper", "Cancelled: a cheaper plan (day 7)", None,
         Trigger.contract_cancelled, Channel.email,
         "{{ member.first_name }}, a lighter plan instead?",
         "Hello {{ member.first_name }},\n\nif the price or the time is what made you cancel: "
         "we have lighter plans (off-peak hours, fewer visits) for less, and we can withdraw "
         "the cancellation and switch you over. Ask at the desk or reply to this email - and if "
         "a break is all you need, a freeze may do ({{ app.freeze }})." + _SIGN,
         days=7, stop=StopCondition.cancellation_withdrawn, priority=55),
    # lapsed / lost: win back
    Play("winback", "Win-back message (day 3)", Stage.lapsed, Trigger.days_after_stage_entry,
         Channel.email, "Come back to {{ club.name }}, {{ member.first_name }}",
         "Hello {{ member.first_name }},\n\nyour membership ended on "
         "{{ membership.end_date | nice_date }}. Your progress is still here - come back and "
         "pick it up where you left off." + _SIGN,
         days=3, stop=StopCondition.renewed, priority=60),
    Play("winback_call", "Win-back call (day 10)", Stage.lapsed, Trigger.days_after_stage_entry,
         Channel.call_task, "Call {{ member.name }}: membership lapsed",
         "Ask why {{ member.first_name }} did not renew (record the reason) and offer to come back.",
         days=10, stop=StopCondition.renewed, priority=65),
    Play("winback_offer", "Win-back offer (day 25)", Stage.lapsed,
         Trigger.days_after_stage_entry, Channel.email,
         "{{ member.first_name }}, a welcome-back offer",
         "Hello {{ member.first_name }},\n\ncome back this month and we waive the joining fee." +
         _SIGN,
         days=25, stop=StopCondition.renewed, priority=60),
    Play("winback_last", "Last win-back (90 days after the end)", Stage.lost,
         Trigger.days_after_stage_entry, Channel.email,
         "We'd love to see you again, {{ member.first_name }}",
         "Hello {{ member.first_name }},\n\nit has been three months. If you ever want to come "
         "back, your first week is free." + _SIGN,
         days=60, stop=StopCondition.renewed, priority=50),
)


def ensure_default_playbook(session: Session, *, club_id: int) -> int:
    """Give a club the default plays it does not have yet (all of them on first use, a new
    default the first time after an upgrade brings it); returns how many were added. A default
    the club has, edited or switched off, stays as the club left it."""
    have = set(session.scalars(select(TouchpointDefinition.key)
                               .where(TouchpointDefinition.club_id == club_id)))
    missing = [p for p in DEFAULT_PLAYBOOK if p.key not in have]
    if not missing:
        return 0
    now = clock.now()
    rows = [{"club_id": club_id, "key": p.key, "name": p.name,
             "stage": p.stage.value if p.stage else None, "trigger": p.trigger.value,
             "days": p.days, "visits": p.visits, "channel": p.channel.value,
             "subject_template": p.subject, "body_template": p.body,
             "stop_condition": p.stop.value, "priority": p.priority, "holdout_share": None,
             "enabled": True, "is_default": True, "created_at": now, "updated_at": now}
            for p in missing]
    table = TouchpointDefinition.__table__
    session.execute(dialect_insert(session, table).on_conflict_do_nothing(
        index_elements=[table.c.club_id, table.c.key]), rows)
    return len(rows)


def list_definitions(session: Session, *, club_id: int) -> list[TouchpointDefinition]:
    ensure_default_playbook(session, club_id=club_id)
    return list(session.scalars(select(TouchpointDefinition)
                                .where(TouchpointDefinition.club_id == club_id)
                                .order_by(TouchpointDefinition.id)))


def get_definition(session: Session, *, club_id: int, definition_id: int) -> TouchpointDefinition:
    definition = session.scalar(select(TouchpointDefinition).where(
        TouchpointDefinition.id == definition_id, TouchpointDefinition.club_id == club_id))
    if definition is None:
        raise NotFound("Touchpoint definition not found", code="definition_not_found")
    return definition


_EDITABLE = ("name", "stage", "trigger", "days", "visits", "channel", "subject_template",
             "body_template", "stop_condition", "priority", "holdout_share", "enabled")


def create_definition(session: Session, *, club_id: int, data: dict) -> TouchpointDefinition:
    """Add a touchpoint to the club's playbook."""
    ensure_default_playbook(session, club_id=club_id)
    if session.scalar(select(TouchpointDefinition.id).where(
            TouchpointDefinition.club_id == club_id, TouchpointDefinition.key == data["key"])):
        raise Conflict(f"A touchpoint with key {data['key']!r} already exists",
                       code="definition_exists")
    values = {k: data.get(k) for k in _EDITABLE}
    values["subject_template"] = values["subject_template"] or ""
    check_definition(stage=values["stage"], trigger=values["trigger"], days=values["days"],
                     visits=values["visits"], channel=values["channel"],
                     subject_template=values["subject_template"],
                     body_template=values["body_template"])
    definition = TouchpointDefinition(club_id=club_id, key=data["key"], is_default=False,
                                      **values)
    session.add(definition)
    session.flush()
    return definition


def update_definition(session: Session, *, club_id: int, definition_id: int,
                      changes: dict) -> TouchpointDefinition:
    """Edit a definition: only the fields given change; the result must still be coherent."""
    definition = get_definition(session, club_id=club_id, definition_id=definition_id)
    merged = {k: getattr(definition, k) for k in _EDITABLE}
    merged.update({k: v for k, v in changes.items() if k in _EDITABLE})
    if merged["subject_template"] is None:
        merged["subject_template"] = ""
    for required in ("name", "trigger", "channel", "body_template", "stop_condition",
                     "priority", "enabled"):
        if merged[required] is None:
            raise Invalid(f"{required} cannot be empty", code="invalid",
                          details={"field": required})
    check_definition(stage=merged["stage"], trigger=merged["trigger"], days=merged["days"],
                     visits=merged["visits"], channel=merged["channel"],
                     subject_template=merged["subject_template"],
                     body_template=merged["body_template"])
    for key, value in merged.items():
        setattr(definition, key, value)
    definition.updated_at = clock.now()
    session.flush()
    return definition


def set_enabled(session: Session, *, club_id: int, definition_id: int,
                enabled: bool) -> TouchpointDefinition:
    definition = get_definition(session, club_id=club_id, definition_id=definition_id)
    definition.enabled = enabled
    definition.updated_at = clock.now()
    session.flush()
    return definition
