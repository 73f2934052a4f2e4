"""Deployment test support: manifest loading helpers and vendored CRD schemas (crds/)."""
