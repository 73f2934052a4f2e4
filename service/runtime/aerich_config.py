"""TORTOISE_ORM for the aerich CLI (`aerich upgrade`), from DATABASE_URL."""

from __future__ import annotations

from typing import Any

from service.config import Settings, SettingsError
from service.runtime.db import tortoise_config


def _load() -> dict[str, Any]:
    settings = Settings.from_env()
    if settings.database_url is None:
        raise SettingsError(
            "DATABASE_URL: required for the aerich CLI "
            "(`python -m service migrate` also works with the embedded server)"
        )
    return tortoise_config(settings.database_url, pool_min=1, pool_max=2)


TORTOISE_ORM = _load()
