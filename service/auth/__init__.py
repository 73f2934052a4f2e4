"""Players and admins: bearer tokens (JWT) verified into `request.ctx.player`, the guards
handlers ask ("who is it", "is it an admin"), and the local development issuer.

Layering: beside the builds domain (independent of it), below the HTTP edge. May import ctx,
telemetry, contract and config; never service.http or service.handlers (errors leave as
contract AppErrors, rendered by the edge's one error handler).
"""
