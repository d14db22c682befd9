"""The `pharmaflow` command line."""
