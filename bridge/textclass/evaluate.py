"""Scores of a classifier's outcomes on a labelled split: precision and recall of acting, recall
with a human's help, per language, the confusion of labels and outcomes, and the misses; for a
many-label classifier (the ticket categories) precision and recall per label the same way.

Shared by the training script (dev split), bench/classify and the held-out test (test split), so
the figures a model was tuned on and the figures it is judged on are computed the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bridge.textclass.corpus import LANGS, Example

OUTCOMES = ("act", "ask", "skip")


@dataclass
class Scores:
    """Counts over one group of examples; ``positive`` is the label that should be acted on."""

    positive: str
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, outcome) → count

    def add(self, label: str, outcome: str) -> None:
        self.confusion[(label, outcome)] += 1

    def _count(self, *, label: str | None = None, outcomes: tuple[str, ...] = OUTCOMES, positive: bool | None = None) -> int:
        return sum(n for (lab, out), n in self.confusion.items()
                   if out in outcomes and (label is None or lab == label)
                   and (positive is None or (lab == self.positive) == positive))

    @property
    def total(self) -> int:
        return sum(self.confusion.values())

    @property
    def act_precision(self) -> float:
        acted = self._count(outcomes=("act",))
        return self._count(outcomes=("act",), positive=True) / acted if acted else 1.0

    @property
    def act_recall(self) -> float:
        positives = self._count(positive=True)
        return self._count(outcomes=("act",), positive=True) / positives if positives else 1.0

    @property
    def act_ask_recall(self) -> float:
        positives = self._count(positive=True)
        return self._count(outcomes=("act", "ask"), positive=True) / positives if positives else 1.0

    @property
    def ask_share(self) -> float:
        return self._count(outcomes=("ask",)) / self.total if self.total else 0.0

    def summary(self) -> dict[str, float]:
        return {"act_precision": self.act_precision, "act_recall": self.act_recall,
                "act_ask_recall": self.act_ask_recall, "ask_share": self.ask_share}


@dataclass
class Evaluation:
    """Scores overall and per language, and the examples that were decided wrongly."""

    overall: Scores
    by_lang: dict[str, Scores]
    wrong: list[tuple[Example, str, str]]  # (example, outcome, why it is wrong)


def evaluate(examples: list[Example], outcomes: list[str], positive: str, *,
             evidence: list[str] | None = None) -> Evaluation:
    """``outcomes[i]`` is what was decided for ``examples[i]``: acting on a non-positive or
    skipping a positive is wrong; ``evidence[i]`` (score, cues) is shown beside a wrong one."""
    overall = Scores(positive)
    by_lang = {lang: Scores(positive) for lang in LANGS}
    wrong: list[tuple[Example, str, str]] = []
    for index, (example, outcome) in enumerate(zip(examples, outcomes, strict=True)):
        overall.add(example.label, outcome)
        by_lang.setdefault(example.lang, Scores(positive)).add(example.label, outcome)
        note = evidence[index] if evidence else ""
        if outcome == "act" and example.label != positive:
            wrong.append((example, outcome, f"acted on {example.label} {note}".strip()))
        elif outcome == "skip" and example.label == positive:
            wrong.append((example, outcome, f"skipped {positive} {note}".strip()))
    return Evaluation(overall, by_lang, wrong)


def confusion_table(scores: Scores, labels: list[str]) -> str:
    rows = [f"    {'label':<14}" + "".join(f"{o:>7}" for o in OUTCOMES)]
    for label in labels:
        rows.append(f"    {label:<14}" + "".join(f"{scores.confusion[(label, o)]:>7}" for o in OUTCOMES))
    return "\n".join(rows)


def report(evaluation: Evaluation, labels: list[str], *, show_wrong: int = 50) -> str:
    """The evaluation as text: figures overall and per language, confusion matrices, the wrong ones."""
    lines = []

    def figures(name: str, scores: Scores) -> None:
        lines.append(f"  {name:<9} n={scores.total:<4} act precision {scores.act_precision:.3f}   "
                     f"act recall {scores.act_recall:.3f}   act+ask recall {scores.act_ask_recall:.3f}   "
                     f"asked {scores.ask_share:.1%}")

    figures("all", evaluation.overall)
    for lang, scores in evaluation.by_lang.items():
        if scores.total:
            figures(lang, scores)
    lines.append("  confusion (label × outcome), all languages:")
    lines.append(confusion_table(evaluation.overall, labels))
    for lang, scores in evaluation.by_lang.items():
        if scores.total:
            lines.append(f"  confusion, {lang}:")
            lines.append(confusion_table(scores, labels))
    lines.append(f"  wrongly decided: {len(evaluation.wrong)}")
    for example, _, why in evaluation.wrong[:show_wrong]:
        first = " ".join(example.text.split())[:110]
        lines.append(f"    {example.id} [{example.lang}/{example.pattern}] {why}: {example.subject!r} {first!r}")
    return "\n".join(lines)


@dataclass
class LabelEvaluation:
    """A many-label classifier (the ticket categories) on a split: precision and recall per label,
    overall and per language, and the examples given the wrong label."""

    labels: list[str]
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (label, predicted) → count
    by_lang: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    wrong: list[tuple[Example, str, str]] = field(default_factory=list)  # (example, predicted, evidence)

    @staticmethod
    def _figures(pairs: Counter[tuple[str, str]], label: str) -> tuple[float, float, int]:
        hit = pairs[(label, label)]
        predicted = sum(n for (_, got), n in pairs.items() if got == label)
        actual = sum(n for (lab, _), n in pairs.items() if lab == label)
        return (hit / predicted if predicted else 1.0, hit / actual if actual else 1.0, actual)

    def precision_recall(self, label: str, lang: str | None = None) -> tuple[float, float, int]:
        """(precision, recall, examples with this label) overall or in one language."""
        return self._figures(self.pairs if lang is None else self.by_lang.get(lang, Counter()), label)

    @property
    def accuracy(self) -> float:
        total = sum(self.pairs.values())
        return sum(n for (lab, got), n in self.pairs.items() if lab == got) / total if total else 1.0

    @property
    def macro_f1(self) -> float:
        scores = []
        for label in self.labels:
            precision, recall, _ = self.precision_recall(label)
            scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        return sum(scores) / len(scores) if scores else 1.0


def evaluate_labels(examples: list[Example], predicted: list[str], labels: list[str], *,
                    evidence: list[str] | None = None) -> LabelEvaluation:
    """``predicted[i]`` is the label given to ``examples[i]``; ``evidence[i]`` is shown beside a wrong one."""
    result = LabelEvaluation(labels=list(labels))
    for index, (example, got) in enumerate(zip(examples, predicted, strict=True)):
        result.pairs[(example.label, got)] += 1
        result.by_lang.setdefault(example.lang, Counter())[(example.label, got)] += 1
        if got != example.label:
            result.wrong.append((example, got, evidence[index] if evidence else ""))
    return result


def labels_report(evaluation: LabelEvaluation, *, show_wrong: int = 50) -> str:
    """The evaluation as text: precision and recall per label (overall and per language), the
    confusion of labels, the wrongly labelled examples."""
    labels = evaluation.labels
    langs = [lang for lang in LANGS if evaluation.by_lang.get(lang)] + sorted(
        set(evaluation.by_lang) - set(LANGS))
    lines = [f"  accuracy {evaluation.accuracy:.3f}   macro F1 {evaluation.macro_f1:.3f}   "
             f"n={sum(evaluation.pairs.values())}",
             f"    {'label':<12}{'n':>4}{'precision':>11}{'recall':>8}" + "".join(f"{lang:>16}" for lang in langs)]
    for label in labels:
        precision, recall, count = evaluation.precision_recall(label)
        per_lang = "".join(f"{'%.2f/%.2f' % evaluation.precision_recall(label, lang)[:2]:>16}" for lang in langs)
        lines.append(f"    {label:<12}{count:>4}{precision:>11.3f}{recall:>8.3f}{per_lang}")
    lines.append("  confusion (label × given):")
    lines.append(f"    {'':<12}" + "".join(f"{label[:8]:>9}" for label in labels))
    for label in labels:
        lines.append(f"    {label:<12}" + "".join(f"{evaluation.pairs[(label, got)]:>9}" for got in labels))
    lines.append(f"  wrongly labelled: {len(evaluation.wrong)}")
    for example, got, note in evaluation.wrong[:show_wrong]:
        first = " ".join(example.text.split())[:100]
        lines.append(f"    {example.id} [{example.lang}/{example.pattern}] {example.label} → {got} {note}: "
                     f"{example.subject!r} {first!r}")
    return "\n".join(lines)
