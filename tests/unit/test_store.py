"""State tables: JSON on disk (never pickle), survive reopening, pruning keeps what is recent."""

import sqlite3
import time

from bridge.store import Store


def test_values_are_json_and_survive_reopen(tmp_path):
    store = Store(tmp_path)
    store.jobs.put("<a@b>", {"status": "active", "results": {"guard": {"action": "process"}}})
    store.close()
    raw = sqlite3.connect(tmp_path / "jobs.sqlite").execute("select value from jobs").fetchone()[0]
    assert raw.startswith('{"status":"active"')
    again = Store(tmp_path)
    assert again.jobs.get("<a@b>")["results"]["guard"]["action"] == "process"
    again.close()


def test_prune_drops_only_old_finished_records(tmp_path):
    store = Store(tmp_path)
    old = time.time() - 10 * 86400
    store.jobs.put("old-done", {"status": "done", "updated_at": old})
    store.jobs.put("old-active", {"status": "active", "updated_at": old})
    store.jobs.put("new-done", {"status": "done", "updated_at": time.time()})
    store.outbox.put("old-sent", {"status": "sent", "updated_at": old})
    store.outbox.put("old-pending", {"status": "pending", "updated_at": old})
    store.messages.put("<old@x>", {"ticket": 1, "dir": "out", "at": old})
    store.limits.put("cap:stale@x", [old - 60, old])
    store.limits.put("cap:recent@x", [old, time.time()])
    removed = store.prune(86400)
    assert removed == {"jobs": 1, "outbox": 1, "messages": 1, "limits": 1}
    assert sorted(store.jobs.keys()) == ["new-done", "old-active"]
    assert list(store.outbox.keys()) == ["old-pending"]
    assert list(store.limits.keys()) == ["cap:recent@x"]
    assert "cap:stale@x" not in store.limits and store.limits.get("cap:stale@x") is None
    store.close()


def test_indexed_tables_answer_from_their_key_set_and_stay_consistent(tmp_path):
    store = Store(tmp_path)
    store.jobs.put("a", {"n": 1})
    store.jobs.put("b", {"n": 2}, durable=False)
    del store.jobs["a"]
    store.jobs.commit()
    assert "a" not in store.jobs and store.jobs.get("a", "none") == "none" and len(store.jobs) == 1
    assert store.jobs["b"] == {"n": 2}
    store.close()
    again = Store(tmp_path)  # the index is rebuilt from disk
    assert list(again.jobs.keys()) == ["b"] and "b" in again.jobs and again.jobs.get("b") == {"n": 2}
    again.close()


def test_another_process_can_requeue_while_the_bridge_runs(tmp_path):
    """`bridge outbox retry` rewrites an existing effect and adds a meta key while the bridge runs."""
    running = Store(tmp_path)
    running.outbox.put("k", {"status": "dead"})
    cli = Store(tmp_path)
    cli.outbox.put("k", {"status": "pending"})
    cli.meta.put("outbox_requeue", ["k"])
    assert running.meta.get("outbox_requeue") == ["k"]
    assert running.outbox.get("k") == {"status": "pending"}
    cli.close()
    running.close()
