"""The Kafka side: an embedded broker for local runs, and the topics pharmaflow uses."""
