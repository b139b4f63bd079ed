"""`Cache-Control: no-store` on every download and answer of personal data (issue 16:
`/api/v1/exports/members.csv` had none): one rule in the security-headers middleware."""
import re

from app.core.actors import Role

NO_STORE = "no-store"


def _first_choice(schema: dict):
    for option in [schema, *schema.get("anyOf", []), *schema.get("allOf", [])]:
        if "$ref" in option or "enum" in option:
            return option
    return schema


def _csv_routes(app) -> list[tuple[str, dict]]:
    """Every API GET without path parameters that answers CSV: (path, query for a CSV)."""
    schemas = app.openapi()["components"]["schemas"]
    routes = []
    for path, item in app.openapi()["paths"].items():
        get = item.get("get")
        if not get or "{" in path or not path.startswith("/api/"):
            continue
        content = (get.get("responses", {}).get("200") or {}).get("content") or {}
        if "text/csv" in content:
            query = {}
            for p in get.get("parameters", []):
                if p["name"] == "format":
                    query["format"] = "csv"
                elif p.get("required"):
                    schema = _first_choice(p["schema"])
                    if "$ref" in schema:
                        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
                    query[p["name"]] = (schema["enum"][0] if "enum" in schema
                                        else "2026-01-01" if schema.get("format") == "date"
                                        else "2026-01" if p["name"] == "month"
                                        else "1")
            routes.append((path, query))
    return routes


def test_every_csv_download_of_the_api_is_no_store(client, world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    client.post("/api/v1/members", headers=owner.headers,
                json={"first_name": "Anna", "last_name": "Schmidt"})
    routes = _csv_routes(client.app)
    paths = {p for p, _ in routes}
    # the downloads the review named are among them
    assert {"/api/v1/exports/members.csv", "/api/v1/exports/leads.csv",
            "/api/v1/analytics/renewals", "/api/v1/inventory/analytics/stock-value"} <= paths, paths
    for path, query in routes:
        r = client.get(path, headers=owner.headers, params=query)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"].startswith("text/csv"), path
        assert r.headers.get("cache-control") == NO_STORE, path


def test_privacy_export_and_member_json_are_no_store(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    member = client.post("/api/v1/members", headers=manager.headers,
                         json={"first_name": "Anna", "last_name": "Schmidt"}).json()["id"]
    for path in (f"/api/v1/members/{member}/privacy-export", f"/api/v1/members/{member}",
                 "/api/v1/members"):
        r = client.get(path, headers=manager.headers)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == NO_STORE, path


def test_history_import_rejects_download_is_no_store(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    bad = b"email,name,role\nnot-an-email,Someone,front_desk\n"
    r = client.post("/api/v1/imports/history", headers=manager.headers,
                    data={"skip_bad": "true", "dry_run": "true"},
                    files={"files": ("staff.csv", bad, "text/csv")})
    assert r.status_code == 202, r.text
    from tests.imports.history.test_history_api import wait

    job = wait(client, manager.headers, r.json()["id"])
    assert job["status"] == "done", job
    [name] = job["rejects"]
    r = client.get(f"/api/v1/imports/history/{job['id']}/rejects/{name}",
                   headers=manager.headers)
    assert r.status_code == 200 and "not-an-email" in r.text
    assert r.headers["cache-control"] == NO_STORE


def test_trainer_calendar_feed_is_no_store(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    trainer = world.staff(club, Role.trainer)
    r = client.post("/api/v1/trainers", headers=manager.headers,
                    json={"user_id": trainer.user_id})
    assert r.status_code == 201, r.text
    coach = r.json()["id"]
    url = client.post(f"/api/v1/trainers/{coach}/feed-token",
                      headers=manager.headers).json()["url"]
    r = client.get(re.sub(r"^https?://[^/]+", "", url))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    assert r.headers["cache-control"] == NO_STORE


def test_static_assets_keep_their_own_short_cache(client):
    from app.web.kit import STATIC_DIR

    name = next(p.name for p in STATIC_DIR.iterdir() if p.is_file())
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=300"
