"""Services that take data in from people and systems (the survey database first)."""
