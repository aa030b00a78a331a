"""Decides whether an email says "I can't get into my account" (English or Vietnamese), and its language.

The rules are phrase lists, kept as data in ``ClassifierConfig``:

* an email is a login problem when at least one positive phrase matches its subject or text
  and no exclusion phrase matches;
* exclusions are absolute vetoes, so they are written narrowly: marketing ("log in to see"),
  notices ("you will not be able to log in"), help text ("if you can't log in") and resolved
  threads ("I can log in again"). A "strong phrase beats an exclusion" rule was rejected: the
  strong phrases turn up in exactly those emails (a resolved reply keeps the subject
  "Re: Can't log in");
* quoted lines (``> ...``) are ignored: they repeat an earlier message, often our own; for the
  same reason a reply's subject ("Re: Can't log in" above "Works now, thanks!") is ignored.

Matching is case-, accent- and spacing-insensitive (bridge/textclass/phrases.py, shared with
the ticket categories): "can't log in", "cannot sign-in", "unable to login" and "not able to log
into" are one phrase, as are "ko đăng nhập đc" and "không đăng nhập được"; in a phrase, ``...``
stands for up to six words within one sentence.

Only the first ``MAX_TEXT_CHARS`` of the text and ``MAX_SUBJECT_CHARS`` of the subject are read:
a person states the problem at the top, and matching cost grows with the text (a 5 MB body of
pasted logs took 16 s); the playbook scans the same slice for other accounts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.textclass.model import fold
from bridge.textclass.phrases import canonical, compile_phrase, well_formed

Language = Literal["en", "vi"]

MAX_TEXT_CHARS = 64 * 1024  # of the body text, from its start
MAX_SUBJECT_CHARS = 1024

DEFAULT_PHRASES: tuple[str, ...] = (
    # English: statements of the problem
    "can't ... log in",
    "can't get in",
    "can't get into",
    "can't access ... account",
    "can't access ... portal",
    "can't access ... lms",
    "can't access ... platform",
    "can't access ... system",
    "can't access ... website",
    "can't access ... site",
    "can't access ... app",
    "can't get onto",
    "won't let me in",
    "won't let me back in",
    "how do i get in",
    "how can i get in",
    "keeps logging me out",
    "no access to my account",
    "no access to my profile",
    "try to log in",
    "trying to log in",
    "tried to log in",
    "tried logging in",
    "log in ... without success",
    "error logging in",
    "error when logging in",
    "error while logging in",
    "authentication failed",
    "authentication error",
    "can't authenticate",
    "failed to authenticate",
    "stuck ... log in",
    "stuck ... code",
    "stuck ... verification",
    "trouble logging in",
    "problem logging in",
    "issue logging in",
    "difficulty logging in",
    "trouble accessing",
    "problem accessing",
    "lost access",
    "get into my account",
    "get back in",
    "login issue",
    "login problem",
    "login error",
    "login not working",
    "login isn't working",
    "login doesn't work",
    "login not possible",
    "login failed",
    "login fails",
    "login failure",
    "credentials ... not working",
    "credentials ... don't work",
    "credentials ... not recognised",
    "email ... not recognised",
    "username ... not recognised",
    "credentials ... wrong",
    "credentials ... incorrect",
    "credentials ... invalid",
    "never given ... login",
    "never received ... login",
    "never got ... login",
    # English: passwords and usernames
    "invalid password",
    "wrong password",
    "incorrect password",
    "password is incorrect",
    "password is wrong",
    "password isn't accepted",
    "password not accepted",
    "password doesn't work",
    "password ... expired",
    "won't accept ... password",
    "doesn't accept ... password",
    "not accepting ... password",
    "rejects ... password",
    "password ... rejected",
    "requested a new password",
    "request a new password",
    "send ... new password",
    "invalid credentials",
    "invalid username",
    "incorrect username",
    "forgot password",
    "forgot my password",
    "forgotten my password",
    "forgot the password",
    "forgot ... username",
    "don't remember ... password",
    "don't remember ... username",
    "can't remember ... password",
    "can't remember ... username",
    "reset ... password",
    "password reset",
    "reset ... mfa",
    "reset ... 2fa",
    "reset ... two-factor",
    "reset ... authenticator",
    "never received ... code",
    "didn't receive ... code",
    "not receiving ... code",
    "code never arrives",
    "code never comes",
    # English: the account's state, as error messages put it
    "account ... locked",
    "locked out",
    "account ... blocked",
    "account ... disabled",
    "account ... deactivated",
    "account ... suspended",
    "account ... inactive",
    "account ... not active",
    "account ... expired",
    "account ... no longer available",
    "account ... no longer active",
    "account ... no longer exists",
    "unknown user",
    "unlock ... account",
    "user not found",
    "user does not exist",
    "user doesn't exist",
    "no account found",
    "account not found",
    "account does not exist",
    "too many ... attempts",
    "access denied ... log in",
    "access denied ... account",
    "log in ... access denied",
    "account ... access denied",
    # Vietnamese: the bare words are enough; the exclusions keep them honest
    "đăng nhập",
    "mật khẩu",
    "không đăng nhập ... được",
    "không thể đăng nhập",
    "chưa đăng nhập ... được",
    "đăng nhập ... không được",
    "lỗi đăng nhập",
    "đăng nhập bị lỗi",
    "không login được",
    "login ... không được",
    "không vào được",
    "không vô được",
    "không thể vào",
    "không vào ... được",
    "không truy cập được",
    "không thể truy cập",
    "mất quyền truy cập",
    "quên mật khẩu",
    "quên pass",
    "quên tên đăng nhập",
    "reset pass",
    "cấp lại mật khẩu",
    "đặt lại mật khẩu",
    "lấy lại mật khẩu",
    "sai mật khẩu",
    "mật khẩu ... sai",
    "mật khẩu ... không đúng",
    "mật khẩu ... hết hạn",
    "tài khoản ... bị khóa",
    "tài khoản ... bị tạm khóa",
    "tài khoản ... bị vô hiệu hóa",
    "tài khoản ... bị đình chỉ",
    "tài khoản ... bị chặn",
    "tài khoản ... không hoạt động",
    "tài khoản không tồn tại",
    "mở khóa tài khoản",
    "mở khóa giúp",
    "bị lock",
    "mã otp",
    "mã xác thực",
    "không nhận được mã",
    "xác thực hai lớp",
    "xác thực 2 lớp",
)

DEFAULT_EXCLUDES: tuple[str, ...] = (
    # English: marketing and newsletters
    "unsubscribe",
    "log in to see",
    "log in to claim",
    "log in to view",
    "log in now to",
    "free trial",
    "you received this email because",
    # English: events, training, invitations
    "login details for",
    "webinar",
    "register now",
    "phishing awareness",
    "is this a phishing",
    "will never ask for your password",
    # English: automated notices and help text addressed to everyone
    "do not reply",
    "automated message",
    "out of the office",
    "out of office",
    "down for maintenance",
    "scheduled maintenance",
    "you will not be able to log in",
    "if you can't log in",
    "if you are locked out",
    "if you're locked out",
    "if you forgot your password",
    "if you've forgotten your password",
    "if this was you",
    "ignore this email",
    # English: resolved, or not a request for help
    "can log in again",
    "can log in now",
    "able to log in again",
    "all sorted",
    "all good now",
    "never mind",
    "close the ticket",
    "problem solved",
    "issue resolved",
    "no action needed",
    "feature request",
    "feedback on",
    "well done",
    "would it be possible to add",
    "just an idea",
    "typo",
    # Vietnamese: marketing, invitations, events
    "đăng nhập để xem",
    "đăng nhập để nhận",
    "đăng nhập ngay để",
    "hủy đăng ký nhận",
    "nhận email này vì",
    "nhận được email này vì",
    "mời bạn",
    "mời anh chị",
    "kính mời",
    "hội thảo trực tuyến",
    "thông tin đăng nhập hội nghị",
    "thông tin đăng nhập hội thảo",
    "thông tin đăng nhập sự kiện",
    "lớp zoom",
    "phòng zoom",
    "link zoom",
    # Vietnamese: automated notices, awareness training, phishing questions
    "email tự động",
    "vui lòng không trả lời",
    "sẽ không đăng nhập được",
    "sẽ bảo trì",
    "không bao giờ yêu cầu",
    "có phải lừa đảo",
    "nếu đó là bạn",
    "bỏ qua email này",
    "mật khẩu wifi",
    # Vietnamese: resolved, logged in already, or feedback
    "đã đăng nhập được",
    "đăng nhập lại được rồi",
    "đã vào được",
    "đang đăng nhập được",
    "đăng nhập bình thường",
    "lỗi chính tả",
    "góp ý",
    "thêm tính năng",
)


class ClassifierConfig(BaseModel):
    """The phrase lists and the fields they are matched against (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: tuple[str, ...] = DEFAULT_PHRASES
    exclude_phrases: tuple[str, ...] = DEFAULT_EXCLUDES
    fields: tuple[Literal["subject", "text"], ...] = Field(default=("subject", "text"), min_length=1)

    @field_validator("phrases", "exclude_phrases")
    @classmethod
    def _well_formed(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        return well_formed(phrases)


@dataclass(frozen=True)
class Classification:
    """The verdict with its evidence, so a log line or a ticket note can say why."""

    is_login: bool
    matched: tuple[str, ...]  # positive phrases found, as configured
    excluded_by: str = ""  # the exclusion that vetoed the match, if any
    language: Language = "en"


_REPLY_SUBJECT = re.compile(r"\s*(?:re|aw|sv|vs|antw|tl|trả lời)\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：]", re.I)


def _unquoted(text: str) -> str:
    """The text without ``>`` quoted lines, which repeat an earlier message."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


class LoginClassifier:
    """Holds the compiled phrase lists; one instance serves every email."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        self._fields = cfg.fields
        self._positive = tuple((p, compile_phrase(p)) for p in cfg.phrases)
        self._exclude = tuple((p, compile_phrase(p)) for p in cfg.exclude_phrases)

    def classify(self, subject: str, text: str) -> Classification:
        """Positive phrases found, then the first exclusion that vetoes them, if any.

        Reads the first ``MAX_SUBJECT_CHARS`` of the subject and ``MAX_TEXT_CHARS`` of the text.
        """
        subject, text = subject[:MAX_SUBJECT_CHARS], text[:MAX_TEXT_CHARS]
        source = {"subject": "" if _REPLY_SUBJECT.match(subject) else subject, "text": _unquoted(text)}
        haystacks = [canonical(fold(source[name])) for name in self._fields]
        language = detect_language(subject, text)
        matched = tuple(p for p, rx in self._positive if any(rx.search(h) for h in haystacks))
        if not matched:
            return Classification(is_login=False, matched=(), language=language)
        excluded_by = next((p for p, rx in self._exclude if any(rx.search(h) for h in haystacks)), "")
        return Classification(is_login=not excluded_by, matched=matched, excluded_by=excluded_by, language=language)


# Marks that French, Spanish or German text does not use: breve (ă), horn (ơ ư), hook above (ả),
# dot below (ạ). A circumflex counts only stacked with a tone mark (ấ ề ỗ); đ is checked by hand.
_VI_MARKS = frozenset("\u0306\u031b\u0309\u0323")
_TONES = frozenset("\u0300\u0301\u0303")
# Frequent Vietnamese words that survive unaccented typing and are rare in English text.
_VI_WORDS = frozenset(
    "khong ko duoc dc toi cua vao minh em voi giup nhe nha roi nhung bi xin nho thi vay sao hom gio lam"
    " khoan khau nhap".split()
)
_VI_MIN_WORDS = 2
_VI_MIN_SHARE = 0.2


def _looks_vietnamese(word: str) -> bool:
    """A Vietnamese-only mark, or a word Vietnamese writers use even when typing without accents."""
    if "đ" in word or "Đ" in word or fold(word) in _VI_WORDS:
        return True
    for char in word:
        marks = set(unicodedata.normalize("NFD", char)[1:])
        if marks & _VI_MARKS or ("\u0302" in marks and marks & _TONES):
            return True
    return False


def detect_language(subject: str, text: str) -> Language:
    """"vi" when enough of the words look Vietnamese, else "en"; picks the reply template.

    A share, not a count: an English email signed "Trần Thị Hường" stays English.
    """
    words = re.findall(r"[^\W\d_]+", f"{subject}\n{_unquoted(text)}")
    hits = sum(1 for w in words if _looks_vietnamese(w))
    return "vi" if hits >= _VI_MIN_WORDS and hits >= _VI_MIN_SHARE * len(words) else "en"
