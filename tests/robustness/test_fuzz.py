"""Fuzz the loaders of untrusted JSON: whatever the input, only our own InputError may escape."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftstudio.core.architecture import LAYERS, analyze, parse_model
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import Recipe

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
param_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(-1e3, 1e9),
                         st.sampled_from(["auto", "classes", "same", "", "x"]))
layer = st.fixed_dictionaries({
    "type": st.sampled_from(sorted(LAYERS) + ["Bogus"]),
    "params": st.dictionaries(st.sampled_from(["in_features", "out_features", "out_channels", "kernel_size", "stride",
                                               "padding", "p", "output_size", "name", "weights", "bias"]),
                              param_values, max_size=4),
})
architecture = st.fixed_dictionaries({
    "input_shape": st.lists(st.one_of(st.integers(-2, 64), st.just("auto")), min_size=0, max_size=4),
    "layers": st.lists(layer, min_size=0, max_size=6),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_recipe_loader_only_raises_input_error(doc):
    try:
        Recipe.from_dict(doc)
    except InputError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_architecture_loader_only_raises_input_error(doc):
    try:
        parse_model(doc)
    except InputError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(architecture, st.sampled_from([(1, 8, 8), (3, 16, 16), (1, 28, 28)]))
def test_any_valid_architecture_analyses_without_crashing(doc, shape):
    """Shape inference reports per-layer errors instead of raising, for any parameters."""
    try:
        spec = parse_model(json.loads(json.dumps(doc)))
    except InputError:
        return
    result = analyze(spec, shape, 10)
    assert result.ok or result.error
