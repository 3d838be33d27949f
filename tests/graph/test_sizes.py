"""Absurd sizes are refused from the spec, before any array is allocated (issue 14).

The builder estimates what it will allocate with Python integers (:func:`estimate_bytes`) and
refuses a graph that needs more memory than is available, or whose node counts and indices do
not fit numpy's int64, with a GraphError naming the block.
"""

import time
import tracemalloc
from pathlib import Path

import pytest

import graphflow as gf
from graphflow.graph import memory
from graphflow.graph.build import block_sizes, check_sizes, estimate_bytes
from graphflow.presets import PRESETS

GB = 10**9


def stack(inputs, *units, loss="l2"):
    return {"kind": "stack", "inputs": inputs,
            "layers": [{"kind": "dense", "units": u} for u in units] + [{"kind": "loss", "fn": loss}]}


def refused_quickly(spec, match):
    """The spec is refused with a GraphError matching ``match``, in well under a second, having
    allocated almost nothing."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(gf.GraphError, match=match) as err:
            gf.build(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 10 * 10**6, f"{peak} bytes allocated before refusing"
    return str(err.value)


def test_a_billion_units_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * GB)
    message = refused_quickly(stack(1, 10**9), r"graph needs about \d+\.\d GB to build")
    assert "largest block: neurons 'dense0': 1,000,000,000 neurons" in message
    assert message.endswith("; 4.0 GB available")


def test_a_trillion_units_is_refused_on_any_machine():
    refused_quickly(stack(1, 10**12), r"graph needs about \d+\.\d TB to build \(largest block: .*; [\d.]+ [kMGT]B available")


@pytest.mark.parametrize("spec, match", [
    (stack(2**63, 1), r"input 'input': 9,223,372,036,854,775,808 units: more than a 64-bit index holds"),
    (stack(1, 2**63), r"weights 'dense0': 1 x 9,223,372,036,854,775,808 = 9,223,372,036,854,775,808 weight nodes"),
    ({"kind": "freeform", "blocks": [{"kind": "input", "name": "x", "size": 1}, {"kind": "target", "name": "y", "size": 2**63}]},
     r"target 'y': 9,223,372,036,854,775,808 units: more than a 64-bit index holds"),
    (stack(2**32, 2**32), r"weights 'dense0': 4,294,967,296 x 4,294,967,296 = 18,446,744,073,709,551,616 weight nodes, "
                          r"more than a 64-bit index holds"),
    (gf.StackSpec.model_validate(stack(10**5000, 1)), r"input 'input': about 10\^5000 units: more than a 64-bit index holds"),
    (stack(2**62, 1, 1), r"the graph has 9,223,372,036,854,775,8\d\d nodes, more than a 64-bit index holds "
                         r"\(at most 2\^63 - 1; largest block: input 'input'"),
    ({"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2**62}, {"kind": "input", "name": "x2", "size": 2**62},
        {"kind": "neurons", "name": "h", "size": 1}, {"kind": "weights", "name": "h", "src": "x", "dst": "h", "edges": [[0, 0]]},
        {"kind": "target", "name": "y", "size": 1}, {"kind": "loss", "name": "l", "src": "h", "target": "y", "fn": "l2"}]},
     r"the graph has 9,223,372,036,854,775,8\d\d nodes"),
])
def test_counts_past_int64_are_refused_naming_the_block(spec, match):
    refused_quickly(spec, match)


def _freeform(**weights):
    return {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 2}, {"kind": "neurons", "name": "h", "size": 2, **weights.pop("neurons", {})},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h", **weights},
        {"kind": "target", "name": "y", "size": 2}, {"kind": "loss", "name": "l", "src": "h", "target": "y", "fn": "l2"}]}


@pytest.mark.parametrize("spec, match", [
    (_freeform(edges=[[2**63, 0]]), r"weights 'h': edge \(9223372036854775808, 0\) reads x\[9223372036854775808\], "
                                    r"which does not exist \('x' has 2 units; dangling node\)"),
    (_freeform(edges=[[0, -2**64]]), r"weights 'h': edge \(0, -18446744073709551616\) feeds h/sum\[-18446744073709551616\]"),
    (gf.FreeFormSpec.model_validate(_freeform(edges=[[0, 10**5000]])), r"edge \(0, about 10\^5000\) feeds h/sum\[about 10\^5000\]"),
    (_freeform(neurons={"bias_edges": [[0, 0], [1, 2**64]]}), r"neurons 'h': bias edge \(1, 18446744073709551616\) names "
                                                               r"neuron 18446744073709551616, which does not exist"),
    (_freeform(mask=[[1, 2**70], [1, 1]]), r"weights 'h': mask entries must be 0 or 1"),
    (gf.FreeFormSpec.model_validate(_freeform(fan_in=10**5000)), r"weights 'h': declared fan-in about 10\^5000 does not match src 'x' with 2 units"),
])
def test_indices_past_int64_are_graph_errors_naming_the_edge(spec, match):
    refused_quickly(spec, match)


def test_integers_of_thousands_of_digits_are_spec_errors_in_plain_data():
    with pytest.raises(gf.SpecError, match=r"inputs: an integer of about 5001 digits, far too large for any field"):
        gf.build(stack(10**5000, 1))
    with pytest.raises(gf.SpecError, match=r"blocks\.2\.edges\.0\.1: an integer of about 5001 digits"):
        gf.build(_freeform(edges=[[0, 10**5000]]))


def test_dense_blocks_cost_no_index_arrays_sparse_ones_do():
    assert estimate_bytes(stack(784, 1000, 1000, 10)) < 10**5
    dense = estimate_bytes(stack(10**6, 10**6))       # 10^12 weight nodes, none stored by the graph
    assert dense < 100 * 10**6
    pairs = [[i, 0] for i in range(1000)]
    sparse = {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 1000}, {"kind": "neurons", "name": "h", "size": 1},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h", "edges": pairs},
        {"kind": "target", "name": "y", "size": 1}, {"kind": "loss", "name": "l", "src": "h", "target": "y", "fn": "l2"}]}
    as_dense = {**sparse, "blocks": [{k: v for k, v in b.items() if k != "edges"} for b in sparse["blocks"]]}
    assert estimate_bytes(sparse) - estimate_bytes(as_dense) >= 1000 * 3 * 8   # (i, j) and the given order


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_block_sizes_agree_with_the_built_graph(name):
    spec = PRESETS[name]()
    graph = gf.build(spec)
    sizes = block_sizes(spec)
    assert sum(b.nodes for b in sizes) == graph.stats()["total_nodes"]
    weights = {b.name: b.units for b in sizes if b.kind == "weights"}
    assert weights == {w.name: w.size for w in graph.weights.values()}


def test_block_sizes_of_free_form_graphs_follow_their_sources():
    spec = gf.load_spec(Path(__file__).parents[1] / "spec" / "data" / "freeform_two_losses.json")
    graph = gf.build(spec)
    sizes = block_sizes(spec)
    assert sum(b.nodes for b in sizes) == graph.stats()["total_nodes"]
    assert {b.kind for b in sizes} == {"input", "target", "neurons", "weights", "activation", "softmax", "loss"}
    assert {b.name: b.units for b in sizes if b.kind == "weights"} == {w.name: w.size for w in graph.weights.values()}


def test_check_sizes_takes_a_given_budget_and_passes_what_fits():
    spec = stack(10**4, 10**4)
    assert check_sizes(spec, available=10**9)[1].units == 10**8
    with pytest.raises(gf.GraphError, match=r"graph needs about 610\.0 kB to build .*; 1\.0 kB available"):
        check_sizes(spec, available=1000)


def test_available_memory_falls_back_to_sysconf(monkeypatch):
    found = memory.available_bytes()
    assert found is None or found > 0
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    monkeypatch.setattr(memory, "_cgroup_available", lambda: None)
    monkeypatch.setattr(memory, "_sysconf_available", lambda: 123 * GB)
    assert memory.available_bytes() == 123 * GB
    monkeypatch.setattr(memory, "_sysconf_available", lambda: None)
    assert memory.available_bytes() is None
    memory.require_memory(10**30, "graph")   # nothing known, nothing refused
    monkeypatch.setattr(memory, "_cgroup_available", lambda: 2 * GB)
    assert memory.available_bytes() == 2 * GB


def test_many_bias_edges_are_checked_in_linear_time():
    n = 200_000
    spec = {"kind": "freeform", "blocks": [
        {"kind": "input", "name": "x", "size": 1},
        {"kind": "neurons", "name": "h", "size": n, "bias_edges": [[(j + 1) % n, j] for j in range(n)]},
        {"kind": "weights", "name": "h", "src": "x", "dst": "h"},
        {"kind": "target", "name": "y", "size": n}, {"kind": "loss", "name": "l", "src": "h", "target": "y", "fn": "l2"}]}
    start = time.perf_counter()
    graph = gf.build(spec)
    assert time.perf_counter() - start < 10
    assert graph.to_spec().blocks[1].bias_edges[:2] == [(1, 0), (2, 1)]
