"""Screenshots of the main pages for the docs (docs/screenshots/*.png, 1280×800).

Builds the demo club in a temporary SQLite database, adds what the demo generator leaves out
(café products and sales, trainer profiles, hours, PT sessions and classes, a few weeks of the
retention engine, today's check-ins) through the services, serves the app with uvicorn on a free
loopback port, and drives Debian's Chromium with Playwright (never a downloaded browser):

    .venv/bin/python scripts/screenshots.py               # into docs/screenshots/
    .venv/bin/python scripts/screenshots.py --members 300 --out /tmp/shots

Nothing leaves the machine: the retention engine runs with recording channels.
"""
import argparse
import random
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.errors import DomainError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the club --------------------------------------------------------------------------------------

def build(url: str, members: int, retention_days: int) -> dict:
    from sqlalchemy import select

    from app import wiring
    from app.clubs.models import StaffUser
    from app.core import migrate
    from app.core.actors import Actor, Role
    from app.core.db import make_engine, make_sessionmaker, transaction
    from app.demo.data import DEMO_PASSWORD
    from app.demo.generator import DemoOptions, build_demo

    wiring.install()  # the services below sell and check in: every handler and line kind
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    log(f"building the demo club ({members} people)")
    demo = build_demo(factory, DemoOptions(members=members, months=15, seed=7))
    with transaction(factory) as s:
        ids = dict(s.execute(select(StaffUser.email, StaffUser.id)).all())

    def actor(local: str, role: Role) -> Actor:
        return Actor(user_id=ids[f"{local}@demo.fitclub"], name=local, club_id=demo.club_id,
                     role=role)

    owner, desk = actor("owner", Role.owner), actor("desk1", Role.front_desk)
    log("café, trainers and classes")
    _cafe(factory, owner)
    _trainers(factory, owner, [ids[f"trainer{i}@demo.fitclub"] for i in (1, 2, 3)])
    if retention_days:
        log(f"running the retention engine over the last {retention_days} days")
        _retention(factory, demo.club_id, demo.as_of, retention_days)
    log("today's check-ins")
    names = _check_ins(factory, desk)
    engine.dispose()
    return {"club_id": demo.club_id, "password": DEMO_PASSWORD, **names}


def _cafe(factory, owner) -> None:
    from app.billing import service as billing
    from app.core.db import transaction
    from app.inventory import service as inventory
    from app.inventory.schemas import ProductCreate, ProductLine
    from app.members import service as members_service

    catalogue = [  # sku, name, category, price, cost, reorder level, received
        ("SHAKE-VAN", "Protein shake vanilla", "drinks", "3.50", "1.20", 10, 40),
        ("SHAKE-CHO", "Protein shake chocolate", "drinks", "3.50", "1.25", 10, 14),
        ("ISO-500", "Isotonic drink 0.5 l", "drinks", "2.20", "0.80", 12, 48),
        ("WATER-05", "Still water 0.5 l", "drinks", "1.00", "0.25", 24, 30),
        ("BAR-PNUT", "Protein bar peanut", "snacks", "2.50", "1.10", 8, 30),
        ("ESPRESSO", "Espresso", "coffee", "1.80", "0.35", 50, 200),
    ]
    rng = random.Random(11)
    with transaction(factory) as s:
        products = []
        for sku, name, category, price, cost, reorder, qty in catalogue:
            p = inventory.create_product(s, actor=owner, data=ProductCreate(
                sku=sku, name=name, category=category, sale_price=Decimal(price),
                reorder_level=reorder))
            inventory.receive_stock(s, actor=owner, product_id=p.id, quantity=qty,
                                    unit_cost=Decimal(cost), supplier="Fit Foods GmbH")
            products.append((p.id, qty))
        people = members_service.search_members(s, club_id=owner.club_id, q=None,
                                                limit=60)["items"]
        for person in people[:40]:
            product_id, _stock = rng.choice(products)
            try:
                with s.begin_nested():
                    sale = inventory.sell_products(
                        s, actor=owner, member_id=person["id"],
                        items=[ProductLine(product_id=product_id,
                                           quantity=rng.choice((1, 1, 2)))])
                    billing.add_payment(s, actor=owner, sale_id=sale.id,
                                        method=rng.choice(("card", "cash")), amount=sale.total)
            except DomainError as exc:  # out of stock: skip
                log(f"  café sale skipped: {exc.message}")


