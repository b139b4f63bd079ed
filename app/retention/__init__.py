"""The retention engine: lifecycle stages, the touchpoint playbook, scheduling and delivery.

A granted check-in moves an at-risk member back: `app.retention.stages.on_visit` handles the
`VisitGranted` event (subscribed in `app/wiring.py`).
"""
