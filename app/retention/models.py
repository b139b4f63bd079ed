"""Retention engine models (see RETENTION.md)."""
