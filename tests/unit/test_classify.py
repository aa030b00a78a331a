"""The login-problem classifier: folding, language detection, phrase rules, measured precision and recall."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bridge.automation.classify import (
    DEFAULT_PHRASES,
    Classification,
    ClassifierConfig,
    LoginClassifier,
    detect_language,
    fold,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "login_emails.yaml"


@pytest.fixture(scope="module")
def classifier() -> LoginClassifier:
    return LoginClassifier(ClassifierConfig())


# ---------------------------------------------------------------- fold


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Không đăng nhập được", "khong dang nhap duoc"),
        ("ĐĂNG  NHẬP\n\tĐƯỢC ", "dang nhap duoc"),
        ("Tài khoản bị khoá", "tai khoan bi khoa"),  # old-style tone placement
        ("Tài khoản bị khóa", "tai khoan bi khoa"),
        ("I can’t log in", "i can't log in"),
        ("Ｌｏｇｉｎ ﬁx", "login fix"),  # NFKD: full-width letters and ligatures
        ("", ""),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


# ---------------------------------------------------------------- detect_language


@pytest.mark.parametrize(
    ("subject", "text", "language"),
    [
        ("Không đăng nhập được", "Em không vào được hệ thống ạ.", "vi"),
        ("quen mat khau", "minh quen mat khau roi, giup minh voi", "vi"),  # unaccented
        ("Cannot login - Hỗ trợ", "Dear team, em cannot login vào portal. Cảm ơn ạ.", "vi"),  # mixed
        ("Can't log in", "Since this morning I can't log in to the portal. Please help.", "en"),
        (
            "Password",
            "I forgot my password and the reset email never arrives. Best regards, Trần Thị Hường",
            "en",
        ),  # a Vietnamese name in an English email
        ("Re: Résumé", "Please find my résumé attached for the café manager role.", "en"),  # French accents
        ("Thanks", "Thanks, I can log in now.\n> Chào em, anh đã mở khóa tài khoản, em thử lại nhé.", "en"),
        ("", "", "en"),
    ],
)
def test_detect_language(subject: str, text: str, language: str) -> None:
    assert detect_language(subject, text) == language


# ---------------------------------------------------------------- classify: spelling variants


@pytest.mark.parametrize(
    "sentence",
    [
        "I can't log in",
        "I CANNOT LOGIN",
        "i cant sign-in",
        "I can not sign in",
        "Unable to log on since Monday",
        "I am not able to log into the LMS",
        "I can’t log in",  # curly apostrophe
        "It won't let me log in",
        "I can't seem to log in",
        "my password is incorrect",
        "Login failed",
        "I forgot my pasword",  # typo
        "my account has been locked",
        "my accnt is suspended",
        "Access denied when I try to log in",
        "Em không đăng nhập được ạ",
        "em ko đăng nhập đc",
        "khong dang nhap duoc",
        "e k dang nhap dc",
        "quên mật khẩu",
        "tk của em bị khóa",
        "acc cua minh bi khoa roi",
        "Tài khoản bị khoá",
        "không vào được tài khoản",
    ],
)
def test_login_variants_match(classifier: LoginClassifier, sentence: str) -> None:
    result = classifier.classify("", sentence)
    assert result.is_login, result
    assert result.matched


@pytest.mark.parametrize(
    "sentence",
    [
        "Could you reissue my certificate?",
        "Access denied to the shared folder for the marketing team",  # no account or login word near it
        "The login page has a typo",
        "Our bank account details have changed",
        "Anh chị mở khóa học mới giúp em",  # khóa học = course, not a lock
        "Cho em xin số tài khoản ngân hàng để chuyển khoản học phí",
        "Em muốn đăng ký khóa học Excel",  # đăng ký = register, not đăng nhập
        "I updated my account. The locked door in room 2 is broken.",  # "..." stops at a sentence end
    ],
)
def test_other_topics_do_not_match(classifier: LoginClassifier, sentence: str) -> None:
    assert not classifier.classify("", sentence).is_login


# ---------------------------------------------------------------- classify: the rules


def test_exclusion_vetoes_and_says_which(classifier: LoginClassifier) -> None:
    result = classifier.classify("Tip of the week", "If you can't log in, use the self-service reset page.")
    assert result == Classification(
        is_login=False, matched=("can't ... log in",), excluded_by="if you can't log in", language="en"
    )


def test_exclusion_vetoes_a_strong_phrase_too(classifier: LoginClassifier) -> None:
    """Vetoes are absolute: the maintenance notice says "not able to log in" and is still not a request."""
    result = classifier.classify("Maintenance", "You will not be able to log in on Saturday night.")
    assert not result.is_login
    assert result.excluded_by == "you will not be able to log in"


def test_no_match_reports_nothing(classifier: LoginClassifier) -> None:
    result = classifier.classify("Printer", "The printer on floor 3 is jammed, and unsubscribe me please.")
    assert result == Classification(is_login=False, matched=(), excluded_by="", language="en")


def test_quoted_lines_are_ignored(classifier: LoginClassifier) -> None:
    text = "Thanks for the quick answer!\n\n> I can't log in to the portal.\n  > My account is locked."
    assert not classifier.classify("Thank you", text).is_login


def test_reply_subject_is_ignored_but_forward_subject_counts(classifier: LoginClassifier) -> None:
    assert not classifier.classify("Re: Can't log in", "Works now, thank you!").is_login
    assert not classifier.classify("RE[2]: Không đăng nhập được", "Dạ được rồi ạ, em cảm ơn!").is_login
    assert classifier.classify("Re: Can't log in", "Still the same: wrong password.").is_login
    assert classifier.classify("Fwd: Can't log in", "See below, from our new starter.").is_login


def test_language_travels_with_the_verdict(classifier: LoginClassifier) -> None:
    assert classifier.classify("Quên mật khẩu", "Em quên mật khẩu rồi ạ.").language == "vi"
    assert classifier.classify("Forgot password", "I forgot my password.").language == "en"


# ---------------------------------------------------------------- config


def test_fields_choose_where_to_look() -> None:
    text_only = LoginClassifier(ClassifierConfig(fields=("text",)))
    assert not text_only.classify("Can't log in", "See subject.").is_login
    assert text_only.classify("Hello", "I can't log in.").is_login


def test_phrases_are_data() -> None:
    custom = LoginClassifier(ClassifierConfig(phrases=("vpn ... down",), exclude_phrases=("planned",)))
    assert custom.classify("", "The VPN is completely down").matched == ("vpn ... down",)
    assert not custom.classify("", "Planned work: the VPN will be down").is_login
    assert not custom.classify("", "I can't log in").is_login


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phrases": ("...",)},
        {"phrases": ("... locked",)},
        {"exclude_phrases": ("log in ...",)},
        {"phrases": ("!!",)},
        {"fields": ()},
        {"fields": ("html",)},
        {"threshold": 0.5},
    ],
)
def test_config_rejects(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        ClassifierConfig(**kwargs)


def test_config_is_frozen() -> None:
    cfg = ClassifierConfig()
    with pytest.raises(ValidationError):
        cfg.phrases = ()  # type: ignore[misc]
    assert cfg.phrases == DEFAULT_PHRASES


# ---------------------------------------------------------------- the labelled set


def _rates(tp: int, fp: int, fn: int) -> tuple[float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def test_precision_and_recall_on_the_labelled_set(classifier: LoginClassifier) -> None:
    emails = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    assert len(emails) >= 150
    assert len({e["id"] for e in emails}) == len(emails)
    shape = Counter((e["lang"], e["label"]) for e in emails)
    assert shape[("en", "login")] >= 45 and shape[("vi", "login")] >= 45
    assert shape[("en", "other")] + shape[("vi", "other")] >= 60
    assert set(shape) <= {(lang, label) for lang in ("en", "vi") for label in ("login", "other")}

    outcome: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    wrong_language: list[str] = []
    for email in emails:
        result = classifier.classify(email["subject"], email["text"])
        gold = email["label"] == "login"
        kind = ("tp" if gold else "fp") if result.is_login else ("fn" if gold else "tn")
        outcome[("all", kind)] += 1
        outcome[(email["lang"], kind)] += 1
        if kind in ("fp", "fn"):
            wrong.append(f"{email['id']}({kind}: {result.excluded_by or ', '.join(result.matched) or 'no phrase'})")
        if result.language != email["lang"]:
            wrong_language.append(email["id"])

    print(f"\nlabelled set: {len(emails)} emails {dict(sorted(shape.items()))}")
    for scope in ("all", "en", "vi"):
        tp, fp, fn, tn = (outcome[(scope, k)] for k in ("tp", "fp", "fn", "tn"))
        precision, recall = _rates(tp, fp, fn)
        print(f"  {scope:>3}: precision {precision:.3f}  recall {recall:.3f}  (tp {tp} fp {fp} fn {fn} tn {tn})")
    print(f"  misclassified: {', '.join(wrong) or 'none'}")
    print(f"  language detection: {len(emails) - len(wrong_language)}/{len(emails)} right {wrong_language}")

    precision, recall = _rates(outcome[("all", "tp")], outcome[("all", "fp")], outcome[("all", "fn")])
    assert precision >= 0.97
    assert recall >= 0.90
    assert len(wrong_language) <= len(emails) // 50


# ---------------------------------------------------------------- hostile sizes


def test_only_the_start_of_a_huge_body_is_read(classifier: LoginClassifier) -> None:
    """A 5 MB body took 16 s: the classifier reads the first MAX_TEXT_CHARS and nothing after them."""
    from bridge.automation.classify import MAX_TEXT_CHARS

    filler = "Hello team, a question about last month's invoice and the printer. "
    head = ("I can't log in to the portal.\n" + filler * (MAX_TEXT_CHARS // len(filler)))[:MAX_TEXT_CHARS - 1]
    body = head + "\nYou received this email because you subscribed.\n"  # an exclusion, past the cap
    body += filler * (5_000_000 // len(filler))
    body = body[:5_000_000]
    assert len(body) == 5_000_000
    started = time.perf_counter()
    result = classifier.classify("Question", body)
    elapsed = time.perf_counter() - started
    assert result.is_login and result.excluded_by == ""  # the exclusion lies beyond what is read
    assert not classifier.classify("Question", body[: MAX_TEXT_CHARS - 200] + body[MAX_TEXT_CHARS - 1 :]).is_login
    assert elapsed < 2, f"{elapsed:.1f}s"  # linear in the capped size, not in 5 MB


def test_only_the_start_of_a_huge_subject_is_read(classifier: LoginClassifier) -> None:
    from bridge.automation.classify import MAX_SUBJECT_CHARS

    subject = "Printer " * (MAX_SUBJECT_CHARS // 8) + "can't log in " + "x" * 1_000_000
    assert not classifier.classify(subject, "").is_login  # the phrase lies beyond the cap
    assert classifier.classify("can't log in " + "x " * 500_000, "").is_login
