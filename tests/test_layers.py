"""The package's imports run one way: no import cycle, and each layer imports only the layers below it.

Config, schema, inputs and the pseudo-fake families below the models; the models below the data path; the
data path below training; prediction and evaluation import no training module. Deferred imports inside
functions count (:mod:`import_graph`): one that dodges a cycle is still the cycle.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from import_graph import import_graph, strongly_connected

GRAPH = import_graph()

# (modules, packages none of them may import, directly or through others)
LAYERS = [
    (["interceptor.config", "interceptor.schema", "interceptor.inputs", "interceptor.pseudo_fakes",
      "interceptor.jpeg"], ["interceptor.models", "interceptor.data", "interceptor.train"]),
    (["interceptor.models"], ["interceptor.data", "interceptor.train"]),
    (["interceptor.data"], ["interceptor.train"]),
    (["interceptor.predict", "interceptor.evaluation"], ["interceptor.train"]),
]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def import_chain(start: str, forbidden: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` to a module of ``forbidden``, or None."""
    parents = {start: None}
    queue = [start]
    for module in queue:
        if within(module, forbidden):
            chain = [module]
            while parents[chain[-1]] is not None:
                chain.append(parents[chain[-1]])
            return chain[::-1]
        for imported in sorted(GRAPH[module]):
            if imported not in parents:
                parents[imported] = module
                queue.append(imported)
    return None


def test_the_graph_sees_the_whole_package():
    assert {"interceptor", "interceptor.models.registry", "interceptor.pseudo_fakes", "interceptor.train.trainer"} \
        <= set(GRAPH)
    assert "interceptor.pseudo_fakes" in GRAPH["interceptor.models.cm"]
    assert "interceptor.models" in GRAPH["interceptor.train.launch"]  # a submodule's import runs its package


def test_no_import_cycle():
    assert strongly_connected(GRAPH) == []


@pytest.mark.parametrize("layer, forbidden", LAYERS, ids=[",".join(layer) for layer, _ in LAYERS])
def test_each_layer_imports_only_the_layers_below(layer, forbidden):
    violations = []
    for module in (m for m in GRAPH if any(within(m, package) for package in layer)):
        for package in forbidden:
            chain = import_chain(module, package)
            if chain:
                violations.append(" -> ".join(chain))
    assert violations == []


def test_loading_a_config_imports_no_model():
    """The config knows no specialist: the layer above passes the registry's check."""
    code = ("import sys; from interceptor.config import load_config; load_config('default'); "
            "print(sorted(m for m in sys.modules if m.startswith(('interceptor.models', 'torch'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
