import json

import pytest

from dehazekit.runtimes.errors import ConfigError, DehazeKitError, ModelFileError
from dehazekit.runtimes.meta import ModelMeta


def test_round_trip_preserves_every_field(tmp_path):
    meta = ModelMeta(
        backbone="dea",
        config={"base_dim": 8},
        pad_multiple=4,
        selected_blocks=["a", "b"],
        adapter_digest="abc",
        mean=(0.1, 0.2, 0.3),
        std=(1, 1, 1),
    )
    path = meta.save(tmp_path / "model.json")
    again = ModelMeta.load(path)
    assert again == meta
    assert again.value_range == (0.0, 1.0)


def test_unknown_key_is_an_error_naming_it():
    data = ModelMeta(backbone="dea").to_dict()
    data["surprise"] = 1
    with pytest.raises(ModelFileError, match="surprise"):
        ModelMeta.from_dict(data)


@pytest.mark.parametrize(
    "field,value",
    [("layout", "CHW"), ("pad_multiple", 0), ("value_range", (1, 0)), ("dtype", "int8"), ("backbone", "")],
)
def test_invalid_values_rejected_on_construction(field, value):
    kwargs = {"backbone": "dea", field: value}
    with pytest.raises(ConfigError):
        ModelMeta(**kwargs)


def test_bad_json_is_a_model_file_error():
    with pytest.raises(ModelFileError):
        ModelMeta.from_json("{not json")
    with pytest.raises(DehazeKitError):
        ModelMeta.from_json(json.dumps([1, 2]))
