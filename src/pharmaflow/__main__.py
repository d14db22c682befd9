"""`python -m pharmaflow` runs the CLI."""

from pharmaflow.cli.main import main

main()
