"""`bridge state backup|restore|stats`: a consistent copy of the state folder while the bridge
runs, putting one back into a stopped bridge's folder, and what the tables hold.

Each table file is copied with SQLite's online backup (a consistent snapshot of that file even
while the bridge writes it). Tables are copied in the order the pipeline writes them: the job
journal first, the outbox after it, ticket records and meta last. A job copied at an earlier
moment than the outbox only re-runs stages whose effects are already queued under the same keys
(idempotent), so a restored copy never loses an effect and never doubles one.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.errors import ConfigurationError
from bridge.pipeline.ingest import RESTORED_KEY
from bridge.store import FILE_MODE, Store, private_file, private_folder

FORMAT = 1
ORDER = ("jobs", "quarantine", "messages", "limits", "outbox", "tickets", "threads", "meta")


def _snapshot(source: Path, target: Path) -> int:
    """Copy one table file with the online backup API; returns its row count."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        tables = [row[0] for row in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(dst.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in tables)
    finally:
        src.close()
        dst.close()


def backup(state_dir: str | Path, archive: str | Path) -> dict[str, Any]:
    """Write a .tar.gz of every table and the stored OAuth2 tokens (0600: it holds secrets)."""
    state, archive = Path(state_dir), Path(archive)
    manifest: dict[str, Any] = {"format": FORMAT, "created_at": time.time(), "tables": {}, "files": []}
    with tempfile.TemporaryDirectory(prefix="bridge-backup-") as scratch:
        for name in ORDER:
            source = state / f"{name}.sqlite"
            if source.exists():
                manifest["tables"][name] = _snapshot(source, Path(scratch) / f"{name}.sqlite")
        tokens = sorted((state / "oauth").glob("*.json")) if (state / "oauth").is_dir() else []
        partial = archive.with_name(archive.name + ".partial")
        partial.touch(mode=FILE_MODE)
        private_file(partial)
        with tarfile.open(partial, "w:gz") as tar:
            for name in manifest["tables"]:
                tar.add(Path(scratch) / f"{name}.sqlite", arcname=f"{name}.sqlite")
            for token in tokens:
                tar.add(token, arcname=f"oauth/{token.name}")
                manifest["files"].append(f"oauth/{token.name}")
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime, info.mode = len(data), int(time.time()), FILE_MODE
            tar.addfile(info, io.BytesIO(data))
        partial.replace(archive)
    return manifest


def restore(archive: str | Path, state_dir: str | Path) -> dict[str, Any]:
    """Put a backup into ``state_dir``, which must hold no tables yet (a new or emptied folder);
    the caller holds the state lock, so no bridge runs on it."""
    state = Path(state_dir)
    private_folder(state)
    present = [p.name for p in state.glob("*.sqlite")]
    if present:
        raise ConfigurationError(f"state restore: {state} already holds {', '.join(sorted(present))}: "
                                 "restore into a new (or emptied) state folder")
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        if "manifest.json" not in members:
            raise ConfigurationError(f"state restore: {archive} is not a bridge state backup (no manifest)")
        extracted = tar.extractfile(members["manifest.json"])
        assert extracted is not None
        manifest = json.loads(extracted.read())
        if manifest.get("format") != FORMAT:
            raise ConfigurationError(f"state restore: backup format {manifest.get('format')} is not {FORMAT}")
        wanted = [f"{name}.sqlite" for name in manifest["tables"]] + list(manifest.get("files", []))
        for name in wanted:
            member = members.get(name)
            if member is None or not member.isfile() or name.startswith("/") or ".." in Path(name).parts:
                raise ConfigurationError(f"state restore: {name} missing or unsafe in the backup")
        for name in wanted:
            target = state / name
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = tar.extractfile(members[name])
            assert source is not None
            with open(target, "wb") as handle:
                handle.write(source.read())
            private_file(target)
    for name in manifest["tables"]:
        check = sqlite3.connect(state / f"{name}.sqlite")
        try:
            verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
        if verdict != "ok":
            raise ConfigurationError(f"state restore: {name}.sqlite is damaged ({verdict})")
    store = Store(state)
    try:  # for the first hour the ticket stage looks before it creates (bridge/pipeline/ingest.py)
        store.meta.put(RESTORED_KEY, {"backup_at": manifest["created_at"], "restored_at": time.time()})
    finally:
        store.close()
    return manifest


def stats(state_dir: str | Path) -> list[str]:
    """Rows and size of each table, the oldest unfinished job and pending effect, dead letters."""
    state = Path(state_dir)
    store = Store(state)
    try:
        now = time.time()
        lines = []
        for table in store.tables():
            path = state / f"{table.name}.sqlite"
            size = sum(p.stat().st_size for p in state.glob(f"{table.name}.sqlite*"))
            lines.append(f"{table.name:<11} {len(table):>8} rows  {size / 1024:>9.1f} KiB  {path.name}")
        active = [job for _, job in store.jobs.items() if job.get("status") == "active"]
        pending = [effect for _, effect in store.outbox.items() if effect.get("status") == "pending"]
        dead = sum(1 for _, effect in store.outbox.items() if effect.get("status") == "dead")
        oldest_job = min((job.get("created_at", now) for job in active), default=None)
        oldest_effect = min((effect.get("created_at", now) for effect in pending), default=None)
        lines.append(f"unfinished jobs: {len(active)}" + (f", oldest {now - oldest_job:.0f}s old" if oldest_job else ""))
        lines.append(f"pending effects: {len(pending)}" +
                     (f", oldest {now - oldest_effect:.0f}s old" if oldest_effect else "") + f"; dead letters: {dead}")
        lines.append(f"quarantined emails: {len(store.quarantine)}")
        return lines
    finally:
        store.close()
