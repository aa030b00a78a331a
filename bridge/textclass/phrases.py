"""Phrase rules over folded text: the matcher the login classifier and the ticket categories share.

Text and phrase both go through ``fold`` (bridge/textclass/model.py) and a short table of
spelling variants, so "can't log in", "cannot sign-in" and "unable to login" are one phrase, as
are "ko đăng nhập đc" and "không đăng nhập được"; "tài khoản", "tk" and "acc" all read
"account". In a phrase, ``...`` stands for up to six words within one sentence: "account ...
locked" matches "my account has been locked".
"""

from __future__ import annotations

import re

from bridge.textclass.model import fold


def _variant(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])")


# Spelling variants rewritten to one form in text and phrases alike: language facts, not policy.
_VARIANTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        _variant(
            r"can ?not|can'?t|could ?not|couldn'?t|unable to|(?:not|never|won'?t) (?:be )?able to|can no longer"
            r"|(?:won'?t|will not|doesn'?t|does not|didn'?t|did not|isn'?t|is not)"
            r" (?:let|letting|allow|allowing) me(?: to)?"
        ),
        "cant",
    ),
    (_variant(r"(?:logg?|sign)(?:ging|ged|s)?[ -]?(?:in|on)(?:to|s)?"), "login"),
    (_variant(r"(?:pass ?word|passwd|pasword|passowrd|pwd)s?"), "password"),
    (_variant(r"khong|ko|k|kg|khg|hok"), "khong"),
    (_variant(r"duoc|dc"), "duoc"),
    (_variant(r"mk"), "mat khau"),
    (_variant(r"tai khoan|tk|acc|acct|accnt|acount|accout"), "account"),
    (_variant(r"recogni[sz]ed"), "recognised"),
)


def canonical(folded: str) -> str:
    """Folded text with its spelling variants rewritten to one form."""
    for pattern, replacement in _VARIANTS:
        folded = pattern.sub(replacement, folded)
    return folded


GAP = "..."
_SEP = r"[^a-z0-9.!?;]{0,3}"  # between adjacent words: spaces, hyphens, quotes, or nothing ("matkhau")
_GAP_RE = r"(?:[^a-z0-9.!?;]{1,3}[a-z0-9]+){0,6}" + _SEP  # up to six words, not across a sentence end


def tokens(phrase: str) -> list[str]:
    return re.findall(r"\.\.\.|[a-z0-9]+", canonical(fold(phrase)))


def well_formed(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """A phrase needs a word, and ``...`` only between words: a typo should fail at load, not match nothing."""
    for phrase in phrases:
        found = tokens(phrase)
        if not any(t != GAP for t in found) or found[0] == GAP or found[-1] == GAP:
            raise ValueError(f"phrase {phrase!r} needs words, with '...' only between them")
    return phrases


def compile_phrase(phrase: str) -> re.Pattern[str]:
    """One phrase → one regex over canonical text, anchored on word boundaries at both ends."""
    parts: list[str] = []
    gap = False
    for token in tokens(phrase):
        if token == GAP:
            gap = True
            continue
        if parts:
            parts.append(_GAP_RE if gap else _SEP)
        parts.append(re.escape(token))
        gap = False
    return re.compile(r"(?<![a-z0-9])" + "".join(parts) + r"(?![a-z0-9])")
