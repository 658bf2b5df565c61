"""Idempotency keys: the answer to a create, kept under the key its client sent.

A key is saved by an `IdempotencyKeySaved` change in the same commit as what it created,
so either both are stored or neither is. A key lives for KEY_TTL: reads ignore older
rows, and each save deletes the expired row of its own key and a few other expired rows,
so the table holds about one day of keys without a sweeper.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Connection, Index, Integer, and_, delete, insert, or_, select
from sqlmodel import Field, SQLModel

if TYPE_CHECKING:
    from synthesis.store.changes import IdempotencyKeySaved
    from synthesis.store.database import Store

KEY_TTL = timedelta(hours=24)
PRUNED_PER_SAVE = 20  # expired rows deleted with each new key


class IdempotencyKeyRow(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    principal: str = Field(primary_key=True, max_length=80)  # who sent it (auth.Principal)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)  # sha256 of method, path and canonical body
    status: int = Field(sa_column=Column(Integer, nullable=False))
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=24)


idempotency_keys = IdempotencyKeyRow.__table__


def find_key(store: Store, principal: str, key: str, not_before: str) -> dict[str, Any] | None:
    """The saved answer for `key`, unless it expired (saved before `not_before`)."""
    table = idempotency_keys
    with store.engine.connect() as conn:
        row = conn.execute(
            select(table).where(
                table.c.principal == principal,
                table.c.key == key,
                table.c.created_at >= not_before,
            )
        ).first()
        return dict(row._mapping) if row else None


def save_key(conn: Connection, change: IdempotencyKeySaved) -> None:
    """Bus thread, inside the commit's transaction. A live row of the same key makes the
    insert fail, and with it the whole commit (a concurrent request with that key won)."""
    table, row, expired = idempotency_keys, change.row, change.expired_before
    old = conn.execute(
        select(table.c.principal, table.c.key)
        .where(table.c.created_at < expired)
        .order_by(table.c.created_at)
        .limit(PRUNED_PER_SAVE)
    ).all()
    same = and_(table.c.principal == row["principal"], table.c.key == row["key"])
    others = [and_(table.c.principal == p, table.c.key == k) for p, k in old]
    conn.execute(delete(table).where(table.c.created_at < expired, or_(same, *others)))
    conn.execute(insert(table), [dict(row)])
