"""The desk finds members by a searchable custom field: GET /members?field=<key>&value=<v>."""


def _names(desk, field: str, value: str, **params) -> list[str]:
    r = desk.get("/members", params={"field": field, "value": value, **params})
    assert r.status_code == 200, r.text
    return [item["name"] for item in r.json()["items"]]


def test_the_desk_finds_everyone_with_shirt_size_m(desk, fields):
    desk.register("Cleo", "Meyer", custom={"shirt_size": "M"})
    desk.register("Anna", "Schmidt", custom={"shirt_size": "M"})
    desk.register("Ben", "Berg", custom={"shirt_size": "L"})
    desk.register("Dora", "Doe")
    r = desk.get("/members", params={"field": "shirt_size", "value": "m"})
    assert r.status_code == 200
    page = r.json()
    assert [i["name"] for i in page["items"]] == ["Anna Schmidt", "Cleo Meyer"]
    assert page["total"] == 2
    assert page["items"][0]["membership"]["status"] == "none"


def test_each_type_matches_its_own_way(desk, fields):
    desk.register("Anna", "Schmidt", custom={
        "weight_kg": 72.5, "medical_check": "2026-03-01", "newsletter_paper": True,
        "employer": "Berliner Stadtwerke"})
    desk.register("Ben", "Berg", custom={
        "weight_kg": 80, "medical_check": "2026-03-02", "newsletter_paper": False,
        "employer": "Bergbau AG"})
    assert _names(desk, "weight_kg", "72,5") == ["Anna Schmidt"]
    assert _names(desk, "weight_kg", "80.00") == ["Ben Berg"]
    assert _names(desk, "medical_check", "01.03.2026") == ["Anna Schmidt"]
    assert _names(desk, "medical_check", "2026-03-02") == ["Ben Berg"]
    assert _names(desk, "newsletter_paper", "ja") == ["Anna Schmidt"]
    assert _names(desk, "newsletter_paper", "no") == ["Ben Berg"]
    # text: case-insensitive, exact or at the start
    assert _names(desk, "employer", "berg") == ["Ben Berg"]
    assert _names(desk, "employer", "BERLINER STADTWERKE") == ["Anna Schmidt"]
    assert _names(desk, "employer", "Ber") == ["Anna Schmidt", "Ben Berg"]
    assert _names(desk, "employer", "stadtwerke") == []


def test_results_are_paged_with_the_total(desk, fields):
    for i in range(5):
        desk.register(f"Member{i}", "Test", custom={"shirt_size": "S"})
    r = desk.get("/members", params={"field": "shirt_size", "value": "S", "limit": 2,
                                     "offset": 2})
    page = r.json()
    assert [i["first_name"] for i in page["items"]] == ["Member2", "Member3"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)


def test_bad_searches_are_422_naming_the_parameter(owner, desk, fields):
    owner.define("notes_internal", "text")  # not searchable
    cases = [({"field": "notes_internal", "value": "x"}, "field", "not searchable"),
             ({"field": "nope", "value": "x"}, "field", "no custom field 'nope'"),
             ({"field": "weight_kg", "value": "heavy"}, "value", "not a number"),
             ({"field": "shirt_size", "value": "XXL"}, "value", "one of the choices"),
             ({"field": "shirt_size"}, "value", "value to look for"),
             ({"value": "S"}, "field", "name the custom field"),
             ({"field": "shirt_size", "value": "S", "q": "anna"}, "q", "not both")]
    for params, field, message in cases:
        r = desk.get("/members", params=params)
        assert r.status_code == 422, (params, r.text)
        detail = r.json()["details"][0]
        assert detail["field"] == field and message in detail["message"], (params, detail)


def test_an_archived_field_is_not_searchable(owner, desk, fields):
    anna = desk.register("Anna", "Schmidt", custom={"shirt_size": "S"})
    desk.register("Ben", "Berg", custom={"shirt_size": "M"})
    assert _names(desk, "shirt_size", "S") == ["Anna Schmidt"]  # while the field is live
    r = owner.post(f"/custom-fields/{fields['shirt_size']['id']}/archive")
    assert r.status_code == 200 and r.json()["archived_at"] is not None, r.text
    r = desk.get("/members", params={"field": "shirt_size", "value": "S"})
    assert r.status_code == 422, r.text
    detail = r.json()["details"][0]
    assert detail["field"] == "field" and "shirt_size" in detail["message"], detail
    assert [i["id"] for i in desk.search("schmidt")["items"]] == [anna["id"]]  # still a member


def test_text_search_still_works_beside_the_filter(desk, fields):
    desk.register("Anna", "Schmidt", custom={"shirt_size": "S"})
    assert [i["name"] for i in desk.search("schm")["items"]] == ["Anna Schmidt"]
