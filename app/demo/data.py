"""The demo club's shape: its plans, staff and device, how its members join, come, freeze,
cancel and pay, and the names they are drawn from. Numbers tuned so the two years of history
look like a real mid-size club (docs/demo.md); the generator reads them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from app.core.actors import Role

DEMO_CLUB = "Riverside Fitness"
DEMO_TIMEZONE = "Europe/Berlin"
DEMO_CURRENCY = "EUR"
DEMO_PASSWORD = "demo-password"
DEMO_DOMAIN = "demo.fitclub"
DEVICE_NAME = "Main entrance turnstile"

STAFF = (
    ("owner", Role.owner, "Katrin Vogel"),
    ("manager", Role.manager, "Jonas Richter"),
    ("desk1", Role.front_desk, "Lea Hoffmann"),
    ("desk2", Role.front_desk, "Mehmet Yilmaz"),
    ("trainer1", Role.trainer, "Sven Krüger"),
    ("trainer2", Role.trainer, "Aylin Demir"),
    ("trainer3", Role.trainer, "Tom Becker"),
)


@dataclass(frozen=True)
class PlanSpec:
    key: str
    name: str
    category: str
    duration_days: int | None
    duration_months: int | None
    price: Decimal
    visit_limit: int | None
    access_start: time | None
    access_end: time | None
    freeze_days: int
    first_weight: float  # share of first purchases


PLANS = (
    PlanSpec("monthly", "Monthly Unlimited", "unlimited", None, 1, Decimal("49.00"), None,
             None, None, 7, 0.40),
    PlanSpec("quarter", "3 Months Unlimited", "unlimited", None, 3, Decimal("135.00"), None,
             None, None, 14, 0.16),
    PlanSpec("annual", "12 Months Unlimited", "unlimited", None, 12, Decimal("468.00"), None,
             None, None, 30, 0.14),
    PlanSpec("pass10", "10-Visit Pass", "pass", 60, None, Decimal("95.00"), 10, None, None, 7,
             0.17),
    PlanSpec("offpeak", "Off-Peak Monthly", "off_peak", None, 1, Decimal("35.00"), None,
             time(6, 0), time(16, 0), 7, 0.13),
)
PLAN_BY_KEY = {p.key: p for p in PLANS}

# Which plan a renewal buys: mostly the same, sometimes an upgrade.
SWITCH = {
    "monthly": (("monthly", 0.86), ("quarter", 0.06), ("annual", 0.08)),
    "quarter": (("quarter", 0.75), ("annual", 0.17), ("monthly", 0.08)),
    "annual": (("annual", 0.88), ("monthly", 0.12)),
    "pass10": (("pass10", 0.88), ("monthly", 0.12)),
    "offpeak": (("offpeak", 0.88), ("monthly", 0.12)),
}
FREEZE_P = {"monthly": 0.04, "quarter": 0.14, "annual": 0.35, "pass10": 0.03, "offpeak": 0.04}
CANCEL_P = {"monthly": 0.025, "quarter": 0.06, "annual": 0.10, "pass10": 0.01, "offpeak": 0.025}
CANCEL_WEIGHTS = {"moved_away": 20, "price": 22, "health": 15, "not_using": 28,
                  "unhappy_service": 8, "other": 7}
CANCEL_NOTES = {
    "moved_away": ("Moving to Hamburg for work", "Relocating abroad", "Moved out of the city"),
    "price": ("Found a cheaper gym", "Budget is tight this year"),
    "health": ("Knee surgery, doctor's advice", "Pregnancy", "Back problems"),
    "not_using": ("No time with the new job", "Hardly came in the last months"),
    "unhappy_service": ("Too crowded in the evenings", "Showers often cold"),
    "other": ("Personal reasons",),
}
FREEZE_REASONS = ("holiday", "illness", "business trip", "injury", "exams")
SOURCES = (("walk_in", 40), ("website", 22), ("referral", 18), ("instagram", 12),
           ("corporate", 8))
PAY_METHODS = (("card", 50), ("transfer", 32), ("cash", 18))  # billing PaymentMethod

# Club-wide attendance by month (January resolutions, summer holidays, December).
MONTH_ATTENDANCE = {1: 1.12, 2: 1.05, 3: 1.0, 4: 0.96, 5: 0.92, 6: 0.86, 7: 0.8, 8: 0.82,
                    9: 1.0, 10: 1.0, 11: 0.98, 12: 0.84}
# Joins by month: more in January and September.
MONTH_JOINS = {1: 2.0, 2: 1.25, 3: 1.1, 4: 0.95, 5: 0.85, 6: 0.7, 7: 0.6, 8: 0.75, 9: 1.7,
               10: 1.2, 11: 0.95, 12: 0.55}
WEEKDAY_JOINS = (1.35, 1.15, 1.1, 1.05, 0.95, 0.8, 0.6)
WEEKDAY_ROUTINE = (1.25, 1.15, 1.2, 1.1, 0.9, 0.6, 0.5)
# Usual time slots (local minutes of day): evening 17:00-20:00 dominates.
SLOTS = ((17 * 60, 20 * 60, 0.52), (6 * 60, 8 * 60 + 30, 0.18), (11 * 60, 13 * 60 + 30, 0.14),
         (14 * 60, 16 * 60, 0.10), (20 * 60, 21 * 60 + 30, 0.06))
OPEN, CLOSE = 6 * 60, 22 * 60 + 30
PROSPECT_SHARE = 0.05
EXTRA_VISIT_P = 0.08  # a visit on a non-routine day in a week

FEMALE = ("Anna", "Laura", "Julia", "Lena", "Sarah", "Lisa", "Hannah", "Marie", "Sophie", "Emma",
          "Mia", "Lea", "Katharina", "Johanna", "Clara", "Paula", "Nina", "Svenja", "Franziska",
          "Jana", "Ayşe", "Elif", "Zeynep", "Fatma", "Olga", "Natalia", "Agnieszka", "Maria",
          "Sofia", "Chiara", "Giulia", "Inès", "Chloé", "Zoë", "Amélie", "Emily", "Charlotte",
          "Greta", "Frieda", "Ida", "Nele", "Merle", "Yasmin", "Leila", "Mei", "Priya",
          "Ingrid", "Birgit", "Sabine", "Petra")
MALE = ("Lukas", "Jonas", "Leon", "Finn", "Paul", "Felix", "Maximilian", "Tim", "Jan", "David",
        "Niklas", "Moritz", "Tobias", "Sebastian", "Florian", "Alexander", "Philipp", "Simon",
        "Julian", "Daniel", "Mehmet", "Emre", "Can", "Mustafa", "Ali", "Piotr", "Tomasz",
        "Andrei", "Dmitri", "Marco", "Luca", "Matteo", "José", "Pablo", "Hugo", "Noah", "Elias",
        "Ben", "Jakob", "Anton", "Karl", "Oskar", "Omar", "Yusuf", "Raj", "Wei", "Thomas",
        "Michael", "Stefan", "Jürgen")
LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
        "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann",
        "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann",
        "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
        "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn",
        "Schubert", "Vogel", "Friedrich", "Keller", "Günther", "Frank", "Berger", "Winkler",
        "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon",
        "Ludwig", "Böhm", "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt", "Stein",
        "Jäger", "Otto", "Sommer", "Groß", "Seidel", "Heinrich", "Brandt", "Haas", "Schreiber",
        "Graf", "Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Kowalski", "Nowak",
        "Wiśniewski", "Ivanov", "Petrov", "Rossi", "Russo", "Bianchi", "García", "Fernández",
        "Dubois", "Lefèvre", "O'Brien", "Smith", "Nguyen", "Tran", "Kim", "Chen", "Singh",
        "Haddad", "Nielsen", "Jensen", "Andersson", "De Vries", "van der Berg",
        "Schmidt-Weber", "Meyer-Lindner")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")  # reserved: never a real inbox
MOBILE_PREFIXES = ("151", "152", "157", "159", "160", "162", "163", "170", "171", "172", "173",
                   "174", "175", "176", "177", "178", "179")

# --- recurring dues (app.demo.dues) ------------------------------------------------------------
# The club moved to direct-debit contracts DUES_MONTHS months before the demo's day: a share of
# the members who came back after their prepaid membership ran out signed one.

DUES_MONTHS = 6
DUES_SHARE = 0.08  # of the members (prospects included), at most DUES_MAX contracts
DUES_MAX = 150
DUES_SETTINGS = {
    "legal_name": "Riverside Fitness GmbH",
    "legal_address": "Uferstraße 12, 50668 Köln",
    "vat_registered": True,
    "vat_id": "DE123456789",
    "default_tax_rate": Decimal("19.00"),
    "creditor_id": "DE98ZZZ09999999999",  # the Bundesbank's published test identifier
    "creditor_name": "Riverside Fitness GmbH",
    "return_fee": Decimal("4.50"),  # the bank's fee for a returned debit, passed on
    "household_discount": Decimal(10),
    "dunning_fee": Decimal("5.00"),
}
CLUB_BANK = ("37050198", "1900462117")  # Sparkasse KölnBonn: the club's account (IBAN derived)
PAYER_BANKS = ("37040044", "50010517", "12030000", "37050198", "10010010", "20041155",
               "76026000", "43060967")  # German bank codes schwifty knows: IBANs with BICs


@dataclass(frozen=True)
class ContractPlanSpec:
    key: str
    name: str
    period: str  # month or year
    price: Decimal
    minimum_months: int
    renewal: str  # monthly after the minimum term, or term (renews for renewal_months)
    renewal_months: int
    joining_fee: Decimal
    weight: float  # share of the contracts sold
    next_price: Decimal | None = None  # announced DUES_PRICE_CHANGE_MONTHS after the start


CONTRACT_PLANS = (
    ContractPlanSpec("smart12", "Smart 12 (direct debit)", "month", Decimal("39.90"), 12,
                     "monthly", 1, Decimal("29.00"), 0.50),
    ContractPlanSpec("flex", "Flex Monthly (direct debit)", "month", Decimal("54.90"), 0,
                     "monthly", 1, Decimal("19.00"), 0.35, next_price=Decimal("59.90")),
    ContractPlanSpec("year", "Annual Contract", "year", Decimal("429.00"), 12, "term", 12,
                     Decimal("0.00"), 0.15),
)
DUES_PRICE_CHANGE_MONTHS = 3
CONTRACT_METHODS = (("sepa", 80), ("card", 14), ("desk", 6))
# What a payer's bank (or card) does, drawn once per payer: most debits go through.
PAYER_HABITS = {
    "sepa": (("good", 82), ("returned_once", 9), ("refund", 5), ("broke", 4)),
    "card": (("good", 75), ("declined_once", 25)),
    "desk": (("prompt", 70), ("late", 30)),
}
CANCEL_CONTRACT_P = {"flex": 0.3, "smart12": 0.08, "year": 0.0}
