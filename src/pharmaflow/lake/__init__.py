"""The lake: bronze (immutable arrival log) and quarantine as Parquet, committed per batch."""
