"""The single source of the package version (read by hatchling and `linewatch --version`)."""

__version__ = "0.1.0"
