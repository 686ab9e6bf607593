"""What a user reads of a reward record, in their language (SPEC §1.2, §6).

A record keeps the activity's name and the prize's title per language as they were when it
was created (``activity_names``, ``prize_title``); older records have only the single
``activity_name`` / ``prize_name``, served as they are with no language claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

from reward_service.records.models import RewardRecord
from service_kit.i18n import Served


@dataclass(frozen=True)
class RecordTexts:
    activity_name: str | None
    activity_name_language: str | None
    prize_name: str | None
    prize_name_language: str | None


def record_texts(record: RewardRecord, served: Served) -> RecordTexts:
    activity_name, activity_language = served.text(record.activity_names, record.activity_name)
    prize_name, prize_language = served.text(record.prize_title, record.prize_name)
    return RecordTexts(activity_name, activity_language, prize_name, prize_language)
