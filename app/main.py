"""The FastAPI application: routers, error envelope, engine and session factory."""
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import wiring
from app.access import router as access
from app.access.protocols import router as protocols
from app.analytics import money_router
from app.analytics import router as analytics
from app.billing import router as billing
from app.clubs import router as clubs
from app.clubs import service as clubs_service
from app.clubs import staff_router
from app.core import bodylimit, clock, handlers, logredact, middleware
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.crm import leads_router as crm_leads
from app.crm import router as crm
from app.customfields import router as customfields
from app.dues import cards_router as dues_cards
from app.dues import contracts_router as dues_contracts
from app.dues import desk_router as dues_desk
from app.dues import invoices_router as dues_invoices
from app.dues import sepa_router as dues_sepa
from app.imports import router as imports
from app.imports.history import router as history_import
from app.inventory import router as inventory
from app.memberapp import router as memberapp
from app.members import router as members
from app.memberships import router as memberships
from app.privacy import router as privacy
from app.retention import router as retention
from app.retention.scheduler import start_scheduler
from app.trainers import router as trainers
from app.web import router as pages

ROUTERS = (access.devices_router, protocols.router, dues_cards.webhook_router,
           clubs.router, staff_router.router, privacy.router, members.router,
           memberships.router, billing.router, access.router, crm.router, retention.router,
           inventory.router, trainers.router, analytics.router, customfields.router,
           crm_leads.router, imports.router, history_import.router, dues_contracts.router,
           dues_desk.router, dues_cards.router, dues_sepa.router, dues_invoices.router,
           money_router.router, memberapp.router)
"""The API's routers in the order they are matched. Devices' routes come first: a request is
matched against the routes one by one, and the turnstiles call many times a minute (#19: ~0.5
ms of CPU per check-in when the device route sat behind ~50 staff routes). Privacy before
members, because `GET /members/duplicates` is not `/members/{member_id}`."""


def _include_routers(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    crm_leads.install(app)
    pages.install(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    clock.install_from_environment(settings.environment)
    wiring.install()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, echo=settings.sql_echo)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = start_scheduler(settings, app.state.sessionmaker)
        yield
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        engine.dispose()

    app = FastAPI(title="fitclub", version="0.1.0", lifespan=lifespan,
                  description="Fitness-club management with a built-in CRM and retention engine.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    logredact.install()  # feed tokens and device keys in URLs never reach the access log
    handlers.install(app)
    # inside the security headers: its 413 carries them too
    bodylimit.install(app, token_check=clubs_service.token_user)
    middleware.install(app)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok"}

    _include_routers(app)
    return app
