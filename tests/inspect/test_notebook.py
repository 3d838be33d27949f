"""A run in a notebook and in xarray: ``Run._repr_html_`` and ``Run.to_xarray``."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from graphflow.errors import GraphflowError
from graphflow.inspect._example import example_run


def test_a_run_shows_what_it_recorded_and_its_losses_as_html():
    run = example_run()
    run.header.setdefault("meta", {})["title"] = "<script>alert(1)</script>"
    html = run._repr_html_()
    assert "<code>dense2/w</code>" in html and "<td>weight</td>" in html and "message_out" in html
    assert "<th>mean loss</th><td>0.5</td><td>0.25</td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_to_xarray_holds_every_field_part_loss_and_group():
    pytest.importorskip("xarray")
    run = example_run()
    tree = run.to_xarray()
    part = tree["parts/dense2/w"].to_dataset()
    assert set(part.data_vars) == set(run.parts["dense2/w"].fields) | {"recorded"}
    assert part["node"].values.tolist() == ["dense2/w[0,0]", "dense2/w[1,0]"] and part.attrs["role"] == "weight"
    for name in run.parts["dense2/w"].fields:
        for nid in run.node_ids():
            np.testing.assert_array_equal(part[name].sel(node=nid).values, run.node(nid)[name].values)
    assert part["message_out"].dims == ("step", "task", "example", "node", "message_out_channel")
    assert part["states_channel"].values.tolist() == ["w", "x"]
    losses = tree["losses"].to_dataset()
    np.testing.assert_array_equal(losses["loss3"].values, run.losses["loss3"])
    np.testing.assert_array_equal(losses["loss3_prediction"].values, run.outputs["loss3"])
    moments = tree["groups/dense2/w"]["moments"]
    assert moments.sel(moment="mean_abs").values.tolist() == pytest.approx([0.125, 0.25])
    assert tree.attrs["steps"] == 2 and tree.attrs["patterns"] == ["dense2/w[*,0]"]


def test_to_xarray_without_xarray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(GraphflowError, match=r"pip install 'graphflow\[xarray\]'"):
        example_run().to_xarray()
