"""Fuzzing the spec side (issue 14): bad input always gets one typed graphflow error.

Hypothesis generates valid layer stacks and free-form graphs (small sizes), mutations of them
(missing fields, wrong kinds, negative and huge sizes, bools where integers go, deep nesting,
dangling names, lone surrogates), JSON-like garbage and random bytes, and feeds them through
``parse_graph_spec``, ``ExperimentSpec.model_validate`` / ``parse_experiment_spec``, ``load_spec``
(from a file), ``graphflow.build`` and, for small valid graphs, one engine step. Only
:class:`graphflow.errors.GraphflowError` subclasses may come out (pydantic's own
``ValidationError`` from ``model_validate``, the model API); anything else fails. Valid specs
survive spec -> graph -> spec and spec -> JSON -> spec unchanged.

A normal run draws about 2,000 examples in all, derandomized (the same ones every run).
``GRAPHFLOW_FUZZ_EXAMPLES=10000 pytest -m fuzz`` draws 10,000; ``GRAPHFLOW_FUZZ_RANDOM=1`` draws
fresh ones each run.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import graphflow as gf
from graphflow.engine import Engine
from graphflow.errors import GraphflowError, SpecError
from graphflow.learners import Protocol
from graphflow.spec import ExperimentSpec, _unusable, load_spec, parse_experiment_spec, parse_graph_spec

pytestmark = pytest.mark.fuzz

TOTAL_EXAMPLES = int(os.environ.get("GRAPHFLOW_FUZZ_EXAMPLES", "2000"))
"""Examples drawn by all the fuzz tests of this file together."""
SHARES = {"valid": 0.10, "mutated": 0.35, "garbage": 0.10, "experiment": 0.25, "file": 0.20}


RANDOM = os.environ.get("GRAPHFLOW_FUZZ_RANDOM") == "1"
"""Draw fresh examples (hypothesis' own seed) instead of the fixed ones, to hunt for new failures."""


def fuzz(share: str):
    return settings(max_examples=max(1, round(TOTAL_EXAMPLES * SHARES[share])), deadline=None, derandomize=not RANDOM,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


ENGINE_NODE_LIMIT = 2000
"""Graphs up to this many nodes also run one engine step."""
ACTIVATIONS = ["relu", "sigmoid", "tanh", "step", "identity"]
LOSSES = ["l2", "l1", "ce"]
SHARINGS = ["layer", "kind", "kind+norm"]
EVIL_INTS = [0, -1, -7, 2, 3, 10**4, 10**6, 2**31, 10**12, 2**62, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30,
             10**400]
evil_ints = st.sampled_from(EVIL_INTS) | st.sampled_from([5000, -5000]).map(lambda e: 10**abs(e) * (1 if e > 0 else -1))
"""Sizes that are wrong, huge or past int64; 10^5000 is built when drawn (hypothesis cannot repr it)."""
EVIL_STRINGS = ["", " ", "x0", "h0", "out", "y", "input", "target", "loss", "dense", "stack", "freeform", "relu",
                "a/b", "w[0,1]", "x*", " x0", "\ud800", "\x00", "..", "/etc", "é", "l2", "ce", "true", "3", "1e400"]
KEYS = ["kind", "name", "size", "units", "inputs", "layers", "blocks", "src", "dst", "mask", "edges", "fn", "target",
        "bias_edges", "fan_in", "sharing", "groups", "graph", "learner", "meta", "seed", "threads"]

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), evil_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), st.sampled_from(EVIL_STRINGS),
)
json_like = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=16,
)


# ------------------------------------------------------------------------------------------------
# Valid specs


def _fn(draw, units: int):
    return draw(st.sampled_from(ACTIVATIONS) | st.lists(st.sampled_from(ACTIVATIONS), min_size=units, max_size=units))


@st.composite
def stack_specs(draw) -> dict:
    layers: list[dict] = []
    dense_names = []
    for _ in range(draw(st.integers(1, 3))):
        units = draw(st.integers(1, 4))
        p = len(layers)
        layer = {"kind": "dense", "units": units}
        if draw(st.booleans()):
            layer["name"] = f"d{p}"
        dense_names.append(layer.get("name", f"dense{p}"))
        layers.append(layer)
        after = draw(st.sampled_from(["none", "activation", "softmax"]))
        if after == "activation":
            layers.append({"kind": "activation", "fn": _fn(draw, units)})
        elif after == "softmax":
            layers.append({"kind": "softmax"})
    layers.append({"kind": "loss", "fn": draw(st.sampled_from(LOSSES))})
    spec = {"kind": "stack", "inputs": draw(st.integers(1, 4)), "layers": layers, "sharing": draw(st.sampled_from(SHARINGS))}
    joined = draw(st.lists(st.sampled_from(dense_names), unique=True, max_size=len(dense_names)))
    if joined:
        spec["groups"] = {f"{name}/w": "joined" for name in joined}
    return spec


