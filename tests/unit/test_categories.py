"""The ticket-category phrase rules (bridge/textclass/categories.py) and their configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.config import CategoriesConfig, parse_config
from bridge.errors import ConfigurationError
from bridge.textclass.categories import DEFAULT_CATEGORIES, Category, CategoryClassifier
from bridge.textclass.model import LinearTextModel
from tests.unit.test_config import MINIMAL


@pytest.fixture(scope="module")
def rules() -> CategoryClassifier:
    return CategoryClassifier(DEFAULT_CATEGORIES)


@pytest.mark.parametrize(("subject", "text", "key"), [
    ("Forgot my password", "Could you send me a reset link?", "password"),
    ("Invoice PDF password", "The invoice came password-protected; we need to pay it by Friday.", "billing"),
    ("Laptop won't turn on", "No lights at all, so I can't connect to the VPN either.", "hardware"),
    ("vpn", "e o nha ket noi vpn ko dc", "network"),
    ("Mật khẩu wifi khách", "Cho em xin mật khẩu wifi khách với ạ.", "network"),
    ("", "tk cua e bi khoa, mo khoa giup e", "login"),
    ("Outlook keeps asking for password", "Webmail works, Outlook keeps asking for my password.", "email"),
    ("hello", "Is the office open over the holidays?", "other"),
])
def test_the_category_is_what_the_email_is_about(rules: CategoryClassifier, subject: str, text: str,
                                                 key: str) -> None:
    assert rules.classify(subject, text).key == key


def test_quoted_history_and_a_reply_subject_do_not_decide(rules: CategoryClassifier) -> None:
    text = ("Great, thanks for sorting it out!\n\n"
            "On Fri, 4 Dec 2026 at 11:20, IT <it@x> wrote:\n> The printer is fixed.\n")
    found = rules.classify("Re: Printer jammed", text)
    assert found.key == "other" and "printer" not in found.matched


def test_a_phrase_with_and_without_accents_counts_once(rules: CategoryClassifier) -> None:
    assert rules.classify("", "phần mềm phan mem").matched.count("phần mềm") == 1
    assert "phan mem" not in rules.classify("", "phan mem").matched


def test_a_tie_goes_to_the_category_listed_first() -> None:
    first, second = Category(key="a", label="A", phrases=("widget",)), Category(key="b", label="B", phrases=("gadget",))
    assert CategoryClassifier((first, second), "a").classify("", "widget and gadget").key == "a"
    assert CategoryClassifier((second, first), "a").classify("", "widget and gadget").key == "b"


def test_nothing_matched_gets_the_fallback() -> None:
    found = CategoryClassifier(DEFAULT_CATEGORIES).classify("", "zzz")
    assert (found.key, found.label, found.score, found.matched) == ("other", "Other", 0, ())


def test_the_configuration_rejects_duplicate_keys_an_unknown_fallback_and_bad_phrases() -> None:
    with pytest.raises(ValidationError, match="own key"):
        CategoriesConfig(rules=(Category(key="x", label="X"), Category(key="x", label="Y")))
    with pytest.raises(ValidationError, match="fallback"):
        CategoriesConfig(fallback="misc")
    with pytest.raises(ValidationError, match="needs words"):
        Category(key="x", label="X", phrases=("... locked",))
    assert CategoriesConfig().tag_prefix == "Category: " and not CategoriesConfig().enabled


def test_with_a_model_the_model_decides_among_the_configured_categories() -> None:
    # "rule:<key>" is the rules' vote (CategoryClassifier.counts); the model here prefers email to it,
    # and a class the configuration does not have ("retired") is never given.
    model = LinearTextModel(classes=("email", "hardware", "retired"), vocabulary={"rule:hardware": 0, "w:outlook": 1},
                            idf=[1.0, 1.0], coef=[[0.0, 5.0], [1.0, 0.0], [9.0, 9.0]], intercept=[0.0, 0.0, 0.0],
                            meta={})
    classifier = CategoryClassifier(DEFAULT_CATEGORIES, model=model)
    found = classifier.classify("Printer", "The printer by the Outlook desk is jammed")
    assert found.key == "email" and found.label == "Email" and found.score == 0 and found.probability is not None
    assert classifier.rules("Printer", "The printer by the Outlook desk is jammed").key == "hardware"
    same = classifier.classify("Printer", "The printer is jammed")
    assert same.key == "hardware" and "printer" in same.matched


def test_a_priority_rule_names_the_categories_in_use() -> None:
    rule = {"sla": {"priority_rules": [{"priority": "2", "categories": ["billing"]}]}}
    with pytest.raises(ConfigurationError, match="unknown categories billing"):
        parse_config({**MINIMAL, **rule}, {"IMAP_PASSWORD": "pw"})  # categories off: only login/other
    cfg = parse_config({**MINIMAL, **rule, "categories": {"enabled": True}}, {"IMAP_PASSWORD": "pw"})
    assert cfg.sla.priority_rules[0].categories == ("billing",)
