"""The protocols bundled in graphflow/data/ evaluate as docs/reproduction.md states."""

from __future__ import annotations

import pytest

import graphflow as gf


def test_the_bundled_sinusoid_protocol_meets_the_published_checkpoint_s_figure():
    trained = gf.load_protocol("sinusoid")
    assert trained.experiment.name == "sinusoid-5x10-long" and trained.trained_steps == 26200
    curves = gf.evaluate("sinusoid", tasks=100, seed=0)  # `graphflow eval --protocol sinusoid --tasks 100 --seed 0`
    step5 = curves["graphflow"].mean[5]
    assert step5 <= 0.0013  # the published checkpoint's step-5 eval loss, measured by graphflow mplp eval
    assert round(step5, 4) == pytest.approx(0.0008)  # the figure docs/reproduction.md gives
    assert step5 < curves["adam"].mean[5] / 20
