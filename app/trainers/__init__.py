"""Trainers, personal training and group classes (docs/trainers.md).

Modules, lowest first; each imports only modules above it in this list, at module level:

- `models`, `schemas` — tables and API shapes;
- `service` — trainer profiles, working hours and absences, the domain's settings, and what the
  modules below share (statuses, the club's zone and day, names, bulk updates, access checks);
- `packages` — PT products and packages: the `pt_package` sale line, balances (service);
- `sessions` — PT sessions: booking, moving, closing; a trainer's clients and notes; booking
  from a CRM task (service, packages);
- `classes` — class types, timetable, classes, bookings and waitlist, attendance (service,
  sessions);
- `feed` — the iCalendar feed per trainer (service);
- `results` — trainers' results (service);
- `router` — the API.

What other domains call back (the `pt_package` sale line kind, `mark_class_attendance` on
`VisitGranted`, `on_staff_joined`) is registered in `app/wiring.py`, never by importing.
"""
