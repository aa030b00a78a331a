#!/usr/bin/env python3
"""Train the login-intent model from the labelled corpus, tune its thresholds on the dev split,
write bridge/models/login_intent.json.gz. Reproducible: same corpus, same model bytes.

    .venv/bin/pip install scikit-learn   # training only; the bridge evaluates the model without it
    .venv/bin/python scripts/train_textclass.py

The test split is never read here: its score is measured by bench/classify and the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.automation.classify import ClassifierConfig, LoginClassifier  # noqa: E402
from bridge.automation.intent import IntentClassifier, IntentConfig, load_model  # noqa: E402
from bridge.textclass import corpus  # noqa: E402
from bridge.textclass.evaluate import evaluate  # noqa: E402
from bridge.textclass.model import LinearTextModel  # noqa: E402
from bridge.textclass.own_words import own_words  # noqa: E402

CORPUS = REPO / "tests" / "data" / "login_corpus"
OUT = REPO / "bridge" / "models" / "login_intent.json.gz"
CLASSES = ("lms_login", "not_login", "other_access")
MIN_WEIGHT = 0.005  # features whose every weight is smaller are dropped: a smaller file, the same answers


def vectors(examples: list[corpus.Example]) -> list[dict[str, int]]:
    """What the bridge computes for each email (IntentClassifier.counts, with the default rules)."""
    rules = LoginClassifier(ClassifierConfig())
    rows = []
    for example in examples:
        parts = own_words(example.text)
        rows.append(dict(IntentClassifier.counts(example.subject, parts, rules.classify(example.subject, parts.own))))
    return rows


def fit(train: list[corpus.Example], c: float):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression

    vectorizer = DictVectorizer()
    counts = vectorizer.fit_transform(vectors(train))
    tfidf = TfidfTransformer(sublinear_tf=True, smooth_idf=True, norm="l2")
    matrix = tfidf.fit_transform(counts)
    labels = [e.label for e in train]
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=0)
    model.fit(matrix, labels)
    names = vectorizer.get_feature_names_out()
    keep = [i for i in range(len(names)) if max(abs(model.coef_[k][i]) for k in range(len(model.classes_))) >= MIN_WEIGHT]
    return LinearTextModel(
        classes=tuple(str(x) for x in model.classes_),
        vocabulary={str(names[i]): n for n, i in enumerate(keep)},
        idf=[round(float(tfidf.idf_[i]), 5) for i in keep],
        coef=[[round(float(model.coef_[k][i]), 5) for i in keep] for k in range(len(model.classes_))],
        intercept=[round(float(x), 5) for x in model.intercept_],
        meta={},
    )


def dev_figures(classifier: IntentClassifier, examples: list[corpus.Example], evidence: list) -> dict[str, float]:
    outcomes = [classifier.decide(e).outcome for e in evidence]
    return evaluate(examples, outcomes, "lms_login").overall.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    files = [CORPUS / "train.yaml", CORPUS / "dev.yaml"]
    train, dev = corpus.load(files[0]), corpus.load(files[1])
    best = None
    for c in (3.0, 10.0, 30.0, 100.0):
        model = fit(train, c)
        model.save(args.out)
        load_model.cache_clear()
        probe = IntentClassifier(ClassifierConfig(), IntentConfig(model=str(args.out), act_threshold=1.0,
                                                                  ask_threshold=1.0))
        evidence = [probe.evidence(e.subject, e.text) for e in dev]
        for act in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
            for ask in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4):
                if ask >= act:
                    continue
                probe.act, probe.ask = act, ask
                figures = dev_figures(probe, dev, evidence)
                # Precision of acting first (a reset nobody asked for), then recall with a human, then alone,
                # then as few questions to humans as possible.
                key = (min(figures["act_precision"], 0.99), min(figures["act_ask_recall"], 0.97),
                       figures["act_recall"], -figures["ask_share"])
                if best is None or key > best[0]:
                    best = (key, c, act, ask, figures)
    assert best is not None
    _, c, act, ask, figures = best
    model = fit(train, c)
    model = LinearTextModel(model.classes, model.vocabulary, model.idf, model.coef, model.intercept, meta={
        "task": "login_intent",
        "thresholds": {"act": act, "ask": ask},
        "c": c,
        "corpus_sha256": corpus.digest(files),
        "train_examples": len(train),
        "dev_examples": len(dev),
        "dev": {k: round(v, 4) for k, v in figures.items()},
        "features": len(model.vocabulary),
    })
    model.save(args.out)
    print(f"C={c} act≥{act} ask≥{ask}: dev {figures}; {len(model.vocabulary)} features → {args.out} "
          f"({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
