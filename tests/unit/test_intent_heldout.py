"""The login intent on the held-out test split of tests/data/login_corpus/: the targets of the
issue, overall and per language, and a model that was trained on the corpus as committed.

The split is never used for tuning (scripts/train_textclass.py reads train and dev only);
bench/classify prints the same figures with the confusion matrices and the wrong ones.

The floors below are what the packaged model reaches today (act precision 0.968, act recall
0.929, act + ask recall 0.990, English the lowest act precision of a language at 0.939, on 195
emails), or the target where it is reached, so a worse model fails here. The issue's targets
(TARGETS) for act precision, overall and in English, are not reached: bench/classify prints the gap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.automation.classify import ClassifierConfig
from bridge.automation.intent import IntentClassifier, IntentConfig
from bridge.textclass import corpus
from bridge.textclass.evaluate import Evaluation, evaluate

SPLITS = Path(__file__).resolve().parents[1] / "data" / "login_corpus"
FLOORS = {"act_precision": 0.96, "act_ask_recall": 0.95, "act_recall": 0.85}
LANG_PRECISION_FLOOR = 0.93
TARGETS = {"act_precision": 0.98, "act_ask_recall": 0.95, "act_recall": 0.85}  # the issue's; bench/classify


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return IntentClassifier(ClassifierConfig(), IntentConfig())


@pytest.fixture(scope="module")
def held_out(classifier: IntentClassifier) -> Evaluation:
    examples = corpus.load(SPLITS / "test.yaml")
    return evaluate(examples, [classifier.classify(e.subject, e.text).outcome for e in examples], "lms_login")


def test_the_corpus_is_large_mixed_and_split_once() -> None:
    sources = [e for path in sorted(SPLITS.glob("source_*.yaml")) for e in corpus.load(path)]
    assert len(sources) >= 600
    assert len({e.id for e in sources}) == len(sources)
    vietnamese = [e for e in sources if e.lang in ("vi", "vi_plain")]
    assert sum(e.lang == "vi_plain" for e in vietnamese) >= len(vietnamese) / 3 - 1
    split = {name: {e.id for e in corpus.load(SPLITS / f"{name}.yaml")} for name in ("train", "dev", "test")}
    assert split["test"].isdisjoint(split["train"] | split["dev"]) and split["train"].isdisjoint(split["dev"])
    assert {e.id for e in sources} == (split["train"] | split["dev"] | split["test"]) - {
        i for i in split["train"] if i.startswith("tuned-")}
    assert all(corpus.split_of(e.id) == name for name, ids in split.items() for e in sources if e.id in ids)


def test_the_packaged_model_was_trained_on_the_committed_train_and_dev_splits(classifier: IntentClassifier) -> None:
    assert classifier.model.meta["corpus_sha256"] == corpus.digest([SPLITS / "train.yaml", SPLITS / "dev.yaml"])


def test_acting_is_precise_and_recall_holds_on_the_held_out_split(held_out: Evaluation) -> None:
    figures = held_out.overall.summary()
    assert all(figures[name] >= floor for name, floor in FLOORS.items()), figures
    assert all(FLOORS[name] <= target for name, target in TARGETS.items())  # a floor never exceeds the target


@pytest.mark.parametrize("lang", ["en", "vi", "vi_plain"])
def test_no_language_acts_imprecisely(held_out: Evaluation, lang: str) -> None:
    scores = held_out.by_lang[lang]
    assert scores.total >= 20
    assert scores.act_precision >= LANG_PRECISION_FLOOR, (lang, scores.summary())
