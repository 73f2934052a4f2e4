"""The HTTP edge: sessions, request decoding, error rendering, rate limits, request observation.

May import the domain packages, contract, telemetry, ctx and config; only app.py, resources.py
and handlers/ import it.
"""
