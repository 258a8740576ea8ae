import pytest

from logo_fast.data.envs import list_envs, make_env, parse_env_id


def test_list_envs_has_the_benchmark():
    ids = list_envs()
    for want in ("mpe:simple_spread", "smax:2s3z", "smax:6h_vs_8z", "mamujoco:Hopper-3x1", "mamujoco:Ant-2x4"):
        assert want in ids
    assert len(ids) == len(set(ids)) == 11


def test_parse_env_id():
    assert parse_env_id("smax:5m_vs_6m") == ("smax", "5m_vs_6m")
    assert parse_env_id("mamujoco:Walker2d-2x3") == ("mamujoco", "Walker2d-2x3")


@pytest.mark.parametrize("bad", ["simple_spread", "foo:bar", "mpe:", "mpe:simple_nonexistent", ""])
def test_unknown_ids_raise(bad):
    with pytest.raises(ValueError, match="unknown"):
        parse_env_id(bad)


def test_make_env_checks_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        make_env("mpe:simple_spread", batch_size=0)
    with pytest.raises(ValueError, match="Hopper-3x1"):
        make_env("mamujoco:Hopper")
