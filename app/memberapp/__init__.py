"""The member app: the club's members' own mobile pages (docs/member-app.md).

Modules, lowest first; each imports only modules above it in this list:

- `models`, `schemas` — sign-in challenges, device sessions, cancellations received; API shapes;
- `i18n` — the message catalogues (de, en, ru) and how a language is chosen;
- `sessions` — members' device sessions: start, resolve, sign out, revoke by the desk;
- `signin` — passwordless sign-in: an emailed link or an SMS code, throttled, no enumeration;
- `view` — what a member sees of their own data (read-only);
- `account` — consents and preferred channel, the download of their data;
- `cancel` — cancelling a contract online, signed in or not (§312k BGB);
- `classes` — booking group classes: the club's window and late-cancel rules on the trainers'
  engine, telling a member promoted from the waiting list;
- `router` — the staff's API (a member's app sessions).

The pages are `app.web.member` (on `app.web.member_kit`: the member cookie, CSRF, rendering in
the member's language). The domain sits above dues, access, trainers and privacy, which it
reads and calls; nothing below imports it.
"""
