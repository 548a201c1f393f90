"""Fast-dLLM decoding in 04: block-wise KV cache, threshold and factor rules."""
import pytest
import torch

from conftest import lesson

T, D = lesson("03_transformer"), lesson("04_diffusion")


def model(rope=True):
    torch.manual_seed(0)
    return T.Transformer(T.build_config("tiny", vocab_size=11, rope=rope)).eval()


@pytest.mark.parametrize("rope", [True, False])
def test_cached_partial_pass_matches_fresh_forward(rope):
    m = model(rope)
    x = torch.randint(0, 12, (2, 32))
    full = m(x)
    kv = T.KVCache(m.config, 2, 32)
    assert torch.allclose(m(x, cache=kv, start=0), full, atol=1e-6)  # the refresh pass itself
    for name, layer in enumerate(m.blocks):  # the cache holds exactly the keys of a fresh pass
        assert kv.k[name].abs().sum() > 0
    s, e = 8, 16
    assert torch.allclose(m(x[:, s:e], cache=kv, start=s), full[:, s:e], atol=1e-5)  # dual: block only
    assert torch.allclose(m(x[:, s:], cache=kv, start=s), full[:, s:], atol=1e-5)  # prefix: block + suffix


def test_cache_keys_equal_fresh_keys_after_refresh():
    m = model()
    x = torch.randint(0, 12, (1, 24))
    kv = T.KVCache(m.config, 1, 24)
    m(x, cache=kv, start=0)
    y = x.clone()
    y[0, 4:8] = 3  # tokens change inside a block: a dual-cache step writes only [4, 8)
    m(y[:, 4:8], cache=kv, start=4)
    fresh = T.KVCache(m.config, 1, 24)
    m(y, cache=fresh, start=0)  # what the next refresh computes
    assert torch.allclose(kv.k[0], fresh.k[0], atol=1e-6)  # layer 0 sees only its own inputs: exact
    assert not torch.allclose(kv.k[1][:, :, 8:], fresh.k[1][:, :, 8:], atol=1e-6)  # stale until refreshed


def test_threshold_one_equals_one_token_per_step():
    m = model()
    canvas = torch.full((2, 24), 11)
    a, ca = D.generate(m, canvas, 11, steps=24, generator=torch.Generator().manual_seed(5))
    b, cb = D.generate(m, canvas, 11, threshold=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and ca == cb == 24


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("rule", [dict(threshold=0.3), dict(factor=1.0), dict(steps=12)])
def test_cached_decoding_is_valid(cache, rule):
    m = model()
    canvas = torch.full((3, 32), 11)
    canvas[:, :5] = torch.tensor([1, 2, 3, 4, 5])
    canvas[:, -3:] = 7
    x, calls = D.generate(m, canvas, 11, block_size=8, cache=cache, generator=torch.Generator().manual_seed(0), **rule)
    assert (x != 11).all()
    assert torch.equal(x[:, :5], canvas[:, :5]) and (x[:, -3:] == 7).all()
    assert calls <= 24  # never more calls than masked positions


def test_cache_with_no_changes_reproduces_uncached_greedy():
    """Greedy, one token per step, one block: the dual cache refreshes only at the block start, so it is an
    approximation; with a single block and a single step it must equal the uncached result exactly."""
    m = model()
    canvas = torch.full((1, 16), 11)
    a, _ = D.generate(m, canvas, 11, steps=1, temperature=0)
    b, _ = D.generate(m, canvas, 11, steps=1, temperature=0, cache="dual")
    assert torch.equal(a, b)
