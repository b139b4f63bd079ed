"""CRM models: staff tasks and interactions (the timeline)."""
