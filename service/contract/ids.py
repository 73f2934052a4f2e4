"""Public ids (`b_` / `f_` + 8 hex) and inserts that regenerate an id that clashes."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

M = TypeVar("M", bound=Model)
ATTEMPTS = 8


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


async def create_with_fresh_id(model: type[M], prefix: str, **fields: Any) -> M:
    """Insert a row under a random id; a clash on the id is retried, never a 500."""
    pk = model._meta.pk_attr
    for _ in range(ATTEMPTS):
        try:
            return await model.create(**{pk: new_id(prefix), **fields})
        except IntegrityError as exc:
            if "_pkey" not in str(exc):
                raise
    raise RuntimeError(f"no free {model.__name__} id after {ATTEMPTS} attempts")
