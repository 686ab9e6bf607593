"""The registry of the three services: how to build each app, worker and settings."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from service_kit.config import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    settings_class: str
    port: int
    env_prefix: str

    def settings(self, **overrides: Any) -> ServiceSettings:
        module = importlib.import_module(f"{self.module}.config")
        return getattr(module, self.settings_class)(**overrides)

    def create_app(self, **kwargs: Any) -> Any:
        return importlib.import_module(f"{self.module}.app").create_app(**kwargs)

    def create_worker(self, **kwargs: Any) -> Any:
        return importlib.import_module(f"{self.module}.worker").create_worker(**kwargs)

    def metadata(self) -> Any:
        return importlib.import_module(f"{self.module}.models").Base.metadata


SERVICES: dict[str, ServiceSpec] = {
    "activity": ServiceSpec("activity", "activity_service", "ActivitySettings", 8001, "ACTIVITY_"),
    "referral": ServiceSpec("referral", "referral_service", "ReferralSettings", 8002, "REFERRAL_"),
    "reward": ServiceSpec("reward", "reward_service", "RewardSettings", 8003, "REWARD_"),
}
