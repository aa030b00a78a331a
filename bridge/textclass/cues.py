"""Cues in the sender's own words that change what an access complaint means: the problem is
someone else's, it is already solved, the sender can still get in, it is a question of how to do
something, or the text is a notice. Matched on folded text (no accents), so Vietnamese with and
without diacritics match.

They are features of the model (``cue:<name>``, learnt like any other) and are shown beside a
decision, so a person reading the ticket note sees why it was taken.
"""

from __future__ import annotations

import re

_CUES: dict[str, tuple[str, ...]] = {
    "someone_else": (
        r"my (?:colleague|student|learner|apprentice|pupil|trainee|new (?:starter|hire|teacher|colleague))s?",
        r"(?:one of|two of) my", r"on (?:his|her|their) behalf", r"on behalf of", r"for (?:mr|mrs|ms|dr)\b",
        r"(?:she|he|they) (?:can ?not|can'?t|cannot|is unable|are unable|is locked|are locked|keeps?)",
        r"(?:her|his|their) (?:account|login|password|username)", r"i(?:'m| am) fine", r"no problem on my side",
        # Vietnamese: "học sinh" or "đồng nghiệp" alone is no cue ("chấm bài cho học sinh", "đồng nghiệp em vẫn
        # vào được"): the pupil or colleague has to be the one with the problem.
        r"(?:giup|cho|ho) (?:mot )?dong nghiep", r"dong nghiep (?:cua (?:em|minh|toi) )?(?:ten|la|bi|khong|chua)",
        r"(?:co|mot|nhieu|vai|may|ca|\d+) (?:ban )?hoc (?:sinh|vien)", r"hoc sinh lop",
        r"hoc (?:sinh|vien) (?:cua (?:em|minh|toi|co|thay)|ten)", r"(?:tai khoan|account) (?:cua )?hoc sinh",
        r"phu huynh (?:\w+ ){0,3}(?:bao|noi) (?:con|be|chau)", r"(?<!la )(?:giao vien|nhan vien) moi", r"ban ay",
        r"em ay", r"co ay", r"thay ay", r"chi ay", r"anh ay", r"ho ten hoc sinh",
        r"giup (?:co|thay|chi|anh|ban|em) \w+ voi",
        r"(?<!qua )(?<!cu )(?<!nghiep )(?:em|minh|toi|tui) (?:van )?(?:vao|dang nhap|login)"
        r" (?:binh thuong|duoc binh thuong)",
        r"our new (?:\w+ )?(?:teacher|starter|hire|colleague|assistant|lecturer)", r"supply teacher",
        r"(?<!la )(?:tro giang|gv|nv) moi (?:vao|nhan viec|chua)",
    ),
    "solved": (
        r"(?:can|could) (?:log ?in|get in|sign in|access (?:it|the \w+)) (?:now|again)", r"(?:it'?s|it is) working (?:now|again)",
        r"works now", r"working now", r"all sorted", r"sorted now", r"never ?mind", r"please ignore", r"ignore my (?:previous|last)",
        r"(?:vao|dang nhap|login|vo) (?:lai )?(?:duoc|dc|đc) roi", r"(?:duoc|dc) roi", r"bo qua email", r"khong can nua",
        r"ko can nua", r"k can nua", r"da (?:on|xong|ok)", r"ok roi",
    ),
    "still_works": (
        r"(?:i )?can still (?:log ?in|get in|sign in|access)", r"(?:i'?m|i am) (?:still )?logged in (?:fine|ok|and)",
        r"logged in fine", r"(?:no|any) (?:trouble|problems?) (?:logging in|with (?:my )?login)",
        r"(?:my )?logins? (?:are|is) (?:all )?working", r"log(?:ged)? in (?:to [\w ]{1,20} )?(?:five|ten|\d+) minutes ago",
        r"(?:(?<!qua )(?<!truoc )(?<!cu )(?<!nghiep )(?:em|e|minh|toi|tui) (?:hien )?|(?<!khac )thi )van (?:dang )?"
        r"(?:dang nhap|login|vao|vo) (?:duoc )?(?:binh thuong|bt|ok)",
    ),
    "how_to": (
        r"how (?:do|can|should) i", r"is there a way to", r"where (?:do|can) i (?:change|find|set)", r"what is the process",
        r"lam (?:the )?nao de", r"cach (?:nao )?(?:de )?(?:doi|cai|thay|bat|tao)", r"huong dan (?:cach|giup)",
        r"muon doi mat khau", r"co the doi", r"do i (?:have|need) to (?:change|reset|update)", r"can i wait",
    ),
    "notice": (
        r"this is an automated", r"do not reply", r"unsubscribe", r"out of (?:the )?office", r"i am away",
        r"i'?m away", r"on annual leave until", r"scheduled maintenance", r"newsletter", r"is this (?:real|legit|genuine|phishing|a scam)",
        r"phishing", r"suspicious", r"didn'?t (?:ask|request)", r"did not (?:ask|request)", r"email tu dong", r"vui long khong tra loi",
        r"dang nghi phep", r"vang mat", r"bao tri", r"lua dao", r"dang ngo", r"co that khong", r"khong he (?:yeu cau|bam)",
        r"em khong yeu cau", r"toi khong yeu cau",
    ),
}

CUE_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])") for name, parts in _CUES.items()
}


def cues_in(folded: str) -> tuple[str, ...]:
    """The names of the cues found in folded text (bridge.textclass.model.fold)."""
    return tuple(name for name, pattern in CUE_PATTERNS.items() if pattern.search(folded))
