"""The pages' downloads of personal data answer `Cache-Control: no-store` (issue 16)."""
import pytest

from app.web.owner import CSV_REPORTS
from tests.web.conftest import sign_in


@pytest.mark.parametrize("path", ["/manage/export/members.csv", "/manage/export/leads.csv"]
                         + [f"/owner/csv/{name}.csv" for name in CSV_REPORTS])
def test_page_downloads_are_no_store(web, club_world, path):
    sign_in(web, club_world.owner.email)
    r = web.get(path)
    assert r.status_code == 200, (path, r.text[:300])
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"
