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
    removed = store.prune(86400)
    assert removed == {"jobs": 1, "outbox": 1, "messages": 1}
    assert sorted(store.jobs.keys()) == ["new-done", "old-active"]
    assert list(store.outbox.keys()) == ["old-pending"]
    store.close()
