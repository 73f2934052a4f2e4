"""The API's vocabulary from CONTRACT.md: error classes, request/response models, game data,
public ids and formats.

May import config and models only: every other package of the service builds on it.
"""
