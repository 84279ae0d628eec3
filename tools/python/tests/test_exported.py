"""A subnet written by `lighthubert export` opens in Python as a checkpoint does, and gives the
supernet's features bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import lighthubert
from conftest import TINY_DEFAULT, TINY_F16, run_command


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """random:5 of the f16-stored checkpoint (10 to 12 layers, mixed widths), exported."""
    out = tmp_path_factory.mktemp("export") / "random5.safetensors"
    run_command("export", "--checkpoint", TINY_F16, "--subnet", "random:5", "--out", out)
    return out


def test_an_exported_subnet_runs_as_its_supernet_does(exported, speech):
    supernet = lighthubert.Model(TINY_F16)
    small = lighthubert.Model(exported)
    wanted = supernet.extract(speech, subnet="random:5", layers="all")[0]
    got = small.extract(speech, layers="all")[0]
    assert got.shape == wanted.shape and np.array_equal(got, wanted)
    assert small.subnet("default") == small.subnet("max") == small.subnet("min")
    assert small.subnet("default").to_dict() == {k: v for k, v in supernet.subnet("random:5").to_dict().items() if k != "ffn_ratio"}


def test_info_says_where_it_came_from(exported):
    info = lighthubert.Model(exported).info
    assert info["checkpoint"]["origin"]["checkpoint"] == TINY_F16.name
    assert info["checkpoint"]["origin"]["size"] == TINY_F16.stat().st_size
    assert len(info["checkpoint"]["origin"]["sha256"]) == 64
    assert info["search_space"]["name"] == "exported"
    assert info["exported_subnet"]["layer_num"] == info["config"]["layers"]
    assert lighthubert.Model(TINY_DEFAULT).info["exported_subnet"] is None


def test_another_subnet_is_refused_with_the_reason(exported):
    small = lighthubert.Model(exported)
    other = lighthubert.Model(TINY_F16).subnet("max").to_dict()
    with pytest.raises(lighthubert.SubnetError, match="one exported subnet"):
        small.subnet(other)
