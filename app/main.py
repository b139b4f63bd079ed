"""The FastAPI application: routers, error envelope, engine and session factory."""
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.core import handlers
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker

API_ROUTERS = [
    "app.clubs.router",
    "app.members.router",
    "app.memberships.router",
    "app.billing.router",
    "app.access.router",
    "app.crm.router",
    "app.retention.router",
    "app.inventory.router",
    "app.trainers.router",
    "app.analytics.router",
]


def _include_routers(app: FastAPI) -> None:
    import importlib

    for name in API_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        app.include_router(module.router)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, echo=settings.sql_echo)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = None
        if settings.scheduler_enabled:
            try:
                from app.retention.scheduler import start_scheduler
            except ModuleNotFoundError:
                start_scheduler = None
            if start_scheduler:
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
    handlers.install(app)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok"}

    _include_routers(app)
    return app
