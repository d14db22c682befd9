"""The API's routers, one module per domain; `app.py` includes them in this order."""

from pharmaflow.serve.api.routes import (
    alerts,
    facilities,
    kpis,
    logistics,
    manufacturing,
    ml,
    orders,
    security,
    surveys,
)

ROUTERS = [
    orders.router,
    kpis.router,
    facilities.router,
    logistics.router,
    manufacturing.router,
    alerts.router,
    ml.router,
    surveys.router,
    security.router,
]
