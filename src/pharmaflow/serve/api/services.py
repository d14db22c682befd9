"""What the API's routes share in one process: settings, the query layer, keys and audit.

One `Services` per app (`app.state.services`), built by `create_app`; routes take it with
`Depends(get_services)`. The vault is opened per re-identification (it needs the keys, which
hold a lease against `pharmaflow keys rotate` while open), never kept open by the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.serve.query.base import QueryContext
    from pharmaflow.serve.security.audit import AuditTrail
    from pharmaflow.serve.security.keys import KeyStore
    from pharmaflow.serve.surveys.store import SurveyStore


@dataclass
class Services:
    settings: Settings
    queries: QueryContext
    keys: KeyStore
    audit: AuditTrail
    _surveys: SurveyStore | None = field(default=None, repr=False)

    def surveys(self) -> SurveyStore:
        """The survey database (PostgreSQL, `PHARMAFLOW_SURVEY_DSN`), connected on first use so
        the API starts (and serves everything else) while that database is down."""
        if self._surveys is None:
            from pharmaflow.serve.surveys.store import SurveyStore

            self._surveys = SurveyStore(self.settings.survey_dsn)
        return self._surveys

    def close(self) -> None:
        self.queries.close()
        self.keys.close()
        self.audit.close()
        if self._surveys is not None:
            self._surveys.close()


def get_services(request: Request) -> Services:
    return request.app.state.services
