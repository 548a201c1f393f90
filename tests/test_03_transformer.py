"""Lesson 03: the Transformer shared by every model, its Hub conventions, and the KV cache."""
import pytest
import torch

from conftest import lesson, tiny

T, A = lesson("03_transformer"), lesson("02_attention")


@pytest.mark.parametrize("rope", [True, False])
def test_transformer_shapes_and_mask_row(rope):
    m = tiny(rope=rope)
    idx = torch.randint(0, 12, (3, 20))
    assert m(idx).shape == (3, 20, 11)  # 11 real tokens out, [MASK] (id 11) is input only
    assert m.config.mask_id == 11


@pytest.mark.parametrize("rope", [True, False])
def test_transformer_causal_vs_bidirectional(rope):
    for causal in (True, False):
        m = tiny(causal=causal, rope=rope)
        a = torch.randint(0, 11, (1, 16))
        b = a.clone()
        b[0, 10:] = (b[0, 10:] + 1) % 11
        with torch.no_grad():
            la, lb = m(a), m(b)
        before = (la[0, :10] - lb[0, :10]).abs().max()
        if causal:
            assert before == 0  # GPT: position i never sees tokens after i
        else:
            assert before > 1e-6  # dLLM: every position sees every other


def test_weight_tying_is_one_parameter():
    m = tiny()
    assert m.lm_head.weight is m.tok_emb.weight
    names = [n for n, _ in m.named_parameters()]
    assert "lm_head.weight" not in names  # counted once
    untied = tiny(tie_weights=False)
    assert untied.lm_head.weight is not untied.tok_emb.weight


@pytest.mark.parametrize("preset", list(T.PRESETS))
def test_preset_parameter_count(preset):
    c = T.build_config(preset, vocab_size=65)
    C, V, L = c.n_embd, c.n_input_tokens, c.n_layer
    per_block = 2 * 2 * C + 3 * C * C + C * C + (C * 4 * C + 4 * C) + (4 * C * C + C)  # 2 LN, qkv, proj, MLP
    expected = V * C + L * per_block + 2 * C  # tied head adds nothing; RoPE has no parameters
    assert T.Transformer(c).num_params() == expected
    if preset == "gpu":
        assert 10e6 < expected < 11e6  # the ~10M model


def test_manual_attention_equals_fused():
    for causal in (True, False):
        a = tiny(causal=causal)
        b = tiny(causal=causal, manual_attention=True)
        b.load_state_dict(a.state_dict())
        idx = torch.randint(0, 11, (2, 24))
        with torch.no_grad():
            assert torch.allclose(a(idx), b(idx), atol=1e-5)


def test_manual_attention_applies_attention_dropout_in_training_only(monkeypatch):
    seen, written_out = [], T.attn_lesson.attention

    def spy(q, k, v, mask=None, dropout_p=0.0):
        seen.append(dropout_p)
        return written_out(q, k, v, mask, dropout_p)

    monkeypatch.setattr(T.attn_lesson, "attention", spy)
    m = tiny(manual_attention=True, dropout=0.3)
    idx = torch.randint(0, 11, (2, 24))
    m.train()(idx)
    m.eval()(idx)
    n = m.config.n_layer
    assert seen == [0.3] * n + [0.0] * n  # the same attention dropout as the fused kernel's dropout_p


def test_save_pretrained_from_pretrained_roundtrip(tmp_path):
    """The Hub mixin: config.json holds the ModelConfig, model.safetensors the weights (the tie kept)."""
    m = tiny(rope=False, causal=True, mask_token=False)
    m.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors"}
    b = T.Transformer.from_pretrained(tmp_path)
    assert b.config == m.config and isinstance(b.config, T.ModelConfig)
    idx = torch.randint(0, 11, (2, 16))
    assert torch.equal(m(idx), b.eval()(idx))
    assert b.lm_head.weight is b.tok_emb.weight


# ---------------------------------------------------------------- the KV cache
def fresh_keys(model, x):
    """Every layer's keys, recomputed from scratch: the input of each attention layer, through qkv and RoPE."""
    inputs = []
    hooks = [b.attn.register_forward_pre_hook(lambda mod, args: inputs.append(args[0])) for b in model.blocks]
    model(x)
    for h in hooks:
        h.remove()
    keys = []
    for block, h in zip(model.blocks, inputs):
        k = A.split_heads(block.attn.qkv(h).split(model.config.n_embd, dim=2)[1], model.config.n_head)
        if model.config.rope:
            k = T.apply_rope(k, *T.rope_tables(model.config, torch.arange(x.size(1))))
        keys.append(k)
    return keys


@pytest.mark.parametrize("rope", [True, False])
def test_cache_holds_fresh_keys_and_partial_passes_match(rope):
    m = tiny(rope=rope)
    x = torch.randint(0, 12, (2, 32))
    with torch.no_grad():
        full = m(x)
        kv = T.KVCache(m.config, 2, 32)
        assert torch.allclose(m(x, cache=kv, start=0), full, atol=1e-6)  # the refresh pass itself
        for layer, k in enumerate(fresh_keys(m, x)):  # the cache holds exactly the keys of a fresh pass
            assert torch.allclose(kv.k[layer], k, atol=1e-6), layer
        s, e = 8, 16
        assert torch.allclose(m(x[:, s:e], cache=kv, start=s), full[:, s:e], atol=1e-5)  # dual: block only
        assert torch.allclose(m(x[:, s:], cache=kv, start=s), full[:, s:], atol=1e-5)  # prefix: block + suffix


def test_cache_is_stale_after_a_partial_pass():
    m = tiny()
    x = torch.randint(0, 12, (1, 24))
    with torch.no_grad():
        kv = T.KVCache(m.config, 1, 24)
        m(x, cache=kv, start=0)
        y = x.clone()
        y[0, 4:8] = 3  # tokens change inside a block: a dual-cache step writes only [4, 8)
        m(y[:, 4:8], cache=kv, start=4)
        fresh = fresh_keys(m, y)  # what the next refresh computes
    assert torch.allclose(kv.k[0], fresh[0], atol=1e-6)  # layer 0 sees only its own inputs: exact
    assert not torch.allclose(kv.k[1][:, :, 8:], fresh[1][:, :, 8:], atol=1e-6)  # stale until refreshed


def test_main_prints_presets_and_shapes(capsys):
    T.main(["--preset", "tiny"])
    out = capsys.readouterr().out
    assert " tiny: 2 layers, 2 heads, width 32, context 32: 27,328 / 27,296 parameters" in out
    assert "10,663,680 / 10,663,296" in out  # the gpu preset: the ~10M model
    assert "layer-0 queries  (2, 2, 32, 16)  (B, H, T, C/H)" in out
    assert "logits           (2, 32, 65)" in out and "head tied to embedding: True" in out
