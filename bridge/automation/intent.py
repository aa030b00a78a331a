"""Is this the sender's own LMS login problem? Three outcomes — act, ask a human, skip — from a
trained model, the configurable phrase rules and cues about which system is meant.

The model (bridge/textclass/model.py, trained by scripts/train_textclass.py on the labelled
corpus in tests/data/login_corpus/) reads the sender's own words (bridge/textclass/own_words.py)
and gives the probability of each label: ``lms_login`` (act on the account), ``other_access``
(an access problem, but another system's or another person's) and ``not_login``. The rules
(bridge/automation/classify.py) stay the operator's lever: a phrase of theirs makes the email at
least a question for a human, an exclusion of theirs keeps it from being acted on. Naming another
system (Microsoft 365, VPN, payroll… — configurable) first, before any name of the LMS ("payroll
won't let me in, the LMS is fine"), never leads to an LMS action. Only a confident model acts:
a reset nobody asked for is the costly mistake.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from bridge.automation.classify import (
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    Classification,
    ClassifierConfig,
    Language,
    LoginClassifier,
    detect_language,
)
from bridge.textclass.cues import cues_in
from bridge.textclass.model import CUE_WEIGHT, MAX_CHARS, LinearTextModel, features, fold
from bridge.textclass.own_words import Parts, own_words

Outcome = Literal["act", "ask", "skip"]
# Cues that never let the playbook act: the problem is someone else's, or the sender can still get
# in (a reset or an unlock would fix nothing they asked about).
NO_ACT_CUES = frozenset({"someone_else", "still_works"})
PACKAGED_MODEL = Path(__file__).resolve().parents[1] / "models" / "login_intent.json.gz"

DEFAULT_OTHER_SYSTEMS: tuple[str, ...] = (
    "microsoft 365", "office 365", "o365", "outlook", "teams", "onedrive", "sharepoint", "vpn", "wifi", "wi-fi",
    "hr portal", "hr system", "hr self-service", "pension portal", "payroll", "crm", "zoom", "sis", "sims",
    "powerschool", "vnedu", "smas", "library", "printer", "papercut", "remote desktop",
    "cổng nhân sự", "phần mềm lương", "phần mềm kế toán", "thư viện", "máy in",
)
DEFAULT_LMS_NAMES: tuple[str, ...] = (
    "lms", "moodle", "e-learning", "elearning", "learning portal", "learning platform", "course site",
    "course page", "training portal", "training site", "hệ thống học", "học trực tuyến", "trang học",
    "cổng đào tạo", "khóa học", "khoá học",
)


class IntentConfig(BaseModel):
    """Thresholds on the model's probability of ``lms_login``, and the names that say which system.

    Empty thresholds take the values tuned on the corpus's dev split (stored with the model).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = ""  # a model file; empty: the one packaged with the bridge
    act_threshold: float | None = Field(default=None, ge=0, le=1)
    ask_threshold: float | None = Field(default=None, ge=0, le=1)
    other_systems: tuple[str, ...] = DEFAULT_OTHER_SYSTEMS
    lms_names: tuple[str, ...] = DEFAULT_LMS_NAMES
    other_system_outcome: Literal["ask", "skip"] = "ask"


@dataclass(frozen=True)
class Intent:
    """The outcome with its evidence, for the ticket note and the escalation."""

    outcome: Outcome
    score: float  # P(lms_login)
    probabilities: dict[str, float]
    cues: tuple[str, ...]
    language: Language
    matched: tuple[str, ...] = ()  # rule phrases found
    excluded_by: str = ""
    other_system: str = ""  # the other system the access problem is with: never an LMS action

    @property
    def is_login(self) -> bool:
        """Worth the playbook's attention (act, or ask a human)."""
        return self.outcome != "skip"

    def describe(self) -> str:
        cues = f"; cues: {', '.join(self.cues)}" if self.cues else ""
        return f"{self.outcome} (score {self.score:.2f}{cues})"


class Evidence(NamedTuple):
    probabilities: dict[str, float]
    matched: tuple[str, ...]
    excluded_by: str
    other_system: str
    language: Language
    text_cues: tuple[str, ...] = ()  # bridge/textclass/cues.py: someone_else, solved, how_to, notice


