"""MyAshes community backend: Sanic service for builds, votes, feedback and search analytics."""

__version__ = "0.1.0"
