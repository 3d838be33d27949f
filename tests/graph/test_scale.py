"""The 784-1000-1000-10 stack (about 1.8 million weight nodes) builds, validates and reports stats.

Timing and memory are measured by the benchmark command in docs/graph.md, not asserted here.
"""

import graphflow as gf
from graphflow.dsl.layers import quick_stack


def test_784_1000_1000_10_stack_builds_with_the_right_counts():
    graph = gf.build(quick_stack([784, 1000, 1000, 10], "relu", "ce"))
    stats = graph.stats()
    weights = 784 * 1000 + 1000 * 1000 + 1000 * 10
    assert stats["nodes"] == {"input": 784, "weight": weights, "neuron": 2010, "bias": 2010, "activation": 2000,
                              "softmax": 10, "loss": 10, "target": 10}
    assert stats["forward_arrows"] == 2 * weights + 2010 + 2000 + 10 * 10 + 2 * 10
    assert stats["backward_arrows"] == 2 * weights + 2000 + 10 + 10
    assert stats["learner_groups"] == 10
    # compact blocks: dense weights keep no per-node index arrays
    assert all(block.dense for block in graph.weights.values())
    assert graph.select("dense2/w[*,7]").ids()[:2] == ["dense2/w[0,7]", "dense2/w[1,7]"]
    assert graph.node_id("dense2/w", weights - 784 * 1000 - 10 * 1000 - 1) == "dense2/w[999,999]"
    assert graph.to_networkx(collapsed=True).number_of_nodes() == len(graph.parts())
