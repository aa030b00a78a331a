"""The text-classification parts: the sender's own words, the linear model and its artefact,
and the three outcomes of the login intent from given evidence."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from bridge.automation.classify import MAX_TEXT_CHARS, ClassifierConfig
from bridge.automation.intent import Evidence, IntentClassifier, IntentConfig
from bridge.textclass.cues import cues_in
from bridge.textclass.model import LinearTextModel, features, fold
from bridge.textclass.own_words import own_words

# ---------------------------------------------------------------- own words


def test_quoted_history_is_not_the_senders_words() -> None:
    text = ("Thanks, I can log in now!\n\nOn Mon, 30 Nov 2026 at 09:12, IT Desk <it@school.example> wrote:\n"
            "> Hi, we unlocked your account.\n>\n> On Mon, 30 Nov 2026, Ann wrote:\n>> I'm locked out of the LMS")
    parts = own_words(text)
    assert parts.own == "Thanks, I can log in now!"
    assert parts.forwarded == ""


def test_vietnamese_reply_header_cuts_the_history() -> None:
    text = ("ok rồi anh, em vào được rồi\n\nVào Th 2, 9 thg 11, 2026 lúc 10:12 Phòng CNTT <cntt@x.edu.vn> đã viết:\n"
            "> Em thử lại nhé\n")
    assert own_words(text).own == "ok rồi anh, em vào được rồi"


def test_forwarded_mail_is_kept_apart_from_the_senders_line() -> None:
    text = ("now I can't get in at all, please help\n\n---------- Forwarded message ---------\n"
            "From: LMS <noreply@lms.example>\nSubject: Your account was deactivated\n\nYour account was deactivated.")
    parts = own_words(text)
    assert parts.own == "now I can't get in at all, please help"
    assert "deactivated" in parts.forwarded


def test_signature_after_a_sign_off_is_dropped_but_text_after_a_sign_off_is_not() -> None:
    signed = own_words("I'm locked out of Moodle.\n\nKind regards,\nAnn Lee\nHead of Maths\n0123 456 789")
    assert signed.own == "I'm locked out of Moodle."
    story = "Thanks\n" + "\n".join(f"line {n} of a long explanation that goes on" for n in range(12))
    assert own_words(story).own.endswith("line 11 of a long explanation that goes on")


def test_mobile_footer_is_a_signature() -> None:
    assert own_words("ko vao dc lms\n\nGửi từ iPhone của tôi").own == "ko vao dc lms"


# ---------------------------------------------------------------- features and the model


def test_fold_reads_vietnamese_with_and_without_accents_alike() -> None:
    assert fold("Không ĐĂNG nhập  được") == fold("khong dang nhap duoc") == "khong dang nhap duoc"
    assert fold("I can’t") == "i can't"


def test_forwarded_words_are_features_of_their_own() -> None:
    counts = features("", "help", "account deactivated")
    assert counts["w:help"] == 1 and counts["f|w:deactivated"] == 1 and "w:deactivated" not in counts


def _tiny_model() -> LinearTextModel:
    return LinearTextModel(classes=("lms_login", "not_login"), vocabulary={"w:locked": 0, "w:thanks": 1},
                           idf=[1.0, 1.0], coef=[[4.0, -4.0], [-4.0, 4.0]], intercept=[0.0, 0.0], meta={"task": "t"})


def test_predict_is_a_softmax_over_linear_scores() -> None:
    model = _tiny_model()
    locked = model.predict(Counter({"w:locked": 1}))
    assert locked["lms_login"] == pytest.approx(1 / (1 + 2.718281828 ** -8), rel=1e-6)
    assert sum(locked.values()) == pytest.approx(1.0)
    assert model.predict(Counter({"w:unknown": 3})) == {"lms_login": 0.5, "not_login": 0.5}


def test_artefact_round_trips_and_is_byte_stable(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    _tiny_model().save(first)
    _tiny_model().save(second)
    assert first.read_bytes() == second.read_bytes()  # same model, same bytes: the artefact diffs honestly
    loaded = LinearTextModel.load(first)
    assert loaded.predict(Counter({"w:thanks": 2})) == _tiny_model().predict(Counter({"w:thanks": 2}))
    assert json.loads(gzip.decompress(first.read_bytes()))["meta"] == {"task": "t"}


# ---------------------------------------------------------------- the three outcomes


@pytest.fixture(scope="module")
def intent() -> IntentClassifier:
    return IntentClassifier(ClassifierConfig(), IntentConfig(act_threshold=0.8, ask_threshold=0.3))


def evidence(lms: float, other: float = 0.0, *, matched: tuple[str, ...] = (), excluded_by: str = "",
             other_system: str = "") -> Evidence:
    return Evidence({"lms_login": lms, "other_access": other, "not_login": 1 - lms - other}, matched, excluded_by,
                    other_system, "en")


@pytest.mark.parametrize(("given", "outcome"), [
    (evidence(0.95), "act"),
    (evidence(0.5), "ask"),
    (evidence(0.1), "skip"),
    (evidence(0.1, matched=("locked out",)), "ask"),  # an operator's phrase makes it at least a question
    (evidence(0.95, matched=("locked out",), excluded_by="newsletter"), "ask"),  # a veto never acts
    (evidence(0.95, other_system="vpn"), "ask"),  # another system: never an LMS action
    (evidence(0.05, 0.05, other_system="vpn"), "skip"),
])
def test_outcome_from_evidence(intent: IntentClassifier, given: Evidence, outcome: str) -> None:
    assert intent.decide(given).outcome == outcome


def test_another_systems_access_can_be_skipped_by_config() -> None:
    skipping = IntentClassifier(ClassifierConfig(), IntentConfig(other_system_outcome="skip"))
    assert skipping.decide(evidence(0.2, 0.7, other_system="payroll")).outcome == "skip"


def test_the_decision_says_its_score_and_cues(intent: IntentClassifier) -> None:
    decided = intent.decide(evidence(0.2, 0.7, other_system="vpn"))
    assert decided.describe() == ("ask (score 0.20; cues: other system: vpn, "
                                  "someone else's or another system's access)")


def test_the_system_named_first_in_the_senders_words_is_the_one_meant(intent: IntentClassifier) -> None:
    assert intent.evidence("VPN", "I can't connect to the VPN from home").other_system == "vpn"
    assert intent.evidence("", "Payroll won't let me in, the LMS is fine").other_system == "payroll"
    assert intent.evidence("", "phần mềm lương không vào được, trang học vẫn dùng ok").other_system == "phan mem luong"
    assert intent.evidence("", "Moodle says my account is locked; Teams works").other_system == ""
    quoted = "I'm locked out of moodle\n\nOn Mon, 30 Nov 2026, IT wrote:\n> is your vpn on?"
    assert intent.evidence("", quoted).other_system == ""


def test_thresholds_default_to_the_ones_tuned_with_the_model() -> None:
    packaged = IntentClassifier(ClassifierConfig(), IntentConfig())
    tuned = packaged.model.meta["thresholds"]
    assert (packaged.act, packaged.ask) == (tuned["act"], tuned["ask"])


@pytest.mark.parametrize(("text", "cue"), [
    ("My colleague Minh can't log in, I'm fine", "someone_else"),
    ("Học sinh lớp em không vào được LMS", "someone_else"),
    ("thanks, I can log in now", "solved"),
    ("em vào được rồi ạ", "solved"),
    ("How do I change my password?", "how_to"),
    ("lam the nao de doi mat khau", "how_to"),
    ("I didn't request this reset, is this phishing?", "notice"),
    ("The reset email looks odd but I can still log in fine", "still_works"),
    ("em vẫn đăng nhập bình thường, chỉ hỏi thôi", "still_works"),
])
def test_cues_read_folded_text_in_both_languages(text: str, cue: str) -> None:
    assert cue in cues_in(fold(text))


def test_a_plain_complaint_has_no_cue() -> None:
    assert cues_in(fold("I can't log in to Moodle since this morning")) == ()


@pytest.mark.parametrize("cue", ["someone_else", "still_works"])
def test_someone_elses_problem_or_a_working_login_is_never_acted_on(intent: IntentClassifier, cue: str) -> None:
    decided = intent.decide(evidence(0.99)._replace(text_cues=(cue,)))
    assert decided.outcome == "ask" and f"cue: {cue}" in decided.cues


def test_only_the_start_of_a_huge_body_is_read(intent: IntentClassifier) -> None:
    """A 20 MB body costs what its first 64 KB cost: what follows cannot change the decision."""
    filler = "Please see the attached timetable for next term.\n" * (MAX_TEXT_CHARS // 40)
    tail = "I can't connect to the VPN, my password is refused.\n" * (20 * 1024 * 1024 // 52)
    assert intent.evidence("VPN", tail[:500]).other_system == "vpn"
    assert intent.evidence("Timetable", filler + tail) == intent.evidence("Timetable", filler)
