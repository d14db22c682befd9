"""SQL straight on the snapshot the query layer serves: the direct computation an answer is
checked against."""

from __future__ import annotations

from typing import Any

from pharmaflow.serve.query.base import QueryContext


def sql(ctx: QueryContext, text: str, params: list[Any] | None = None) -> list[tuple]:
    with ctx.reading() as q:
        return q.snap.cursor().execute(text, params or []).fetchall()


def scalar(ctx: QueryContext, text: str, params: list[Any] | None = None) -> Any:
    return sql(ctx, text, params)[0][0]
