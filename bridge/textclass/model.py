"""A linear text classifier (TF-IDF over character and word n-grams, multinomial logistic
regression) evaluated in plain Python from a small JSON artefact.

Training (scripts/train_textclass.py, with scikit-learn) and prediction share ``features``, so
the bridge computes exactly what the model was trained on without loading scikit-learn at run
time. Text is folded (lower case, no diacritics, đ → d): Vietnamese typed with and without
accents reads the same, and character n-grams absorb typos and run-together words ("khongvao",
"cant login"). The forwarded part of an email gets features of its own (prefix ``f|``), so the
model can weigh "your account was deactivated" in a forwarded notice differently from the
sender saying it.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.textclass.cues import cues_in

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MAX_CHARS = 4000  # of each part: people state the problem at the top; bounds the cost per email
CHAR_SIZES = (3, 4, 5)
CUE_WEIGHT = 3  # a cue (bridge/textclass/cues.py) counts as three occurrences: one phrase, strong evidence


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})


def fold(text: str) -> str:
    """Lower case, no accents (đ → d: it has no Unicode decomposition), one kind of apostrophe,
    runs of whitespace as one space: "Không đăng nhập được" reads as "khong dang nhap duoc"."""
    text = text.translate(_APOSTROPHES).replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(text.lower().split())


def _grams(text: str, prefix: str, counts: Counter[str]) -> None:
    words = _WORD.findall(fold(text[:MAX_CHARS]))
    for word in words:
        padded = f" {word} "
        for size in CHAR_SIZES:
            for start in range(max(1, len(padded) - size + 1)):
                counts[f"{prefix}c:{padded[start:start + size]}"] += 1
    for index, word in enumerate(words):
        counts[f"{prefix}w:{word}"] += 1
        if index:
            counts[f"{prefix}b:{words[index - 1]} {word}"] += 1


def features(subject: str, own: str, forwarded: str) -> Counter[str]:
    """The n-gram counts of one email: subject and own words together with their cues, the
    forwarded part apart."""
    counts: Counter[str] = Counter()
    _grams(f"{subject}\n{own}", "", counts)
    for cue in cues_in(fold(f"{subject}\n{own[:MAX_CHARS]}")):
        counts[f"cue:{cue}"] += CUE_WEIGHT
    if forwarded:
        _grams(forwarded, "f|", counts)
    return counts


@dataclass(frozen=True)
class LinearTextModel:
    """Classes, vocabulary, idf and weights as trained; ``predict`` gives a probability per class."""

    classes: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: list[float]
    coef: list[list[float]]  # per class, per feature
    intercept: list[float]
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "LinearTextModel":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        features_list = data["features"]
        return cls(
            classes=tuple(data["classes"]),
            vocabulary={name: index for index, name in enumerate(features_list)},
            idf=data["idf"],
            coef=data["coef"],
            intercept=data["intercept"],
            meta=data.get("meta", {}),
        )

    def save(self, path: str | Path) -> None:
        ordered = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        data = {"classes": list(self.classes), "features": ordered, "idf": self.idf, "coef": self.coef,
                "intercept": self.intercept, "meta": self.meta}
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # No name and no time in the gzip header: the same model gives the same bytes.
        Path(path).write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))

    def predict(self, counts: Counter[str]) -> dict[str, float]:
        """Sublinear TF-IDF, L2-normalised, then softmax over the linear scores."""
        weights: dict[int, float] = {}
        for name, count in counts.items():
            index = self.vocabulary.get(name)
            if index is not None:
                weights[index] = (1.0 + math.log(count)) * self.idf[index]
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        scores = [
            self.intercept[k] + sum(self.coef[k][index] * w for index, w in weights.items()) / norm
            for k in range(len(self.classes))
        ]
        top = max(scores)
        exps = [math.exp(score - top) for score in scores]
        total = sum(exps)
        return {name: value / total for name, value in zip(self.classes, exps)}
