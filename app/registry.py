"""Imports every model so that Alembic and the tests see the whole schema."""
from app.access import models as access_models  # noqa: F401
from app.analytics import models as analytics_models  # noqa: F401
from app.billing import models as billing_models  # noqa: F401
from app.clubs import models as clubs_models  # noqa: F401
from app.core import audit as audit_models  # noqa: F401
from app.core import idempotency as idempotency_models  # noqa: F401
from app.core import ratelimit as ratelimit_models  # noqa: F401
from app.core.db import Base
from app.crm import models as crm_models  # noqa: F401
from app.customfields import models as customfields_models  # noqa: F401
from app.dues import models as dues_models  # noqa: F401
from app.imports import models as import_file_models  # noqa: F401
from app.imports.history import models as history_import_models  # noqa: F401
from app.inventory import models as inventory_models  # noqa: F401
from app.memberapp import models as memberapp_models  # noqa: F401
from app.members import models as members_models  # noqa: F401
from app.memberships import models as memberships_models  # noqa: F401
from app.privacy import models as privacy_models  # noqa: F401
from app.retention import models as retention_models  # noqa: F401
from app.trainers import models as trainers_models  # noqa: F401

metadata = Base.metadata
