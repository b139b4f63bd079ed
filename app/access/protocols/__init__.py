"""Adapters for the access controllers clubs really own: ZKTeco PUSH, Hikvision ISAPI, IronLogic.

Each adapter translates a device's request into `app.access.service.check_in` (the one decision)
and the answer back into the device's format; no business rule lives here. `common` holds what
they share (finding the device by serial number, device clocks, recording a device's own
outcome), `allowlist` keeps ZKTeco devices' user tables in step with memberships and cards, and
`router` is the one APIRouter for every device route. See docs/turnstiles.md.
"""
