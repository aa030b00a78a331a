"""The login-automation reply templates (packaged in bridge/templates): both languages, test
mode, escaping, no addresses, and nothing of an unverified sender's own words."""

from __future__ import annotations

import itertools

import jinja2
import pytest

from bridge.mail.compose import PACKAGED_TEMPLATES as TEMPLATES

OUTCOMES = ("login_reactivated", "login_reset", "login_escalated", "login_denied")
# Sent only after the sender passed verification (DMARC-aligned, organisation domain): the reader
# is the writer, so greeting them by the name they gave relays nothing to a third party.
# login_escalated also answers senders who could not be verified, and login_denied (a person on
# the team declined) may: they greet neutrally and repeat nothing the sender wrote.
VERIFIED_ONLY = ("login_reactivated", "login_reset")
NEUTRAL = ("login_escalated", "login_denied")
PARTS = ("subject", "txt", "html")
LANGS = ("en", "vi")
GREETING = {"en": "Hello", "vi": "Xin chào"}
CUSTOMER_EMAIL = "unique.customer.7f3a@example.com"


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    """Configured like bridge.mail.compose.Composer."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(env: jinja2.Environment, outcome: str, part: str, *, lang: str, test_mode: bool, **extra: object) -> str:
    values: dict[str, object] = {
        "customer_name": "Lan Nguyen",
        "customer_email": CUSTOMER_EMAIL,
        "subject": "Cannot log in",
        "ticket_id": 42,
        "ticket_tag": "[#HD-42]",
        "team_name": "Student Support",
        "lang": lang,
        "test_mode": test_mode,
        **extra,
    }
    return env.get_template(f"{outcome}.{part}.j2").render(**values)


CASES = list(itertools.product(OUTCOMES, LANGS, (False, True)))


@pytest.mark.parametrize(("outcome", "lang", "test_mode"), CASES)
def test_subject_keeps_the_tag_and_marks_test_runs(
    env: jinja2.Environment, outcome: str, lang: str, test_mode: bool
) -> None:
    subject = render(env, outcome, "subject", lang=lang, test_mode=test_mode).strip()
    assert "\n" not in subject
    assert subject.endswith("[#HD-42]")
    assert "Cannot log in" in subject
    if test_mode:
        assert subject.startswith("[TEST] Re: ")
    else:
        assert subject.startswith("Re: ") and "[TEST]" not in subject


@pytest.mark.parametrize(("outcome", "lang", "test_mode"), CASES)
@pytest.mark.parametrize("part", ("txt", "html"))
def test_bodies_speak_the_language_and_flag_test_runs_at_the_top(
    env: jinja2.Environment, outcome: str, lang: str, test_mode: bool, part: str
) -> None:
    body = render(env, outcome, part, lang=lang, test_mode=test_mode)
    greeting = body.index(f"{GREETING[lang]} Lan Nguyen" if outcome in VERIFIED_ONLY else f"{GREETING[lang]},")
    assert "[#HD-42]" in body and "Student Support" in body
    if lang == "vi":
        assert "tài khoản" in body.lower()
        assert "Hello" not in body
    else:
        assert "account" in body.lower()
        assert "tài khoản" not in body.lower() and "Xin chào" not in body
    if test_mode:
        assert body.count("[TEST]") == 1
        assert body.index("[TEST]") < greeting  # before anything else the reader sees
        if part == "txt":
            assert body.lstrip().startswith("[TEST]")
        assert ("nothing was changed" if lang == "en" else "không có thay đổi nào") in body
    else:
        assert "[TEST]" not in body


@pytest.mark.parametrize(("outcome", "lang"), list(itertools.product(OUTCOMES, LANGS)))
def test_content_of_each_outcome(env: jinja2.Environment, outcome: str, lang: str) -> None:
    text = render(env, outcome, "txt", lang=lang, test_mode=False)
    expected = {
        ("login_reactivated", "en"): ("reactivated", "30 days", "usual password"),
        ("login_reactivated", "vi"): ("đã được kích hoạt lại", "30 ngày", "mật khẩu thường dùng"),
        ("login_reset", "en"): ("reset", "on record", "spam", "limited time"),
        ("login_reset", "vi"): ("đặt lại mật khẩu", "hồ sơ", "thư rác", "hết hạn"),
        ("login_escalated", "en"): ("received your request", "support team", "get back to you"),
        ("login_escalated", "vi"): ("đã nhận được yêu cầu", "đội ngũ hỗ trợ", "phản hồi"),
        ("login_denied", "en"): ("reviewed your request", "not able to reactivate", "at this time",
                                 "your manager or your HR department", "reply to this email"),
        ("login_denied", "vi"): ("đã xem xét yêu cầu", "không thể kích hoạt lại", "hiện tại",
                                 "quản lý trực tiếp hoặc bộ phận nhân sự", "trả lời email này"),
    }[outcome, lang]
    for phrase in expected:
        assert phrase in text


@pytest.mark.parametrize(("outcome", "lang", "test_mode"), CASES)
def test_html_escapes_the_customer_name(env: jinja2.Environment, outcome: str, lang: str, test_mode: bool) -> None:
    page = render(env, outcome, "html", lang=lang, test_mode=test_mode, customer_name="<script>x</script>")
    if outcome in VERIFIED_ONLY:
        assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script" not in page
    assert f'<html lang="{lang}">' in page


@pytest.mark.parametrize(("outcome", "part"), list(itertools.product(OUTCOMES, PARTS)))
def test_no_template_shows_an_email_address(env: jinja2.Environment, outcome: str, part: str) -> None:
    source = (TEMPLATES / f"{outcome}.{part}.j2").read_text(encoding="utf-8")
    assert "customer_email" not in source
    assert "email_" not in source and "_email" not in source and "@" not in source
    for lang, test_mode in itertools.product(LANGS, (False, True)):
        assert CUSTOMER_EMAIL not in render(env, outcome, part, lang=lang, test_mode=test_mode)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_templates_need_lang_and_test_mode(env: jinja2.Environment, outcome: str) -> None:
    """StrictUndefined: a caller that forgets the new values fails loudly instead of sending English silently."""
    template = env.get_template(f"{outcome}.txt.j2")
    with pytest.raises(jinja2.UndefinedError):
        template.render(customer_name="x", subject="s", ticket_id=1, ticket_tag="[#HD-1]", team_name="t")


@pytest.mark.parametrize(("outcome", "lang", "test_mode", "part"),
                         list(itertools.product(NEUTRAL, LANGS, (False, True), ("txt", "html"))))
def test_neutral_replies_repeat_neither_name_nor_subject(
    env: jinja2.Environment, outcome: str, lang: str, test_mode: bool, part: str
) -> None:
    """login_escalated and login_denied may go to senders who failed verification: no phishing relay."""
    name, subject = "Admin: verify at http://evil.example", "Click https://evil.example/now"
    body = render(env, outcome, part, lang=lang, test_mode=test_mode, customer_name=name, subject=subject)
    assert "evil.example" not in body and "verify at" not in body and "Click" not in body
    assert "[#HD-42]" in body


@pytest.mark.parametrize(("lang", "part"), list(itertools.product(LANGS, ("txt", "html"))))
def test_denial_reveals_no_reason_record_or_system(env: jinja2.Environment, lang: str, part: str) -> None:
    """The denial says what to do next, never why: no HR or LMS facts, no employment status."""
    body = render(env, "login_denied", part, lang=lang, test_mode=False).lower()
    for word in ("lms", "30", "inactive", "terminated", "employ", "contract", "left", "record",
                 "nghỉ việc", "hợp đồng", "hồ sơ", "không hoạt động"):
        assert word not in body, word