def _trainers(factory, owner, user_ids: list[int]) -> None:
    from app.clubs import service as clubs_service
    from app.clubs.models import Club
    from app.core.db import transaction
    from app.members import service as members_service
    from app.trainers import classes, packages, sessions
    from app.trainers import service as trainers
    from app.trainers.schemas import (
        ClassTypeCreate,
        HoursSet,
        PtPackageLine,
        PtProductCreate,
        SlotCreate,
        TrainerCreate,
    )

    rng = random.Random(5)
    with transaction(factory) as s:
        club = s.get(Club, owner.club_id)
        zone = clubs_service.club_zone(club)
        today = clubs_service.club_today(club)
        specialities = [["strength", "rehab"], ["yoga", "mobility"], ["spinning", "HIIT"]]
        hours = [[(1, "07:00", "13:00"), (2, "07:00", "13:00"), (3, "14:00", "21:00"),
                  (5, "07:00", "15:00")],
                 [(1, "15:00", "21:00"), (3, "09:00", "14:00"), (4, "15:00", "21:00"),
                  (6, "09:00", "13:00")],
                 [(2, "14:00", "21:00"), (4, "07:00", "12:00"), (5, "15:00", "21:00"),
                  (7, "10:00", "14:00")]]
        profiles = []
        for user_id, spec, week in zip(user_ids, specialities, hours, strict=True):
            t = trainers.create_trainer(s, actor=owner, data=TrainerCreate(
                user_id=user_id, specialities=spec))
            trainers.set_hours(s, actor=owner, trainer_id=t.id, data=HoursSet(intervals=[
                {"weekday": d, "start": a, "end": b} for d, a, b in week]))
            profiles.append((t, week))
        product = packages.create_product(s, actor=owner, data=PtProductCreate(
            name="10 PT sessions", sessions=10, price=Decimal("450.00"), validity_days=120))
        people = members_service.search_members(s, club_id=owner.club_id, q=None,
                                                limit=200, offset=60)["items"]
        clients = [p for p in people if p["membership"]["status"] == "active"][:18]
        now = datetime.now(UTC)
        for index, person in enumerate(clients):
            trainer, week = profiles[index % len(profiles)]
            packages.sell_package(s, actor=owner, member_id=person["id"], line=PtPackageLine(
                package_product_id=product.id, trainer_id=trainer.id,
                start_date=today - timedelta(days=40)))
            booked = 0
            for back in range(-35, 7):  # past sessions (completed) and this week's
                day = today + timedelta(days=back)
                slots = [w for w in week if w[0] == day.isoweekday()]
                if not slots or rng.random() > 0.18:
                    continue
                hour = int(slots[0][1][:2]) + (index % 3)
                start = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
                try:
                    with s.begin_nested():
                        pt = sessions.book_session(s, actor=owner, member_id=person["id"],
                                                   trainer_id=trainer.id, start=start)
                        if start + timedelta(hours=1) < now:
                            sessions.complete_session(s, actor=owner, session_id=pt.id)
                        booked += 1
                except DomainError:  # a clash with another booking: skip that slot
                    pass
                if booked >= 6:
                    break
        spinning = classes.create_class_type(s, actor=owner, data=ClassTypeCreate(
            name="Spinning", capacity=16, duration_minutes=45))
        yoga = classes.create_class_type(s, actor=owner, data=ClassTypeCreate(
            name="Yoga flow", capacity=12, duration_minutes=60))
        for kind, (trainer, _week), weekday, at in ((spinning, profiles[2], 2, "18:30"),
                                                    (spinning, profiles[2], 5, "18:30"),
                                                    (yoga, profiles[1], 3, "10:00"),
                                                    (yoga, profiles[1], 6, "10:30")):
            classes.create_slot(s, actor=owner, data=SlotCreate(
                class_type_id=kind.id, weekday=weekday, start_time=at, trainer_id=trainer.id,
                room="Studio 1"))
        monday = today - timedelta(days=today.weekday())
        classes.generate_occurrences(s, actor=owner, date_from=monday - timedelta(days=28),
                                     date_to=monday + timedelta(days=13))
        for occurrence in classes.list_occurrences(s, club_id=owner.club_id, date_from=monday,
                                                   date_to=monday + timedelta(days=6)):
            members = [p for p in people if p["membership"]["status"] == "active"]
            for person in rng.sample(members, k=min(len(members), rng.randint(5, 14))):
                try:
                    with s.begin_nested():
                        classes.book_class(s, actor=owner, occurrence_id=occurrence.id,
                                           member_id=person["id"],
                                           now=min(now, occurrence.starts_at
                                                   - timedelta(days=2)))
                except DomainError:  # not bookable for this member: skip
                    pass


def _retention(factory, club_id: int, as_of, days: int) -> None:
    from app.core.config import Settings
    from app.retention import service as retention

    result = retention.simulate(factory, club_id=club_id, start=as_of - timedelta(days=days),
                                end=as_of - timedelta(days=1),
                                settings=Settings(_env_file=None), close_tasks=True)
    log(result.summary())
    retention.run_day(factory, club_id=club_id, as_of=as_of, source="manual")


