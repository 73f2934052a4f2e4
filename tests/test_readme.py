"""The README's settings table is the one rendered from Settings; its commands exist."""

from __future__ import annotations

import re
from dataclasses import fields

from service.config import Settings
from service.runtime.settings_doc import DOCS, settings_table
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented():
    assert {f.name for f in fields(Settings)} == set(DOCS)


def test_readme_carries_the_generated_settings_table():
    assert settings_table() in README


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.M))
    mentioned = set(re.findall(r"`make ([a-z-]+)", README))
    assert {"run", "test"} <= mentioned
    assert mentioned <= targets, mentioned - targets


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make check" in ci
    assert "make check" in README
