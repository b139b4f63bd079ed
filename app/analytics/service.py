"""The analytics services, one function per report (each defined in its own module)."""
from app.analytics.cancel_offers import cancel_offer_effectiveness
from app.analytics.kpis import kpi_report
from app.analytics.process import process_report
from app.analytics.renewals import (
                                    By,
                                    before_after,
                                    outcomes,
                                    renewal_breakdown,
                                    renewal_report,
                                    touchpoint_effectiveness,
)
from app.analytics.retention import cohorts, monthly, survival

__all__ = ["By", "before_after", "cancel_offer_effectiveness", "cohorts", "kpi_report", "monthly", "outcomes",
           "process_report", "renewal_breakdown", "renewal_report", "survival",
           "touchpoint_effectiveness"]
