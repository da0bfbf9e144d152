import pytest

from tests.dehazekit.lora.toy_nets import toy_backbone_registered


@pytest.fixture
def toy_backbone():
    with toy_backbone_registered() as name:
        yield name
