"""Model configs check their hyper-parameters' types and ranges, and name the field."""

import pytest

from kt.models import available_models, build_model, get_model_class
from kt.models.base import ModelConfigError

SIZES = dict(num_items=5, num_concepts=3)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("dkt", {"dim": "abc"}, "dim must be an int > 0, got 'abc'"),  # was a torch TypeError
        ("dkt", {"dim": -5}, "dim must be an int > 0, got -5"),  # was a torch RuntimeError
        ("dkt", {"dim": True}, "dim must be an int > 0, got True"),
        ("dkt", {"hidden": 2.5}, "hidden must be an int > 0, got 2.5"),
        ("dkt", {"num_layers": 0}, "num_layers must be an int > 0, got 0"),
        ("dkt", {"dropout": 1.0}, "dropout must be a float in [0, 1), got 1.0"),
        ("dkt", {"dropout": "0.1"}, "dropout must be a float in [0, 1), got '0.1'"),
        ("sakt", {"num_heads": 0}, "num_heads must be an int > 0, got 0"),  # was a ZeroDivisionError
        ("sakt", {"use_items": "no"}, "use_items must be a bool (true or false), got 'no'"),  # was truthy
        ("sakt", {"dim": 30, "num_heads": 4}, "dim must be divisible by num_heads=4, got 30"),
        ("akt", {"final_dim": 1}, "final_dim must be an int >= 2, got 1"),
        ("akt", {"l2": -1e-5}, "l2 must be a float >= 0, got -1e-05"),
        ("simplekt", {"num_blocks": -1}, "num_blocks must be an int > 0, got -1"),
        ("dkt_forget", {"feature_dim": 0}, "feature_dim must be an int > 0, got 0"),
    ],
)
def test_bad_hyper_parameters_name_the_field(name, params, message):
    with pytest.raises(ModelConfigError) as info:
        build_model(name, **SIZES, **params)
    assert str(info.value) == message
    assert info.value.with_prefix("model_params.").args[0] == f"model_params.{message}"


@pytest.mark.parametrize("name", ["dkt", "sakt", "akt", "simplekt", "dkt_forget"])
def test_defaults_and_accepted_values_build(name):
    assert name in available_models()
    build_model(name, **SIZES)  # every default passes its own checks
    cls = get_model_class(name).config_class
    cfg = cls(**SIZES, dropout=0)  # a float field accepts an int
    assert cfg.dropout == 0
    assert cls(num_items=0, num_concepts=0).num_items == 0  # sizes from the data may be 0
