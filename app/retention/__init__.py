"""The retention engine: lifecycle stages, the touchpoint playbook, scheduling and delivery.

Importing the package registers the visit listener with the access domain
(`app.access.service.visit_listeners`), so a granted check-in moves an at-risk member back.
`register_listeners()` is idempotent and may also be called explicitly.
"""


def register_listeners() -> None:
    """Add `app.retention.stages.on_visit` to the access domain's visit listeners (once)."""
    try:
        from app.access import service as access_service
    except ModuleNotFoundError as exc:  # the access package is optional for the engine
        if exc.name != "app.access.service":
            raise
        return
    from app.retention.stages import on_visit

    if on_visit not in access_service.visit_listeners:
        access_service.visit_listeners.append(on_visit)


register_listeners()