def _names(names: tuple[str, ...]) -> re.Pattern[str] | None:
    folded = sorted({fold(n) for n in names if n.strip()}, key=len, reverse=True)
    if not folded:
        return None
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(n) for n in folded) + r")(?![a-z0-9])")


@lru_cache(maxsize=4)
def load_model(path: str) -> LinearTextModel:
    return LinearTextModel.load(path)


class IntentClassifier:
    """One instance serves every email; ``classify`` is CPU only (the playbook runs it off the loop)."""

    def __init__(self, rules: ClassifierConfig, cfg: IntentConfig) -> None:
        self.rules = LoginClassifier(rules)
        self.model = load_model(cfg.model or str(PACKAGED_MODEL))
        tuned = self.model.meta.get("thresholds", {})
        self.act = cfg.act_threshold if cfg.act_threshold is not None else float(tuned.get("act", 0.9))
        self.ask = cfg.ask_threshold if cfg.ask_threshold is not None else float(tuned.get("ask", 0.3))
        self.other_systems = _names(cfg.other_systems)
        self.lms_names = _names(cfg.lms_names)
        self.other_system_outcome: Outcome = cfg.other_system_outcome

    def classify(self, subject: str, text: str) -> Intent:
        return self.decide(self.evidence(subject, text))

    @staticmethod
    def counts(subject: str, parts: Parts, rules: Classification) -> Counter[str]:
        """The model's input: the n-grams and cues, and the phrase rules' verdict on the own words
        (``rule:match``, ``rule:excluded``) — training computes exactly this."""
        counts = features(subject, parts.own, parts.forwarded)
        if rules.matched:
            counts["rule:match"] += CUE_WEIGHT
        if rules.excluded_by:
            counts["rule:excluded"] += CUE_WEIGHT
        return counts

    def evidence(self, subject: str, text: str) -> Evidence:
        """What the decision rests on: the model's probabilities, the rules' verdict on the own
        words, another system named before any name of the LMS, the cues, the language. Reads
        what the phrase rules read (the start of a huge body), and of the own words as much as
        the model does."""
        subject, text = subject[:MAX_SUBJECT_CHARS], text[:MAX_TEXT_CHARS]
        parts = own_words(text)
        rules = self.rules.classify(subject, parts.own)
        probabilities = self.model.predict(self.counts(subject, parts, rules))
        own = fold(f"{subject}\n{parts.own[:MAX_CHARS]}")
        return Evidence(probabilities, rules.matched, rules.excluded_by, self._other_system(own),
                        detect_language(subject, parts.own or text), cues_in(own))

    def _other_system(self, own: str) -> str:
        """The other system named in the folded own words before any name of the LMS, or ""."""
        other = self.other_systems.search(own) if self.other_systems else None
        if other is None:
            return ""
        lms = self.lms_names.search(own, 0, other.start()) if self.lms_names else None
        return "" if lms else other.group(0)

    def decide(self, evidence: Evidence) -> Intent:
        """The outcome from the evidence and the thresholds."""
        probabilities, matched, excluded_by, other_system, language, text_cues = evidence
        score = probabilities.get("lms_login", 0.0)
        access = score + probabilities.get("other_access", 0.0)
        cues: list[str] = []
        if matched:
            cues.append(f"phrase: {matched[0]}")
        if excluded_by:
            cues.append(f"excluded: {excluded_by}")
        if other_system:
            cues.append(f"other system: {other_system}")
        if probabilities.get("other_access", 0.0) > score:
            cues.append("someone else's or another system's access")
        cues.extend(f"cue: {cue}" for cue in text_cues)
        if other_system:
            outcome: Outcome = self.other_system_outcome if access >= self.ask else "skip"
        elif score >= self.act and not excluded_by and not NO_ACT_CUES.intersection(text_cues):
            outcome = "act"
        elif score >= self.ask or (matched and not excluded_by):
            outcome = "ask"
        else:
            outcome = "skip"
        return Intent(outcome=outcome, score=score, probabilities=probabilities, cues=tuple(cues),
                      language=language, matched=matched, excluded_by=excluded_by, other_system=other_system)
