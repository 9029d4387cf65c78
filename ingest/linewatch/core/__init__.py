"""Shared foundations: reading schema, configuration, paths, logging, lifecycle. Imports nothing else of ours."""
