"""The azd template as data: every .bicep under infra/ parsed with pycep-parser, and small walks over it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
# An app setting's name: `Section__Key` (.NET nesting) or the host's upper-case ones.
SETTING_NAME = re.compile(r"^(?:[A-Za-z]+(?:__[A-Za-z]+)+|APPLICATIONINSIGHTS_[A-Z_]+)$")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parsed(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def template(name: str) -> dict[str, Any]:
    return parsed(INFRA / name)


def resources(of_type: str) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, symbolic name, body) of every resource of `of_type` the template declares (not `existing` ones);
    the body of a looped or conditional resource is unwrapped."""
    for path in bicep_files():
        for name, resource in parsed(path).get("resources", {}).items():
            if resource["type"] == of_type and not resource.get("existing"):
                yield path, name, unwrap(resource["config"])


def unwrap(config: dict[str, Any]) -> dict[str, Any]:
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar inside `node`, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def setting_names(node: Any) -> set[str]:
    """The app-setting names used as object keys anywhere inside `node`."""
    return {key for d in walk(node) if isinstance(d, dict) for key in d if SETTING_NAME.match(key)}


def app_settings() -> dict[str, Any]:
    """Every app setting the template can set, name -> its value as parsed (an expression tree or text)."""
    found: dict[str, Any] = {}
    sources = [template("modules/app.bicep")["variables"]["hostSettings"],
               template("main.bicep")["modules"]["app"]["config"]["params"]["exportSettings"],
               template("main.bicep")["variables"]["storeSettings"]]
    for source in sources:
        for d in walk(source):
            if isinstance(d, dict):
                found.update({key: value for key, value in d.items() if SETTING_NAME.match(key)})
    return found
