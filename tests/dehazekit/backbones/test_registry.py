import pytest
import torch
from torch import nn

from dehazekit.backbones import registry
from dehazekit.backbones.registry import create_backbone, get_spec, list_backbones, register_backbone
from dehazekit.runtimes.errors import ConfigError, UnknownNameError


class _Toy(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, 3, 1))

    def forward(self, x):
        return self.block(x)


@pytest.fixture
def toy_registered():
    name = "test-toy-registry"
    register_backbone(name, family="toy", pad_multiple=2, candidates=lambda m: ["block"], tiny=True)(_Toy)
    yield name
    registry._REGISTRY.pop(name)


def test_create_backbone_records_name_and_overrides(toy_registered):
    model = create_backbone(toy_registered, width=6)
    assert model.backbone_name == toy_registered and model.backbone_config == {"width": 6}
    assert model.block[0].out_channels == 6


def test_bad_override_is_config_error(toy_registered):
    with pytest.raises(ConfigError, match="invalid overrides"):
        create_backbone(toy_registered, depth=3)


def test_unknown_name_suggests_close_matches(toy_registered):
    name = "test-plugin-backbone"  # a user's own registered backbone is suggested like ours
    register_backbone(name, family="toy", pad_multiple=2, candidates=lambda m: ["block"])(_Toy)
    try:
        with pytest.raises(UnknownNameError, match="did you mean test-plugin-backbone"):
            get_spec("test-plugin-backbon")
    finally:
        registry._REGISTRY.pop(name)
    with pytest.raises(UnknownNameError, match="did you mean convir-s"):
        get_spec("convir-z")
    # test-only configs are never offered to users
    with pytest.raises(UnknownNameError) as info:
        get_spec("test-toy-registri")
    assert "test-toy-registry" not in str(info.value) and "tiny-" not in str(info.value)


def test_family_names_resolve_to_their_default_variant():
    from dehazekit.catalog import FAMILIES

    expected = {
        "convir": "convir-s",
        "dea-net": "dea",
        "gunet": "gunet-t",
        "dehazeformer": "dehazeformer-t",
        "msbdn": "msbdn",
        "dehamer": "dehamer",
    }
    for alias, variant in expected.items():
        assert get_spec(alias).name == variant
    assert create_backbone("gunet").backbone_name == "gunet-t"  # saved models record the real name
    assert {fam.default for fam in FAMILIES.values()} == set(expected.values())


def test_catalogue_matches_the_registry():
    """dehazekit.catalog (torch-free, for early CLI checks) lists every registered backbone exactly once."""
    from dehazekit.catalog import FAMILIES, test_backbones, user_backbones

    ours = {n for n in list_backbones(include_tiny=True) if get_spec(n).family in FAMILIES}
    assert set(user_backbones()) | set(test_backbones()) == ours
    assert set(user_backbones()) == {n for n in ours if not get_spec(n).tiny}
    for key, fam in FAMILIES.items():
        assert all(get_spec(v).family == key for v in (*fam.variants, *fam.test_only))


def test_double_registration_rejected(toy_registered):
    with pytest.raises(ConfigError):
        register_backbone(toy_registered, family="toy", pad_multiple=1, candidates=lambda m: [])(_Toy)


def test_tiny_configs_hidden_unless_asked(toy_registered):
    assert toy_registered in list_backbones(include_tiny=True)
    assert toy_registered not in list_backbones(include_tiny=False)


def test_candidate_preset_unknown(toy_registered):
    model = create_backbone(toy_registered)
    assert registry.candidate_blocks(model) == ["block"]
    with pytest.raises(UnknownNameError):
        registry.candidate_blocks(model, preset="nope")


def test_count_parameters_does_not_allocate(toy_registered):
    expected = sum(p.numel() for p in create_backbone(toy_registered, width=5).parameters())
    assert registry.count_parameters(toy_registered, width=5) == expected


def test_every_registered_backbone_builds_its_tiny_form_and_keeps_shape():
    for name in [n for n in list_backbones() if n.startswith("tiny-")]:
        spec = get_spec(name)
        model = create_backbone(name).eval()
        size = max(spec.min_size, 2 * spec.pad_multiple, 32)
        size = -(-size // spec.pad_multiple) * spec.pad_multiple
        with torch.no_grad():
            out = model(torch.rand(1, 3, size, size))
        assert out.shape == (1, 3, size, size), name
        blocks = spec.candidates(model)
        assert blocks and len(set(blocks)) == len(blocks), name
        modules = dict(model.named_modules())
        assert all(b in modules for b in blocks), name
