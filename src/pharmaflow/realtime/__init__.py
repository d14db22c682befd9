"""The speed layer: windowed KPIs over event time, keyed state, alerts."""
