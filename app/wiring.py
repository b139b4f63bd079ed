"""Who reacts to what: every event handler and every sale-line kind, in one readable list.

Called by whatever runs the domains before the first request or job: the app factory (which
also starts the in-process scheduler), the `fitclub` command (and so `fitclub scheduler`), the
test suite, and scripts that use the services directly. Publishing an event before it is an
error (`app.core.events.publish`). Nothing registers itself by being
imported. A new handler or line kind is one line here (see CONTRIBUTING.md, "Where things go").

Required handlers are part of the change that publishes the event (an error rolls it all back);
best-effort ones run afterwards in a savepoint and cannot undo it (`app.core.events`).
"""
from app.access.protocols import allowlist
from app.billing.service import register_line_kind
from app.core import events
from app.core.events import (
    CardChanged,
    ClassPlaceGiven,
    MemberChanged,
    MemberErased,
    MembershipSold,
    MembersMerged,
    StaffJoined,
    VisitGranted,
)
from app.crm import leads
from app.dues import contracts as dues_contracts
from app.inventory import service as inventory
from app.memberapp import classes as member_classes
from app.memberships import service as memberships
from app.retention import service as retention
from app.retention import stages
from app.trainers import classes as trainer_classes
from app.trainers import packages as pt_packages
from app.trainers import service as trainers


def install() -> None:
    """Subscribe every handler and register every sale-line kind. Idempotent: a second call
    (another app in the same process, a test) changes nothing."""
    # a membership sold: the lead is won (required); the turnstiles learn the new validity
    events.subscribe(MembershipSold, leads.on_membership_sold)
    events.subscribe(MembershipSold, allowlist.on_member_changed, best_effort=True)

    # a membership's end moved (a freeze): a contract's term follows it (required)
    events.subscribe(MemberChanged, dues_contracts.on_member_changed)

    # who may pass changed: ZKTeco devices keep an offline allow-list
    events.subscribe(MemberChanged, allowlist.on_member_changed, best_effort=True)
    events.subscribe(CardChanged, allowlist.on_member_changed, best_effort=True)

    # duplicates merged: the kept member's stage and both members' turnstile rows
    events.subscribe(MembersMerged, retention.on_members_merged, best_effort=True)
    events.subscribe(MembersMerged, allowlist.on_members_merged, best_effort=True)

    # erasure: the devices are told to forget the person, and commands carrying the name go
    events.subscribe(MemberErased, allowlist.forget_member)

    # a granted entry: on PostgreSQL both fold into the check-in's grant statement (one round
    # trip for the whole entry); elsewhere they run after it, in one savepoint
    events.subscribe(VisitGranted, stages.on_visit, best_effort=True,
                     folded=stages.RECOVERY_FOLDED)
    events.subscribe(VisitGranted, trainer_classes.mark_class_attendance, best_effort=True,
                     folded=trainer_classes.ATTENDANCE_FOLDED)

    # a class's freed place went to the first on the waiting list: their timeline, and the email
    # telling them queued in the outbox (the member app sends at once what it can, after commit)
    events.subscribe(ClassPlaceGiven, member_classes.on_class_place_given, best_effort=True)

    # staff
    events.subscribe(StaffJoined, trainers.on_staff_joined)

    # what a sale can hold
    register_line_kind(memberships.MEMBERSHIP, memberships.fulfil_membership_line,
                       spec=memberships.MembershipLine)
    register_line_kind(dues_contracts.CONTRACT, dues_contracts.fulfil_contract_line,
                       spec=dues_contracts.ContractLine)
    register_line_kind(pt_packages.PT_PACKAGE, pt_packages.fulfil_pt_package_line,
                       spec=pt_packages.PtPackageLine)
    register_line_kind(inventory.PRODUCT, inventory.fulfil_product_line,
                       spec=inventory.ProductLine, lock_key=inventory.product_lock_key)
    events.mark_wired()
