"""One language negotiation and fallback for every user view, and what a view says it served."""

from __future__ import annotations

from service_kit.i18n import Served, content_language, localized_with_language, texts_of


def test_the_text_says_which_language_it_is_in() -> None:
    assert localized_with_language({"zh-Hans": "简", "en": "E"}, "zh-Hant") == ("简", "zh-Hans")
    assert localized_with_language({"zh-Hant": "繁", "zh-Hans": "简"}, "en") == ("繁", "zh-Hant")
    assert localized_with_language({"en": "E", "zh-Hant": ""}, "zh-Hant") == ("E", "en")
    assert localized_with_language({}, "en") == ("", None)


def test_served_collects_the_languages_of_a_response() -> None:
    served = Served("zh-Hant")
    assert served.text({"zh-Hans": "注册礼"}) == ("注册礼", "zh-Hans")
    assert served.text({"zh-Hant": "雨傘", "en": "Umbrella"}) == ("雨傘", "zh-Hant")
    # A text stored in no known language is served as it is, claiming nothing.
    assert served.text(None, "Mug") == ("Mug", None)
    assert served.content_language() == "zh-Hans, zh-Hant"
    assert Served("en").content_language() == "en"


def test_content_language_order_is_stable_and_texts_are_filtered() -> None:
    assert content_language(["en", "zh-Hant", "en"], "en") == "zh-Hant, en"
    assert texts_of({"en": "E", "zh-Hans": None, "fr": "F"}) == {"en": "E"}
    assert texts_of({"zh-Hans": ""}) is None and texts_of(None) is None
