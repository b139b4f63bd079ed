"""Importing a club's history from its previous system: plans, memberships, freezes, visits,
PT packages and staff (issue 11). See docs/import.md, "History import"."""
