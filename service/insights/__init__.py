"""Answer quality and search insights: feedback records with their rollups, the admin reads
(feedback list, summary, patterns, content gaps), the review workflow and the CSV export.

May import contract, telemetry, config, aggregators and models; never the HTTP edge, handlers,
auth or builds (the handlers pass the reviewing admin in).
"""
