"""Analytics: renewal rate, touchpoint effectiveness, retention over time, process measures and
the owner's KPIs — read-only, set-based SQL over the other domains' tables (docs/analytics.md)."""
