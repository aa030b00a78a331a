"""Charsets (issue 11, item 3): each fixture in tests/data/mail/ decodes to the text a reader of
the original would see, with no mojibake and no replacement characters.

The fixtures were written byte by byte in their charsets (not produced by this decoder): a wrong
label both ways, undeclared KOI8-R, windows-1258 with combining tone marks, ISO-2022-JP with
Windows' half-width katakana and NEC circled digits, and RFC 2047 words split inside a multibyte
character (UTF-8, GB2312, Shift_JIS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.mail.charsets import detect, iso2022jp_as_cp932
from bridge.mail.parse import parse_email

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"

CASES = [
    ("cp1258-vietnamese", "Không đăng nhập được",
     "Chào anh,\n\nTôi không đăng nhập được vào tài khoản từ hôm qua. Mật khẩu mới cũng bị từ chối.\n\n"
     "Cảm ơn,\n\nNguyễn Thị Thủy"),
    ("declared-latin1-is-utf8", "Wrong label", "Grüße aus Köln — the naïve café costs 5 €."),
    ("declared-utf8-is-cp1252", "Wrong label", "Ça coûte 5 € — merci « beaucoup », Hélène."),
    ("undeclared-koi8-r", "Account locked",
     "Здравствуйте!\nЯ не могу войти в личный кабинет: после смены пароля система пишет, что учётная "
     "запись заблокирована. Помогите, пожалуйста.\nС уважением, Ольга"),
    ("iso-2022-jp", "ログインできません",
     "お世話になっております。\nパスワードを再設定してもログインできません。\n"
     "手順①から③まで試しました。ｶﾀｶﾅ表示も確認済みです。"),
    ("rfc2047-split-utf8", "Réinitialisation du mot de passe — Tiếng Việt ✓", "See subject."),
    ("rfc2047-split-gb2312", "无法登录账户，请帮忙重置密码", "谢谢。"),
    ("rfc2047-split-shift-jis", "パスワードの再設定について", "本文です。"),
]


@pytest.mark.parametrize("name,subject,text", CASES, ids=[c[0] for c in CASES])
def test_fixture_decodes_to_the_written_text(name: str, subject: str, text: str) -> None:
    email = parse_email((MAIL / f"{name}.eml").read_bytes())
    assert email.subject == subject
    assert email.text.strip() == text
    assert "\ufffd" not in email.subject + email.text


def test_windows_1258_tone_marks_are_composed() -> None:
    text = parse_email((MAIL / "cp1258-vietnamese.eml").read_bytes()).text
    assert "\u0301" not in text and "\u0323" not in text  # no combining acute / dot below left
    assert "được" in text


def test_detector_leaves_western_text_to_cp1252() -> None:
    """On short French in cp1252 the detector's best guess is cp1250 ("coűte"): not taken."""
    assert detect("Ça coûte 5 € — merci « beaucoup », Hélène.".encode("cp1252")) is None


def test_detector_names_a_cyrillic_codepage() -> None:
    text = "Здравствуйте! Я не могу войти в личный кабинет, помогите, пожалуйста."
    assert detect(text.encode("koi8-r")) == "koi8_r"


def test_iso2022jp_reader_refuses_what_is_not_iso2022jp() -> None:
    assert iso2022jp_as_cp932("Grüße".encode("utf-8")) is None
    assert iso2022jp_as_cp932(b"\x1b$(Q!!\x1b(B") is None  # JIS X 0213: not Windows' set
    assert iso2022jp_as_cp932("テスト".encode("iso2022_jp")) == "テスト"