@st.composite
def freeform_specs(draw) -> dict:
    """Inputs, a chain of neuron blocks (dense, mask or edge weights, skips, activations or a
    softmax), a loss on the output and sometimes a second head, blocks in any order."""
    blocks: list[dict] = []
    weight_names: list[str] = []

    def connect(src: str, n_src: int, dst: str, n_dst: int, name: str, cover: bool):
        form = draw(st.sampled_from(["dense", "mask", "edges"]))
        block = {"kind": "weights", "name": name, "src": src, "dst": dst}
        if form != "dense":
            mask = [[draw(st.integers(0, 1)) for _ in range(n_dst)] for _ in range(n_src)]
            if cover:  # every source unit feeds a weight, every neuron gets one
                for row in mask:
                    if not any(row):
                        row[draw(st.integers(0, n_dst - 1))] = 1
                for j in range(n_dst):
                    if not any(row[j] for row in mask):
                        mask[draw(st.integers(0, n_src - 1))][j] = 1
            if not any(map(any, mask)):
                mask[0][0] = 1
            if form == "mask":
                block["mask"] = mask
            else:
                pairs = [[i, j] for i in range(n_src) for j in range(n_dst) if mask[i][j]]
                block["edges"] = draw(st.permutations(pairs))
        if draw(st.booleans()):
            block["fan_in"] = n_src
        blocks.append(block)
        weight_names.append(name)

    sources = []
    for k in range(draw(st.integers(1, 2))):
        size = draw(st.integers(1, 3))
        blocks.append({"kind": "input", "name": f"x{k}", "size": size})
        sources.append((f"x{k}", size))
    n_inputs = len(sources)
    prev, prev_size = sources[-1]
    hidden = draw(st.integers(0, 2))
    for h in range(hidden + 1):
        name = "out" if h == hidden else f"h{h}"
        size = draw(st.integers(1, 3))
        neurons = {"kind": "neurons", "name": name, "size": size}
        if draw(st.booleans()):
            neurons["bias_edges"] = [[b, n] for n, b in enumerate(draw(st.permutations(range(size))))]
        blocks.append(neurons)
        connect(prev, prev_size, name, size, name if draw(st.booleans()) else f"w{h}", cover=True)
        if len(sources) > 1 and draw(st.booleans()):
            src, src_size = draw(st.sampled_from(sources[:-1]))
            connect(src, src_size, name, size, f"skip{h}", cover=False)
        after = draw(st.sampled_from(["none", "activation", "softmax"]))
        if after == "activation":
            blocks.append({"kind": "activation", "name": f"a{h}", "src": name, "fn": _fn(draw, size)})
            name = f"a{h}"
        elif after == "softmax":
            blocks.append({"kind": "softmax", "name": f"s{h}", "src": name})
            name = f"s{h}"
        sources.append((name, size))
        prev, prev_size = name, size
    blocks += [{"kind": "target", "name": "y", "size": prev_size},
               {"kind": "loss", "name": "loss", "src": prev, "target": "y", "fn": draw(st.sampled_from(LOSSES))}]
    if hidden and draw(st.booleans()):
        src, size = draw(st.sampled_from(sources[n_inputs:-1]))
        blocks += [{"kind": "target", "name": "y2", "size": size},
                   {"kind": "loss", "name": "aux", "src": src, "target": "y2", "fn": draw(st.sampled_from(LOSSES))}]
    spec = {"kind": "freeform", "blocks": draw(st.permutations(blocks)), "sharing": draw(st.sampled_from(SHARINGS))}
    joined = draw(st.lists(st.sampled_from(weight_names), unique=True, max_size=len(weight_names)))
    if joined:
        spec["groups"] = {f"{name}/w": "joined" for name in joined}
    return spec


graph_specs = stack_specs() | freeform_specs()


