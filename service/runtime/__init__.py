"""Process plumbing: store connections and migrations, embedded servers, the container
entrypoint, the settings table.

May import the domain (template seeding), contract, telemetry and config; never the edge or
handlers.
"""
