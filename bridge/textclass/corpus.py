"""Labelled email corpora (YAML lists of id, lang, label, pattern, subject, text) and their splits.

Read by the training script, the evaluation bench and the tests; the running bridge never
reads a corpus, only the model trained from one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

LANGS = ("en", "vi", "vi_plain")


@dataclass(frozen=True)
class Example:
    """One labelled email."""

    id: str
    lang: str
    label: str
    pattern: str
    subject: str
    text: str


def load(path: str | Path) -> list[Example]:
    items = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    return [Example(id=str(i["id"]), lang=str(i["lang"]), label=str(i["label"]), pattern=str(i.get("pattern", "")),
                    subject=str(i.get("subject") or ""), text=str(i.get("text") or "")) for i in items]


def digest(paths: list[Path]) -> str:
    """SHA-256 over the files' bytes: which corpus a model was trained on."""
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()


def split_of(example_id: str, shares: tuple[int, int, int] = (60, 20, 20)) -> str:
    """train / dev / test, from a hash of the id: fixed once written, whatever the order of the files."""
    bucket = int(hashlib.sha256(example_id.encode()).hexdigest()[:8], 16) % sum(shares)
    if bucket < shares[0]:
        return "train"
    return "dev" if bucket < shares[0] + shares[1] else "test"
