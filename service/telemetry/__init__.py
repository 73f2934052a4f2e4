"""Telemetry: Prometheus metrics (multiprocess), the per-worker exporter, JSON logs.

May import contract, config and aggregators; never ctx, the edge, the domain or handlers.
"""
