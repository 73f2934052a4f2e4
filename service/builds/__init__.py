"""The builds domain: build records, list queries, popular builds.

May import contract, telemetry, config, aggregators and models; never the HTTP edge or handlers.
"""
