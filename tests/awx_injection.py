"""Render the AWX credential type in docs/awx/credential-type.yml the way AWX renders custom credential types.

The behaviour follows AWX's custom credential types: inputs that the credential does not set are missing from
the template namespace, so they render as empty strings. Every `file` injector is written to a new file under
`<private_data_dir>/env` with mode 0600, even when it renders empty, and `tower.filename.<name>` contains its path.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

CREDENTIAL_TYPE_PATH = Path(__file__).resolve().parent.parent / "docs" / "awx" / "credential-type.yml"


def load_credential_type(path: Path = CREDENTIAL_TYPE_PATH) -> dict:
    return yaml.safe_load(path.read_text())


def render_injectors(credential_type: dict, inputs: dict, private_data_dir: Path) -> dict[str, str]:
    """Write the credential's files under ``private_data_dir/env`` and return the environment variables to inject."""
    namespace = {name: value for name, value in inputs.items() if value not in (None, "")}
    filenames = SimpleNamespace()
    namespace["tower"] = SimpleNamespace(filename=filenames)
    sandbox = ImmutableSandboxedEnvironment()
    injectors = credential_type.get("injectors", {})

    env_dir = private_data_dir / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for label, template in injectors.get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as file:
            file.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        _prefix, _separator, name = label.partition(".")
        setattr(filenames, name, path)

    return {name: sandbox.from_string(template).render(**namespace) for name, template in injectors.get("env", {}).items()}
