"""Front-desk member search on a big club, timed the way the API runs it.

    python -m bench.search [--members 100000] [--backend postgresql|sqlite|both] [--queries 300]

For each backend: a fresh database, migrated, with the demo club at `--members` people (visits
skipped: search does not read them); then `app.members.service.search_members` — the function
behind `GET /api/v1/members?q=...` — is called in-process, one session per query as in a
request, for a few hundred queries of each kind:

- name: the first 3-4 letters of a random member's first or last name, as a person types them;
- phone: the last 4-5 digits of a random member's phone;
- card: a random member's full card code.

Prints p50/p99 per kind and backend and the goal (p99 < 50 ms) as PASS/FAIL.
"""
from __future__ import annotations

import argparse
import random
import sys
from datetime import datetime
from time import perf_counter

from bench.common import (
    build_demo,
    fresh_database,
    machine,
    median,
    peak_rss_mb,
    percentile,
    table,
    verdict,
)

P99_GOAL_MS = 50.0
KINDS = ("name", "phone", "card")


def sample_queries(url: str, club_id: int, *, n: int, seed: int) -> dict[str, list[str]]:
    """`n` queries of each kind drawn from the club's members."""
    from sqlalchemy import select

    from app.core.db import make_engine, make_sessionmaker
    from app.members.models import Card, Member

    rng = random.Random(seed)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        people = session.execute(select(Member.first_name, Member.last_name, Member.phone)
                                 .where(Member.club_id == club_id)).all()
        codes = session.scalars(select(Card.code).where(Card.club_id == club_id,
                                                        Card.status == "active")).all()
    engine.dispose()
    names = []
    for first, last, _phone in rng.sample(people, min(n, len(people))):
        word = rng.choice((first, last)).split()[0]
        typed = word[:rng.choice((3, 4))]
        names.append(typed.lower() if rng.random() < 0.5 else typed)
    phones = [p for _f, _l, p in people if p]
    return {
        "name": names,
        "phone": [p[-rng.choice((4, 5)):] for p in rng.sample(phones, min(n, len(phones)))],
        "card": rng.sample(codes, min(n, len(codes))),
    }


def time_searches(url: str, club_id: int, queries: dict[str, list[str]]
                  ) -> dict[str, tuple[list[float], list[int]]]:
    """Seconds per call and total hits per query, by kind (a short warm-up is not counted)."""
    from app.core.db import make_engine, make_sessionmaker
    from app.members import service as members_service

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    out: dict[str, tuple[list[float], list[int]]] = {}
    for kind in KINDS:
        for q in queries[kind][:20]:  # warm-up: connections, statement caches, pages
            with factory() as session:
                members_service.search_members(session, club_id=club_id, q=q)
    for kind in KINDS:
        times, hits = [], []
        for q in queries[kind]:
            with factory() as session:
                t0 = perf_counter()
                page = members_service.search_members(session, club_id=club_id, q=q)
                times.append(perf_counter() - t0)
            hits.append(page["total"])
        out[kind] = (times, hits)
    engine.dispose()
    return out


def run_backend(backend: str, args) -> list[list]:
    rows = []
    with fresh_database(backend, "search", keep=args.keep_db) as url:
        print(f"[{backend}] building the demo club: {args.members:,} people, no visits …")
        built = build_demo(url, members=args.members, visits=False, seed=args.seed,
                           progress=args.members >= 20_000)
        r = built.result
        print(f"[{backend}]    built in {built.seconds:.1f} s (writing {r.write_seconds:.1f} s; "
              f"peak RSS {built.peak_rss_mb:.0f} MB)")
        queries = sample_queries(url, r.club_id, n=args.queries, seed=args.seed)
        results = time_searches(url, r.club_id, queries)
        for kind in KINDS:
            times, hits = results[kind]
            p99 = percentile(times, 99) * 1000
            rows.append([backend, kind, len(times), median(times) * 1000, p99,
                         max(times) * 1000, int(median(hits)), verdict(p99 < P99_GOAL_MS)])
            print(f"[{backend}]    {kind}: p50 {median(times) * 1000:.1f} ms, p99 {p99:.1f} ms")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--queries", type=int, default=300, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args(argv)

    print(f"bench.search — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} — {machine()}")
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    rows = []
    for backend in backends:
        rows += run_backend(backend, args)
    print(f"\n== Member search, {args.members:,} people, in-process "
          "(app.members.service.search_members, first page of 20) ==")
    print(table(["backend", "query", "n", "p50 ms", "p99 ms", "max ms", "median hits",
                 f"p99 < {P99_GOAL_MS:g} ms"], rows))
    ok = all(row[-1] == "PASS" for row in rows)
    print(f"\nGoal p99 < {P99_GOAL_MS:g} ms for every kind and backend: {verdict(ok)}"
          f"   (peak RSS {peak_rss_mb():.0f} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
