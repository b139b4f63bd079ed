"""Low stock raises one reorder task for the managers per shortage; restocking re-arms it."""
from sqlalchemy import select

from app.crm.models import Task


def _tasks(bar) -> list[Task]:
    return bar.scalars(select(Task).where(Task.kind == "reorder").order_by(Task.id))


def test_a_reorder_task_is_raised_once_and_rearmed_by_a_receipt(bar):
    shake = bar.product(name="Vanilla shake", sku="SHAKE-V", sale_price="4", reorder_level=3,
                        reorder_quantity=24)
    bar.receive(shake["id"], 6, "1.50")
    bar.sold([(shake["id"], 2)])
    assert _tasks(bar) == []  # 4 left, above the level
    bar.sold([(shake["id"], 1)])  # 3 left: at the level
    tasks = _tasks(bar)
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.kind, task.assignee_role, task.status, task.member_id, task.club_id) == (
        "reorder", "manager", "open", None, bar.club.id)
    assert "Vanilla shake" in task.title and "SHAKE-V" in task.title
    assert "3 pcs left" in task.details and "24" in task.details
    bar.sold([(shake["id"], 1)])
    bar.post("/write-offs", {"product_id": shake["id"], "quantity": 1, "reason": "damaged"})
    bar.post("/stocktakes", {"counts": [{"product_id": shake["id"], "counted": 0}]})
    assert len(_tasks(bar)) == 1  # still the same shortage

    bar.receive(shake["id"], 2, "1.50")  # 2: still at or below the level, not restocked
    bar.sold([(shake["id"], 1)])
    assert len(_tasks(bar)) == 1
    bar.receive(shake["id"], 10, "1.60")  # 11: restocked, armed again
    bar.sold([(shake["id"], 7)])
    assert len(_tasks(bar)) == 1  # 4 left
    bar.sold([(shake["id"], 2)])  # 2 left: a new shortage
    assert len(_tasks(bar)) == 2 and all(t.status == "open" for t in _tasks(bar))


def test_the_manager_sees_the_task_on_todays_list_and_the_front_desk_does_not(bar):
    water = bar.product(name="Water", reorder_level=0)
    bar.receive(water["id"], 1, "0.2")
    bar.sold([(water["id"], 1)])
    r = bar.client.get("/api/v1/tasks/today", headers=bar.manager.headers)
    assert r.status_code == 200, r.text
    assert [(t["kind"], t["title"]) for t in r.json()] == [
        ("reorder", f"Reorder Water ({water['sku']})")]
    r = bar.client.get("/api/v1/tasks/today", headers=bar.desk.headers)
    assert r.status_code == 200 and r.json() == []


def test_a_write_off_or_a_short_count_raises_the_task_too(bar):
    bars = bar.product(name="Bar", reorder_level=5)
    water = bar.product(name="Water", reorder_level=5)
    bar.receive(bars["id"], 8, "1")
    bar.receive(water["id"], 8, "1")
    bar.post("/write-offs", {"product_id": bars["id"], "quantity": 3, "reason": "expired"})
    bar.post("/stocktakes", {"counts": [{"product_id": water["id"], "counted": 4}]})
    assert sorted(t.title for t in _tasks(bar)) == sorted(
        [f"Reorder Bar ({bars['sku']})", f"Reorder Water ({water['sku']})"])


def test_lowering_the_reorder_level_rearms_a_product_no_longer_short(bar):
    shake = bar.product(name="Shake", reorder_level=5)
    bar.receive(shake["id"], 6, "1")
    bar.sold([(shake["id"], 2)])  # 4 ≤ 5: task
    bar.patch(f"/products/{shake['id']}", {"reorder_level": 2})  # 4 > 2: no longer short
    bar.sold([(shake["id"], 1)])
    assert len(_tasks(bar)) == 1
    bar.sold([(shake["id"], 1)])  # 2 ≤ 2: a new shortage
    assert len(_tasks(bar)) == 2
