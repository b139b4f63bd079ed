"""The staff pages: server-rendered Jinja2 over the same service functions the JSON API calls,
inside the request's session (`SessionDep`). Install them on an app with `install(app)`.

The package, bottom up:

* `auth` — cookie sessions, CSRF, flash messages, the route class and its HTML error handling;
* `charts` — the SVG charts; `kit` — what every page module shares (templates, `render`, form
  helpers, the page actors);
* the pages by audience, each importing only the modules above and the domain services:
  `account` (sign in, my password, club switcher, invitations), `desk` (search, member card,
  check-in, sales, notes, calls), `dues_desk` (the member's contract and payments: contracts,
  mandates, card links, desk payments, cancellations), `tasks`, `leads` (the pipeline),
  `owner` (dashboard, CSV, playbook), `data` (import, export, custom fields, duplicates),
  `manage` (stock, trainers, staff, turnstiles) and `money` (billing settings, recurring plans,
  SEPA collections and returns, the owner's money figures);
* the member app (`member_kit`: the member's cookie, CSRF and language; `member`: the members'
  own pages under /app, docs/member-app.md);
* this module, on top: `install` puts the page routers and `/static` on the app.

The routes are listed in docs/pages.md.
"""
from fastapi import FastAPI

from app.web import (
    account,
    data,
    desk,
    dues_desk,
    kit,
    leads,
    manage,
    member,
    member_join,
    money,
    owner,
    tasks,
)
from app.web.auth import WebStatic

PAGES = (account, desk, dues_desk, tasks, owner, manage, leads, data, money, member,
         member_join)


def install(app: FastAPI) -> None:
    """Add the pages and /static to an app (idempotent)."""
    if getattr(app.state, "web_installed", False):
        return
    for pages in PAGES:
        app.include_router(pages.router)
    app.mount("/static", WebStatic(directory=str(kit.STATIC_DIR)), name="static")
    app.state.web_installed = True