def _check_ins(factory, desk) -> dict:
    from app.access import service as access
    from app.core.db import transaction
    from app.crm import service as crm
    from app.members import service as members_service

    with transaction(factory) as s:
        people = members_service.search_members(s, club_id=desk.club_id, q=None,
                                                limit=300)["items"]
    active = [p for p in people if p["membership"]["status"] == "active"]
    expired = [p for p in people if p["membership"]["status"] == "expired"]
    frozen = [p for p in people if p["membership"]["status"] == "frozen"]
    for person in active[5:14] + expired[:2] + frozen[:1]:
        with transaction(factory) as s:
            access.desk_check_in(s, actor=desk, member_id=person["id"])
    with transaction(factory) as s:  # the card to show: a member with a task today, if any
        tasks = crm.tasks_today(s, actor=desk)
    featured = next((t.member_id for t in tasks if t.member_id), None)
    return {"active": {"id": featured} if featured else active[0],
            "expired": expired[2] if len(expired) > 2 else expired[0]}


# --- serving and shooting ------------------------------------------------------------------------

def serve(url: str):
    import uvicorn

    from app.core.config import Settings
    from app.main import create_app
    from app.web.router import install

    app = create_app(Settings(database_url=url, scheduler_enabled=False, _env_file=None))
    install(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def shoot(base: str, out: Path, club: dict) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base, viewport=VIEWPORT, device_scale_factor=1)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda msg: log(f"  browser console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: log(f"  browser error: {exc}"))

        def snap(name: str) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            saved.append(path)
            log(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

        def sign_in(email: str) -> None:
            page.goto("/login")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(club["password"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state("networkidle")

        page.goto("/login")
        page.get_by_label("Email").fill("desk1@demo.fitclub")
        snap("01-login")

        sign_in("desk1@demo.fitclub")
        expired = club["expired"]
        search = page.get_by_label("Find a member")
        search.press_sequentially(expired["last_name"][:4].lower(), delay=60)
        page.wait_for_selector("#results li.result")
        page.wait_for_timeout(400)
        chosen = page.locator(f'#results li.result[data-member-id="{expired["id"]}"]')
        index = page.locator("#results li.result").evaluate_all(
            "(items, id) => items.findIndex(li => li.dataset.memberId === String(id))",
            expired["id"])
        for _ in range(max(index, 0)):
            search.press("ArrowDown")
        if chosen.count():
            search.press("Shift+Enter")
            page.wait_for_selector("#decision .decision")
            page.wait_for_timeout(300)
        snap("02-desk")

        page.goto(f"/desk/members/{club['active']['id']}")
        page.get_by_role("button", name="Check in", exact=True).click()
        page.wait_for_load_state("networkidle")
        page.locator("details.action").nth(0).evaluate("d => d.open = true")
        snap("03-member")

        page.goto("/tasks")
        snap("04-tasks")
        page.get_by_role("button", name="Sign out").click()

        sign_in("owner@demo.fitclub")
        page.goto("/owner")
        page.wait_for_load_state("networkidle")
        snap("05-dashboard")
        for anchor, name in (("#retention-h", "06-dashboard-retention"),
                             ("#cohorts-h", "07-dashboard-cohorts"),
                             ("#tp-h", "08-dashboard-touchpoints"),
                             ("#trainers-h", "09-dashboard-trainers-cafe")):
            page.locator(anchor).scroll_into_view_if_needed()
            page.evaluate("(sel) => document.querySelector(sel).scrollIntoView()", anchor)
            page.evaluate("window.scrollBy(0, -70)")
            snap(name)

        page.goto("/owner/playbook")
        snap("10-playbook")
        page.get_by_role("link", name="Welcome", exact=True).click()
        page.wait_for_selector("#preview .message-preview")
        snap("11-playbook-edit")

        page.goto("/manage/stock")
        snap("12-stock")
        page.goto("/manage/trainers")
        snap("13-trainers")

        page.set_viewport_size({"width": 800, "height": 1280})  # a tablet held upright
        page.goto(f"/desk/members/{club['active']['id']}")
        path = out / "14-member-tablet.png"
        page.screenshot(path=str(path))
        saved.append(path)
        context.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--retention-days", type=int, default=180,
                        help="days of retention engine history to simulate (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fitclub-shots-") as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        club = build(url, args.members, args.retention_days)
        server, thread, base = serve(url)
        try:
            shoot(base, args.out.resolve(), club)
        finally:
            server.should_exit = True
            thread.join(timeout=15)


if __name__ == "__main__":
    main()