@st.composite
def experiment_specs(draw) -> dict:
    spec = {"graph": draw(graph_specs)}
    optional = {
        "name": st.sampled_from(["experiment", "tiny", "fuzz-1", "é"]),
        "seed": st.integers(0, 2**70),
        "threads": st.integers(1, 8),
        "backend": st.just("numpy"),
        "eval_every": st.integers(1, 10**6),
        "checkpoint_every": st.integers(1, 10**6),
        "eval_tasks": st.integers(1, 100),
        "task": st.just({"kind": "sinusoid"}) | st.just({"kind": "mnist", "data_dir": "data/mnist"}),
        "learner": st.fixed_dictionaries({}, optional={
            "kind": st.sampled_from(["stateful", "stateless"]), "message_size": st.integers(1, 16),
            "hidden": st.integers(0, 16), "mlp_hidden": st.tuples(st.integers(1, 90), st.integers(1, 90)).map(list),
            "gru_mlp_activation": st.sampled_from(["tanh", "relu"]), "aggregation": st.sampled_from(["mean", "sum"]),
            "init_std": st.floats(1e-6, 1.0), "out_scale_factor": st.floats(1e-3, 2.0) | st.integers(1, 3)}),
        "meta": st.fixed_dictionaries({}, optional={
            "steps": st.integers(1, 10**6), "outer_batch": st.integers(1, 64), "inner_steps": st.integers(1, 50),
            "shots": st.integers(1, 100), "heldout": st.integers(1, 100), "hint_weight": st.floats(0, 1),
            "heldout_weight": st.floats(0, 1) | st.integers(0, 2), "learning_rate": st.floats(1e-8, 1.0),
            "learning_rate_final": st.none() | st.floats(1e-9, 1e-3), "init_pool": st.integers(1, 1000),
            "normalization_rounds": st.integers(1, 10), "normalization_blend": st.floats(1e-3, 1.0),
            "maml": st.booleans(), "train_g": st.booleans(), "on_nonfinite": st.sampled_from(["rollback", "stop"])}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    return spec


# ------------------------------------------------------------------------------------------------
# Mutations


def _paths(data, max_depth: int = 12) -> list[tuple]:
    """Paths into nested dicts and lists, to each value (dicts and lists included), not below
    ``max_depth`` (a value nested 3000 deep is one value)."""
    out, todo = [], [((), data)]
    while todo:
        prefix, value = todo.pop()
        out.append(prefix)
        if len(prefix) < max_depth:
            items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
            todo += [(prefix + (k,), v) for k, v in items]
    return sorted(out, key=lambda p: (len(p), [str(k) for k in p]))


def _get(data, path):
    for p in path:
        data = data[p]
    return data


def _nest(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated(draw, base):
    """``base`` (a JSON-like spec) changed in one to three places."""
    data = json.loads(json.dumps(draw(base)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            op = draw(st.sampled_from(["garbage", "nest", "extra"]))
            if op == "garbage":
                data = draw(json_like)
            elif op == "nest":
                data = _nest(data, draw(st.sampled_from([1, 3, 200, 2000])))
            elif isinstance(data, dict):
                data[draw(st.sampled_from(KEYS) | st.text(max_size=4))] = draw(json_like)
            continue
        parent, key = _get(data, path[:-1]), path[-1]
        value = parent[key]
        op = draw(st.sampled_from(["garbage", "evil_int", "evil_str", "bool", "float", "delete", "nest", "extra",
                                   "duplicate", "swap", "negate", "small_int", "small_int"]))
        if op == "small_int" and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = draw(st.integers(-1, 5))  # often still a valid spec: a different graph, or a GraphError
        elif op == "garbage":
            parent[key] = draw(json_like)
        elif op == "evil_int":
            parent[key] = draw(evil_ints)
        elif op == "evil_str":
            parent[key] = draw(st.sampled_from(EVIL_STRINGS))
        elif op == "bool":
            parent[key] = draw(st.booleans())
        elif op == "float":
            parent[key] = float(value) if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**300 else \
                draw(st.floats(allow_nan=True, allow_infinity=True))
        elif op == "negate" and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = -value
        elif op == "delete":
            del parent[key]
        elif op == "nest":
            parent[key] = _nest(value, draw(st.sampled_from([1, 2, 200, 3000])))
        elif op == "extra" and isinstance(value, dict):
            value[draw(st.sampled_from(KEYS) | st.text(max_size=4))] = draw(json_like)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, _copy(value))
        elif op == "swap":
            other = _get(data, draw(st.sampled_from(paths)))
            if other is not parent and not _contains(other, parent):
                parent[key] = _copy(other)
    return data


def _copy(value):
    """A copy, or the value itself when it nests too deeply to copy (sharing it is fine here)."""
    try:
        return copy.deepcopy(value)
    except RecursionError:
        return value


def _contains(container, item) -> bool:
    return any(p for p in _paths(container) if _get(container, p) is item)


# ------------------------------------------------------------------------------------------------
# Checks


def typed(f, *args):
    """``f(*args)``, or None when it raises a graphflow error; any other exception fails the test."""
    try:
        out = f(*args)
    except GraphflowError as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
        event(f"{f.__name__}: {type(err).__name__}")
        return None
    event(f"{f.__name__}: ok")
    return out


def _json_text(data) -> str | None:
    try:
        return json.dumps(data)
    except (ValueError, RecursionError):  # integers of more than 4300 digits, nesting too deep to write
        return None


def one_engine_step(graph: gf.Graph) -> None:
    engine = Engine(graph, Protocol.init(graph, gf.LearnerSpec(hidden=2, message_size=2, mlp_hidden=[4, 4])), threads=1)
    state = engine.init_network(np.random.default_rng(0), tasks=1)
    rng = np.random.default_rng(1)

    def data(blocks):
        arrays = {b.name: rng.uniform(0, 1, size=(1, 2, b.size)) for b in blocks}
        return arrays if len(blocks) > 1 else arrays[blocks[0].name]

    new_state, _ = engine.step(state, data(graph.inputs), data(graph.targets))
    assert set(new_state.params) == set(state.params)


def check_graph(spec, step: bool = True) -> gf.Graph | None:
    """Build a validated graph spec: a graph or a GraphError; graphs give their spec back, small
    ones run one engine step."""
    graph = typed(gf.build, spec)
    if graph is None:
        return None
    assert graph.to_spec() == spec
    assert parse_graph_spec(spec.model_dump_json()) == spec
    if step and graph.stats()["total_nodes"] <= ENGINE_NODE_LIMIT:
        typed(one_engine_step, graph)
    return graph


def check_graph_data(data) -> None:
    """Graph data through every door: a dict, JSON text and (via check_graph) the builder."""
    spec = typed(parse_graph_spec, data)
    text = _json_text(data)
    if text is not None:
        from_text = typed(parse_graph_spec, text)
        if spec is not None and from_text is not None:
            assert from_text == spec
    built = typed(gf.build, data)  # build takes the dict itself too
    if spec is not None:
        check_graph(spec, step=built is not None)
    else:
        assert built is None


def check_experiment_data(data) -> ExperimentSpec | None:
    spec = typed(parse_experiment_spec, data)
    if _unusable(data) is None:  # pydantic's own API walks deep data and reprs huge ints (parse_* refuse them first)
        try:
            direct = ExperimentSpec.model_validate(data)
        except ValidationError:
            direct = None
        assert spec == direct
    if spec is not None:
        assert ExperimentSpec.model_validate_json(spec.model_dump_json()) == spec
        check_graph(spec.graph, step=False)
    return spec


# ------------------------------------------------------------------------------------------------
# Tests


@fuzz("valid")
@given(graph_specs)
def test_valid_specs_build_give_their_spec_back_and_step(data):
    spec = parse_graph_spec(data)
    graph = gf.build(spec)   # a valid spec must build: any error here is a bug
    assert graph.to_spec() == spec
    assert gf.build(parse_graph_spec(spec.model_dump_json())).to_spec() == spec
    one_engine_step(graph)


@fuzz("mutated")
@given(mutated(graph_specs))
def test_mutated_graph_specs_give_typed_errors(data):
    check_graph_data(data)


@fuzz("garbage")
@given(json_like)
def test_garbage_gives_typed_errors(data):
    check_graph_data(data)
    check_experiment_data(data)


@fuzz("experiment")
@given(experiment_specs() | mutated(experiment_specs()))
def test_experiment_specs_give_typed_errors(data):
    check_experiment_data(data)


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_specs")


def _file_contents():
    text = (st.builds(_json_text, graph_specs | experiment_specs() | mutated(graph_specs) | mutated(experiment_specs())
                      | json_like)
            .filter(lambda t: t is not None))
    wrapped = st.tuples(text, st.sampled_from(["", "\ufeff", " \n"]), st.sampled_from([0, 1, 5000])).map(
        lambda t: t[1] + "[" * t[2] + t[0] + "]" * t[2])
    return st.one_of(st.binary(max_size=64), text.map(str.encode), wrapped.map(str.encode),
                     text.map(lambda t: t.encode("utf-16")), st.builds(lambda t, cut: t[:cut], text, st.integers(0, 40))
                     .map(str.encode))


@fuzz("file")
@given(content=_file_contents())
def test_load_spec_gives_typed_errors_naming_the_file(spec_dir, content):
    path = spec_dir / "spec.json"
    path.write_bytes(content)
    try:
        spec = load_spec(path)
    except SpecError as err:
        assert str(path) in str(err), str(err)
        return
    assert isinstance(spec, (ExperimentSpec, gf.StackSpec, gf.FreeFormSpec))
    check_graph(spec.graph if isinstance(spec, ExperimentSpec) else spec, step=False)


# ------------------------------------------------------------------------------------------------
# The cases the fuzzer found or that the issue named, spelled out


def _graph_text(inputs: str) -> str:
    return '{"kind": "stack", "inputs": ' + inputs + ', "layers": [{"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}]}'


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"kind": "stack", "inputs": 1, "layers": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    (b"\xff\xfe\x00{", "not UTF-8 text (byte 0xff at offset 0)"),
    (_graph_text("9" * 5000), "an integer of more than 4300 digits"),
    ("{not json", "not valid JSON"),
    (_graph_text("true"), "inputs: Input should be a valid integer (got True)"),
    (_graph_text("3.0"), "inputs: Input should be a valid integer (got 3.0)"),
    (_graph_text('"3"'), "inputs: Input should be a valid integer (got '3')"),
    (_graph_text("-5"), "inputs: Input should be greater than 0 (got -5)"),
])
def test_bad_spec_files_give_one_spec_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_a_huge_input_block_is_a_graph_error_naming_it(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(_graph_text("9" * 100))
    with pytest.raises(gf.GraphError, match=r"input 'input': about 10\^100 units: more than a 64-bit index holds"):
        gf.build(load_spec(path))


def test_a_folder_or_an_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="is a folder, not a spec file"):
        load_spec(tmp_path)
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who reads any file (root)")
        with pytest.raises(SpecError, match="locked.json: permission denied"):
            load_spec(path)
    finally:
        path.chmod(0o644)


def test_deep_nesting_in_python_data_and_json_text_is_a_spec_error():
    deep = _nest({"kind": "dense", "units": 1}, 5000)
    with pytest.raises(SpecError, match=r"layers\.0\.0: nested too deeply"):
        parse_graph_spec({"kind": "stack", "inputs": 1, "layers": [deep]})
    with pytest.raises(SpecError, match=r"graph\.layers\.0: nested too deeply"):
        parse_experiment_spec({"graph": {"kind": "stack", "inputs": 1, "layers": [deep]}})
    with pytest.raises(SpecError, match="recursion limit exceeded"):
        parse_graph_spec('{"kind": "stack", "inputs": 1, "layers": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(SpecError, match="recursion limit exceeded"):
        parse_experiment_spec('{"graph": ' + "[" * 5000 + "]" * 5000 + "}")


def test_a_huge_integer_in_python_data_is_named_without_printing_it():
    with pytest.raises(SpecError, match=r"layers.0.units: an integer of about 5001 digits, far too large for any field"):
        parse_graph_spec({"kind": "stack", "inputs": 1, "layers": [{"kind": "dense", "units": -10**5000},
                                                                   {"kind": "loss", "fn": "l2"}]})
    with pytest.raises(SpecError, match=r"kind: an integer of about 5001 digits"):
        parse_graph_spec({"kind": 10**5000})
    with pytest.raises(SpecError, match=r"inputs: Input should be greater than 0 \(got an integer of 300 digits\)"):
        parse_graph_spec({"kind": "stack", "inputs": -10**299, "layers": [{"kind": "loss", "fn": "l2"}]})


def test_a_lone_surrogate_in_a_name_is_refused():
    with pytest.raises(SpecError, match="blocks.0.name: Value error, text holds a lone surrogate"):
        parse_graph_spec({"kind": "freeform", "blocks": [{"kind": "input", "name": "x\ud800", "size": 1}]})
    with pytest.raises(SpecError, match="groups"):
        parse_graph_spec({"kind": "stack", "inputs": 1, "layers": [{"kind": "dense", "units": 1}, {"kind": "loss", "fn": "l2"}],
                          "groups": {"dense0/w": "\udcff"}})
