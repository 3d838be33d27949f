"""``graphflow graph``: build a graph from a preset, a spec file or layer sizes; report and draw it.

Examples::

    graphflow graph mnist --json
    graphflow graph my_experiment.json --png graph.png
    graphflow graph --layers 784,1000,1000,10 --activation relu --loss ce --json
"""

import json
from pathlib import Path
from typing import Optional

import typer

from graphflow.cli import app, fail
from graphflow.errors import SpecError
from graphflow.graph.kinds import NODE_KINDS
from graphflow.viz.drawing import learner_group_legend


def parse_layer_sizes(text: str) -> list[int]:
    """``"784,1000,10"`` -> ``[784, 1000, 10]``, with an error naming the bad entry.

    >>> parse_layer_sizes("784, 100,10")
    [784, 100, 10]
    >>> parse_layer_sizes("784,ten")
    Traceback (most recent call last):
    ...
    graphflow.errors.SpecError: --layers '784,ten': 'ten' is not a whole number (expected sizes like 784,100,10)
    """
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise SpecError(f"--layers {text!r}: {part!r} is not a whole number (expected sizes like 784,100,10)")
        sizes.append(int(part))
    return sizes


def summary_table(graph, title: str) -> str:
    """A readable summary: node counts per node kind, arrows, and every learner group with its slots.

    >>> import graphflow as gf
    >>> print(summary_table(gf.build(gf.stack(2, gf.Dense(1), gf.L2Loss())), "tiny"))  # doctest: +NORMALIZE_WHITESPACE
    graph tiny: 8 nodes in 5 blocks, 4 waves
    <BLANKLINE>
      node kind       count
      input               2
      weight              2
      neuron              1
      bias                1
      loss                1
      target              1
      total               8
    <BLANKLINE>
      forward arrows      7
      backward arrows     5
    <BLANKLINE>
      learner group   node kind   nodes  slots
      dense0/w        weight          2  dense0/w
      dense0/b        bias            1  dense0/b
      loss1/loss      l2 loss         1  loss1/loss
    """
    stats = graph.stats()
    lines = [f"graph {title}: {stats['total_nodes']:,} nodes in {stats['blocks']} blocks, {stats['waves']} waves", ""]
    lines.append(f"  {'node kind':<14}{'count':>7}")
    for kind in NODE_KINDS:
        if stats["nodes"].get(kind):
            lines.append(f"  {kind:<14}{stats['nodes'][kind]:>7,}")
    lines.append(f"  {'total':<14}{stats['total_nodes']:>7,}")
    lines += ["", f"  {'forward arrows':<16}{stats['forward_arrows']:>5,}", f"  {'backward arrows':<16}{stats['backward_arrows']:>5,}", ""]
    rows = [(entry.group, entry.kind, f"{entry.nodes:,}", ", ".join(entry.members))
            for entry in learner_group_legend(graph)]
    width = max(len("learner group"), *(len(r[0]) for r in rows)) + 2
    nodes_width = max(5, *(len(r[2]) for r in rows))
    lines.append(f"  {'learner group':<{width}}{'node kind':<12}{'nodes':>{nodes_width}}  slots")
    lines += [f"  {g:<{width}}{k:<12}{n:>{nodes_width}}  {s}" for g, k, n, s in rows]
    if stats["normalization_groups"] != stats["learner_groups"]:
        lines.append(f"  ({stats['normalization_groups']} normalization groups)")
    return "\n".join(lines)


@app.command("graph")
def graph_command(
    spec: Optional[str] = typer.Argument(
        None, metavar="SPEC|PRESET", help="A preset (sinusoid, maml-sinusoid, mnist, mnist-784) or a JSON graph or experiment spec file."),
    layers: Optional[str] = typer.Option(
        None, "--layers", help="Build a dense stack from sizes instead, e.g. 784,1000,1000,10."),
    activation: str = typer.Option("relu", "--activation", help="Hidden activation of a --layers stack."),
    loss: str = typer.Option("l2", "--loss", help="Loss of a --layers stack: l2, l1 or ce (ce adds a softmax)."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    svg: Optional[Path] = typer.Option(None, "--svg", help="Draw the graph into this SVG file."),
    png: Optional[Path] = typer.Option(None, "--png", help="Draw the graph into this PNG file."),
    dot: Optional[Path] = typer.Option(None, "--dot", help="Write the graph's Graphviz DOT text to this file."),
    collapsed: Optional[bool] = typer.Option(
        None, "--collapsed/--per-node",
        help="Draw one box per block part (--collapsed) or per scalar node (--per-node); default: collapsed above 300 nodes."),
    backend: str = typer.Option("auto", "--backend", help="Drawing backend: auto, graphviz or matplotlib."),
) -> None:
    """Build a graph, print its node and arrow counts, and optionally draw it."""
    from graphflow.dsl.layers import quick_stack
    from graphflow.graph import build
    from graphflow.presets import graph_spec_for
    from graphflow.viz import draw_graph

    if (spec is None) == (layers is None):
        fail("give either SPEC|PRESET or --layers (e.g. `graphflow graph mnist` or `graphflow graph --layers 144,50,10`)")
    if spec is not None:
        graph_spec, title = graph_spec_for(spec), spec
    else:
        graph_spec, title = quick_stack(parse_layer_sizes(layers), activation, loss), layers
    graph = build(graph_spec)

    for path, fmt in ((svg, "svg"), (png, "png"), (dot, "dot")):
        if path is not None:
            written = draw_graph(graph, path, collapsed=collapsed, backend=backend, fmt=fmt)
            typer.echo(f"wrote {written}", err=as_json)
    if as_json:
        typer.echo(json.dumps(graph.stats(), indent=2))
    else:
        typer.echo(summary_table(graph, title))
