#!/usr/bin/env python3
"""Split a written corpus (tests/data/login_corpus/source_*.yaml, or with ``--task categories``
tests/data/categories/source_*.yaml) once into train / dev / test files, by a hash of each id
(bridge.textclass.corpus.split_of: 60/20/20); the login task adds the older tuned set
(tests/data/login_emails.yaml) to train only: it was tuned on, so it may not be scored.

    .venv/bin/python scripts/split_corpus.py [--task login|categories]

Run once when the sources change; the split files are committed and the test split is never
used for tuning (scripts/train_textclass.py reads train and dev only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.textclass import corpus  # noqa: E402

DATA = REPO / "tests" / "data"
FOLDERS = {"login": DATA / "login_corpus", "categories": DATA / "categories"}
OLD_LABELS = {"login": "lms_login", "other": "not_login"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(FOLDERS), default="login")
    task = parser.parse_args().task
    folder = FOLDERS[task]
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for source in sorted(folder.glob("source_*.yaml")):
        for item in yaml.safe_load(source.read_text(encoding="utf-8")):
            splits[corpus.split_of(str(item["id"]))].append(item)
    if task == "login":
        for item in yaml.safe_load((DATA / "login_emails.yaml").read_text(encoding="utf-8")):
            splits["train"].append({"id": f"tuned-{item['id']}", "lang": item["lang"],
                                    "label": OLD_LABELS[item["label"]], "pattern": "tuned_set",
                                    "subject": item.get("subject") or "", "text": item.get("text") or ""})
    for name, items in splits.items():
        header = (f"# The login corpus, {name} split: written by scripts/split_corpus.py from source_*.yaml "
                  "(and, for train, tests/data/login_emails.yaml). Do not edit by hand.\n") if task == "login" else (
                  f"# The ticket-category corpus, {name} split: written by scripts/split_corpus.py --task categories "
                  "from source_*.yaml. Do not edit by hand.\n")
        body = yaml.safe_dump(items, allow_unicode=True, sort_keys=False, width=100)
        (folder / f"{name}.yaml").write_text(header + body, encoding="utf-8")
        print(f"{name}: {len(items)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
