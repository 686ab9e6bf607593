"""The languages end users read (SPEC §1.2, §6): zh-Hans, zh-Hant, en.

One negotiation (``pick_language``) and one fallback order (``localized``) for every user
view of every service, so an activity's name reads the same in the activity list and in the
rewards it paid. Views say which language they actually served: a text missing in the
wanted language is served in another one, and ``Content-Language`` lists what was served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import Header, Response

LANGUAGES = ("zh-Hans", "zh-Hant", "en")
DEFAULT_LANGUAGE = "en"

# When the wanted language is missing: a Chinese reader prefers the other Chinese script.
NAME_FALLBACKS: dict[str, tuple[str, ...]] = {
    "zh-Hans": ("zh-Hans", "zh-Hant", "en"),
    "zh-Hant": ("zh-Hant", "zh-Hans", "en"),
    "en": ("en", "zh-Hant", "zh-Hans"),
}

ACCEPT_LANGUAGE_DOC = "zh-Hans (zh, zh-CN), zh-Hant (zh-TW, zh-HK) or en; default en"


def _language_of_tag(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if not tag or tag == "*":
        return None
    if tag.startswith("zh"):
        parts = tag.split("-")
        if "hant" in parts or any(p in ("tw", "hk", "mo") for p in parts[1:]):
            return "zh-Hant"
        return "zh-Hans"
    if tag.split("-")[0] == "en":
        return "en"
    return None


def pick_language(accept_language: str | None) -> str:
    """The supported language best matching an ``Accept-Language`` header (q-values honoured)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        pieces = part.split(";")
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        language = _language_of_tag(pieces[0])
        if language is not None and q > 0:
            weighted.append((-q, position, language))
    if not weighted:
        return DEFAULT_LANGUAGE
    return sorted(weighted)[0][2]


def localized_with_language(name: Mapping[str, Any], language: str) -> tuple[str, str | None]:
    """The text for a reader of ``language`` and the language it is actually in."""
    for candidate in NAME_FALLBACKS.get(language, NAME_FALLBACKS[DEFAULT_LANGUAGE]):
        value = name.get(candidate)
        if value:
            return str(value), candidate
    return next(((str(v), k) for k, v in name.items() if v), ("", None))


def localized(name: Mapping[str, Any], language: str) -> str:
    return localized_with_language(name, language)[0]


def texts_of(name: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The non-empty texts of the supported languages (what a grant or record carries)."""
    texts = {lang: str(name[lang]) for lang in LANGUAGES if name and name.get(lang)}
    return texts or None


class Served:
    """The languages one response actually served, for its ``Content-Language``."""

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.languages: set[str] = set()

    def text(
        self, texts: Mapping[str, Any] | None, fallback: str | None = None
    ) -> tuple[str | None, str | None]:
        """(text, its language) in the wanted language or the next in the fallback order;
        ``fallback`` (a text in no known language) when there are no texts at all."""
        if texts:
            value, language = localized_with_language(texts, self.wanted)
            if language is not None:
                self.languages.add(language)
                return value, language
        return fallback, None

    def content_language(self) -> str:
        """What was served, in a stable order; the wanted language when nothing was."""
        return content_language(self.languages, self.wanted)


def content_language(served: Iterable[str], wanted: str) -> str:
    languages = set(served)
    return ", ".join(lang for lang in LANGUAGES if lang in languages) or wanted


AcceptLanguage = Annotated[
    str | None, Header(alias="Accept-Language", description=ACCEPT_LANGUAGE_DOC)
]


def served_for(accept_language: str | None) -> Served:
    return Served(pick_language(accept_language))


def say_served(response: Response, served: Served) -> None:
    """``Content-Language``: the languages the response's texts are actually in."""
    response.headers["Content-Language"] = served.content_language()
    response.headers["Vary"] = "Accept-Language"
