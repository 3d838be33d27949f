"""``meta.start_from``: meta-training that starts from an existing protocol (a run, a protocol
file, a bundled protocol or a published MPLP checkpoint), checked against the experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphflow.errors import GraphflowError
from graphflow.interop.mplp import load_checkpoint
from graphflow.meta.trainer import Trainer
from graphflow.presets import PRESETS
from graphflow.spec import ExperimentSpec

from tests.meta.test_trainer import meta_losses, tiny_experiment


def started(**meta) -> ExperimentSpec:
    return tiny_experiment(seed=1, normalization_rounds=1, **meta)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny run of 6 meta-steps: the protocol the other runs start from."""
    folder = tmp_path_factory.mktemp("source")
    Trainer(tiny_experiment(), folder).train(progress=False)
    return folder


def source_flat(folder) -> dict:
    return Trainer.resume(folder / "checkpoint.npz").protocol.flat()


def test_a_run_starts_from_the_protocol_of_a_run_folder(source_run, tmp_path):
    expected = source_flat(source_run)
    trainer = Trainer(started(start_from=str(source_run)), tmp_path)
    fresh = Trainer(started(), tmp_path / "fresh")
    trainer.setup()
    fresh.setup()
    flat = trainer.protocol.flat()
    assert flat.keys() == expected.keys()
    for key, value in expected.items():  # every array, the normalization's too (not measured again)
        np.testing.assert_array_equal(flat[key], value, err_msg=key)
    assert any(not np.array_equal(fresh.protocol.flat()[k], v) for k, v in expected.items())
    trainer.train(steps=1, progress=False)
    assert trainer.step == 1 and any(not np.array_equal(trainer.protocol.flat()[k], v)
                                     for k, v in expected.items() if k.startswith("learner::"))


def test_a_started_run_resumes_exactly(source_run, tmp_path):
    exp = started(start_from=str(source_run / "checkpoint.npz"), steps=4)
    Trainer(exp, tmp_path / "whole").train(progress=False)
    Trainer(exp, tmp_path / "parts").train(steps=2, progress=False)
    Trainer.resume(tmp_path / "parts" / "checkpoint.npz").train(progress=False)
    assert meta_losses(tmp_path / "parts") == meta_losses(tmp_path / "whole")


def test_a_start_with_another_learner_is_refused_naming_the_field(source_run, tmp_path):
    exp = tiny_experiment().model_copy(update={"learner": tiny_experiment().learner.model_copy(update={"hidden": 3})})
    exp = exp.model_copy(update={"meta": exp.meta.model_copy(update={"start_from": str(source_run)})})
    with pytest.raises(GraphflowError, match=r"meta.start_from .*learner.hidden: 2 in the protocol, 3 in the experiment"):
        Trainer(exp, tmp_path).setup()


def test_a_start_that_does_not_fit_the_graph_is_refused_naming_the_array(source_run, tmp_path):
    graph = tiny_experiment().graph.model_copy(update={"sharing": "kind"})
    exp = started(start_from=str(source_run)).model_copy(update={"graph": graph})
    with pytest.raises(GraphflowError, match=r"meta.start_from .*does not fit its graph and learner spec"):
        Trainer(exp, tmp_path).setup()


def test_a_missing_start_is_one_clear_error(tmp_path):
    with pytest.raises(GraphflowError, match=r"meta.start_from .*nope.npz: no such protocol file"):
        Trainer(started(start_from=str(tmp_path / "nope.npz")), tmp_path).setup()


def test_a_bundled_protocol_by_name(tmp_path):
    from graphflow.api import load_protocol

    bundled = load_protocol("sinusoid")
    exp = ExperimentSpec.model_validate({**json.loads(bundled.experiment.model_dump_json()),
                                         "meta": {"steps": 1, "outer_batch": 1, "inner_steps": 2, "start_from": "sinusoid"}})
    trainer = Trainer(exp, tmp_path)
    trainer.setup()
    for key, value in bundled.protocol.flat().items():
        np.testing.assert_array_equal(trainer.protocol.flat()[key], value, err_msg=key)


def test_a_published_checkpoint_is_matched_to_its_preset(reference_dir, mnist_dir, tmp_path):
    path = reference_dir / "mnist_weights_00005000.npy"
    _, expected = load_checkpoint("mnist", path)
    exp = ExperimentSpec.model_validate({
        "name": "from-published", "graph": {**PRESETS["mnist"]().model_dump(mode="json"), "sharing": "kind"},
        "learner": {"kind": "stateful", "message_size": 4, "hidden": 7},
        "task": {"kind": "mnist", "data_dir": str(mnist_dir)},
        "meta": {"steps": 1, "outer_batch": 1, "inner_steps": 2, "shots": 8, "init_pool": 2, "start_from": str(path)}})
    trainer = Trainer(exp, tmp_path)
    trainer.setup()
    for key, value in expected.flat().items():
        np.testing.assert_array_equal(trainer.protocol.flat()[key], value, err_msg=key)
    wrong = exp.model_copy(update={"learner": exp.learner.model_copy(update={"message_size": 8})})
    with pytest.raises(GraphflowError, match=r"a published mnist checkpoint, whose learner is not the experiment.s \(learner.message_size: 4 in the protocol, 8"):
        Trainer(wrong, tmp_path / "wrong").setup()


def test_a_maml_run_starts_from_the_published_checkpoint_and_its_prior(reference_dir, tmp_path):
    """A ``meta.maml`` experiment that starts from the published MAML checkpoint takes its protocol
    and, as its initial network, the prior published beside it; the stateless learner's stateful
    fields (``hidden``) may differ, as the learner ignores them."""
    from graphflow.interop.mplp import load_prior

    path = reference_dir / "maml_sin_net_weights_00258202.npy"
    _, expected = load_checkpoint("maml-sinusoid", path)
    exp = ExperimentSpec.model_validate({
        "name": "maml-from-published", "graph": PRESETS["sinusoid"]().model_dump(mode="json"),
        "learner": {"kind": "stateless", "message_size": 8, "hidden": 15},
        "meta": {"steps": 1, "outer_batch": 2, "inner_steps": 2, "init_pool": 2, "maml": True,
                 "start_from": str(path)}})
    trainer = Trainer(exp, tmp_path)
    trainer.setup()
    for key, value in expected.flat().items():
        np.testing.assert_array_equal(trainer.protocol.flat()[key], value, err_msg=key)
    prior = load_prior(trainer.graph, reference_dir / "maml_sin_prior_weights_00258202.npy")
    assert trainer.init.keys() == prior.keys()
    for key, value in prior.items():
        np.testing.assert_array_equal(trainer.init[key], value, err_msg=key)
    trainer.train(progress=False)
    assert trainer.step == 1 and any(not np.array_equal(trainer.init[k], v) for k, v in prior.items())
