"""Scoring daemon, alert policy, Prometheus metrics and the `linewatch` command line."""
