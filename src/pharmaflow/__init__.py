"""pharmaflow."""
