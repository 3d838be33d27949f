"""Learner groups: per layer by default, shared per node kind, user-assigned (MPLP_SPEC.md, "Parameter sharing")."""

import pytest

import graphflow as gf

LAYERS = (gf.Dense(4), gf.ReLU(), gf.Dense(4), gf.Tanh(), gf.Dense(2), gf.Softmax(), gf.CrossEntropy())
SLOTS = ["dense0/w", "dense0/b", "relu1/act", "dense2/w", "dense2/b", "tanh3/act", "dense4/w", "dense4/b",
         "softmax5/unit", "loss6/loss"]


def build(sharing="layer", groups=None):
    return gf.build(gf.stack(3, *LAYERS, sharing=sharing, groups=groups))


def test_slots_name_the_learner_bearing_parts_of_every_block():
    g = build()
    assert list(g.slots) == SLOTS
    w = g.slots["dense2/w"]
    assert (w.block, w.role, w.size, w.states, w.has_parameter) == ("dense2", "weight", 16, ("w", "x"), True)
    loss = g.slots["loss6/loss"]
    assert (loss.role, loss.loss_fn, loss.states, loss.has_parameter) == ("loss", "ce", ("p", "target", "log_p"), False)
    assert g.slots["softmax5/unit"].states == ("z", "t", "e", "s")


def test_default_is_one_group_per_slot():
    g = build()
    assert g.groups == {slot: [slot] for slot in SLOTS}
    assert g.norm_groups == g.groups
    assert g.stats()["learner_groups"] == 10


def test_kind_sharing_is_one_weight_and_one_bias_learner_with_normalization_per_layer():
    g = build("kind")
    assert g.groups["W"] == ["dense0/w", "dense2/w", "dense4/w"]
    assert g.groups["b"] == ["dense0/b", "dense2/b", "dense4/b"]
    # activations, softmax and loss keep their own learners
    assert g.groups["relu1/act"] == ["relu1/act"] and g.groups["tanh3/act"] == ["tanh3/act"]
    assert len(g.groups) == 6
    assert g.norm_groups == {slot: [slot] for slot in SLOTS}
    assert all(s.norm_group == s.key for s in g.slots.values())


def test_kind_and_norm_sharing_shares_the_normalization_too():
    g = build("kind+norm")
    assert g.groups == build("kind").groups
    assert g.norm_groups["W"] == ["dense0/w", "dense2/w", "dense4/w"]
    assert g.slots["dense2/b"].norm_group == "b"
    assert g.stats()["normalization_groups"] == 6


def test_user_groups_override_the_sharing():
    g = build(groups={"dense0/w": "early", "dense2/w": "early", "relu1/act": "acts", "tanh3/act": "acts"})
    assert g.groups["early"] == ["dense0/w", "dense2/w"]
    assert g.groups["acts"] == ["relu1/act", "tanh3/act"]
    assert g.groups["dense4/w"] == ["dense4/w"]
    assert g.slots["dense0/w"].norm_group == "dense0/w"      # normalization stays per slot


def test_user_groups_on_top_of_kind_sharing():
    g = build("kind", groups={"dense4/w": "last"})
    assert g.groups["W"] == ["dense0/w", "dense2/w"] and g.groups["last"] == ["dense4/w"]


def test_user_groups_with_kind_and_norm_share_normalization_by_group():
    g = build("kind+norm", groups={"dense4/w": "last", "dense2/w": "last"})
    assert g.norm_groups["last"] == ["dense2/w", "dense4/w"]


@pytest.mark.parametrize("groups, culprits", [
    ({"dense0/w": "g", "dense0/b": "g"}, r"dense0/w \(weight\), dense0/b \(bias\)"),
    ({"relu1/act": "g", "loss6/loss": "g"}, r"relu1/act \(activation\), loss6/loss \(ce loss\)"),
    ({"softmax5/unit": "W"}, r"learner group 'W' mixes .*softmax5/unit \(softmax\)"),
])
def test_groups_that_mix_node_kinds_are_rejected_naming_the_slots(groups, culprits):
    with pytest.raises(gf.GraphError, match=culprits):
        build("kind", groups=groups)


def test_different_loss_kinds_cannot_share_a_learner():
    net = gf.FreeForm(groups={"a/loss": "losses", "b/loss": "losses"})
    h = net.neurons(2)
    net.connect(net.input(2), h)
    net.loss(h, "l2", name="a")
    net.loss(h, "l1", name="b")
    with pytest.raises(gf.GraphError, match=r"a/loss \(l2 loss\), b/loss \(l1 loss\)"):
        gf.build(net)


def test_unknown_group_slot_lists_the_slots():
    with pytest.raises(gf.GraphError, match=r"groups: 'dense0/x' is not a learner slot of this graph; slots: "
                                            r"dense0/b, dense0/w, dense2/b"):
        build(groups={"dense0/x": "g"})
