"""State tables: JSON on disk (never pickle), survive reopening, pruning keeps what is recent."""

import sqlite3
import stat
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


def test_every_connection_commits_to_disk(tmp_path):
    """sqlitedict sets synchronous=OFF; a power loss could then drop journal records."""
    store = Store(tmp_path)
    for table in store.tables():
        assert table._db.conn.select_one("PRAGMA synchronous") == (2,), table.name  # FULL
        assert table._db.conn.select_one("PRAGMA journal_mode") == ("wal",), table.name
    store.close()


def test_state_is_private(tmp_path):
    folder = tmp_path / "state"
    store = Store(folder)
    store.meta.put("secret", "s3cr3t")
    store.jobs.put("<a@b>", {"status": "active"})
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert any(f.name.endswith("-wal") for f in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    store.close()


def test_an_existing_open_state_folder_is_tightened(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "meta.sqlite").touch()
    (folder / "meta.sqlite").chmod(0o644)
    Store(folder).close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "meta.sqlite").stat().st_mode) == 0o600


def test_the_state_lock_is_private_too(tmp_path):
    from bridge.statelock import lock_state

    handle = lock_state(tmp_path / "state")
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "bridge.lock").stat().st_mode) == 0o600
    handle.close()


def test_delete_if_equal_keeps_a_value_rewritten_meanwhile(tmp_path):
    store = Store(tmp_path)
    store.quarantine.put("<a@b>", {"reason": "loop", "at": 1.5})
    seen = store.quarantine.get("<a@b>")
    other = Store(tmp_path)  # another process rewrites it, e.g. the bridge quarantines it again
    other.quarantine.put("<a@b>", {"reason": "too large", "at": 2.5})
    assert store.quarantine.delete_if_equal("<a@b>", seen) is False
    assert store.quarantine.get("<a@b>") == {"reason": "too large", "at": 2.5}
    assert store.quarantine.delete_if_equal("<a@b>", {"reason": "too large", "at": 2.5}) is True
    assert store.quarantine.get("<a@b>") is None and "<a@b>" not in other.quarantine
    store.jobs.put("j", {"status": "done", "n": 1})
    assert store.jobs.delete_if_equal("j", {"status": "done", "n": 1}) and "j" not in store.jobs
    other.close()
    store.close()
