"""Runs in formats other tools read: OpenTelemetry GenAI spans (``otel``) and ATIF trajectories
(``atif``). Both are exports; what spellide adds that the formats have no field for (program
versions, effect-cache keys and statuses) travels in each format's extension slot."""
