"""The csp action group in meta/runtime.yml must list every module, so module_defaults reaches them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
MODULES_DIR = COLLECTION_ROOT / "plugins" / "modules"
GROUP = "csp"
GROUP_FQCN = f"csp.iam.{GROUP}"


def module_names() -> list[str]:
    return sorted(path.stem for path in MODULES_DIR.glob("*.py") if path.name != "__init__.py")


def action_group_members() -> list[str]:
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    return runtime["action_groups"][GROUP]


def module_documentation(name: str) -> dict:
    """Parse the DOCUMENTATION string of a module without importing it."""
    tree = ast.parse((MODULES_DIR / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "DOCUMENTATION" for target in node.targets
        ):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError(f"plugins/modules/{name}.py has no DOCUMENTATION")


def test_modules_found():
    assert module_names(), f"no module files under {MODULES_DIR}"


def test_group_lists_every_module():
    missing = sorted(set(module_names()) - set(action_group_members()))
    assert not missing, f"modules missing from the {GROUP} action group in meta/runtime.yml: {missing}"


def test_group_names_existing_modules():
    unknown = sorted(set(action_group_members()) - set(module_names()))
    assert not unknown, f"{GROUP} action group entries with no file under plugins/modules: {unknown}"


def test_group_has_no_duplicates():
    group = action_group_members()
    assert len(group) == len(set(group)), f"duplicate entries in the {GROUP} action group: {group}"


@pytest.mark.parametrize("name", module_names())
def test_module_docs_declare_membership(name):
    attributes = module_documentation(name).get("attributes", {})
    assert "action_group" in attributes, f"{name}: DOCUMENTATION has no attributes.action_group"
    membership = attributes["action_group"].get("membership", [])
    assert GROUP_FQCN in membership, f"{name}: attributes.action_group.membership {membership} lacks {GROUP_FQCN}"
