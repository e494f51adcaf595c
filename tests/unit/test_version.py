"""The version the modules send in their User-Agent matches the collection's version."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.csp.iam.plugins.module_utils._csp_module import COLLECTION_VERSION

GALAXY_YML = Path(__file__).resolve().parents[2] / "galaxy.yml"


def test_user_agent_version_matches_galaxy():
    assert COLLECTION_VERSION == yaml.safe_load(GALAXY_YML.read_text())["version"]
