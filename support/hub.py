"""Hugging Face Hub: export a model in the Hub's layout, load it back (a directory or a repo), push it; and the
converter for the upstream tiny-dllm checkpoint (`sutharsan311/tiny-dllm`, an older block layout).

An export directory is what `Transformer.save_pretrained` (huggingface_hub's PyTorchModelHubMixin) writes,
config.json + model.safetensors, plus tokenizer.json and a model card (README.md)."""
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from support.cli import UsageError
from support.files import make_dir

CARD = """---
{{ card_data }}
---

# tiny-dllm {{ kind }}

A {{ params }}-parameter {{ model_name }}, trained character by character with the tiny-dllm tutorial
(lesson {{ lesson }}). Its validation number is {{ bound_note }}.

| metric | value |
|---|---|
{{ metrics_table }}
{% if sample %}
Sample:

```
{{ sample }}
```
{% endif %}
Load it with the tutorial's scripts: `{{ load_command }}`, or in Python:
`Transformer.from_pretrained(path)` from lesson 03 (03_transformer.py), with the tokenizer in tokenizer.json.
"""


SHARD_BYTES = 16_000_000  # weights files larger than this are split, the Hub way (`save_torch_state_dict`)
INDEX = "model.safetensors.index.json"  # a sharded export's {"weight_map": {tensor name: shard file}}


def is_export(path):
    path = Path(path)
    return path.is_dir() and (path / "config.json").exists() and any(
        (path / name).exists() for name in ("model.safetensors", INDEX))


def weight_files(path):
    """The safetensors files of an export: model.safetensors, or the shards its index names."""
    path = Path(path)
    if (path / "model.safetensors").exists() or not (path / INDEX).exists():
        return [path / "model.safetensors"]
    names = json.loads((path / INDEX).read_text())["weight_map"].values()
    if any(Path(n).name != n for n in names):  # a shard name is a plain file name beside the index
        raise ValueError(f"{INDEX} names a file outside its folder")
    return [path / n for n in sorted(set(names))]


def save_weights(model, folder, max_bytes):
    """model's weights into folder as model.safetensors, or, over max_bytes, as model-0000i-of-0000n.safetensors
    + model.safetensors.index.json (huggingface_hub's own writer: what the Hub and transformers read)."""
    from huggingface_hub import save_torch_state_dict

    for f in [Path(folder) / "model.safetensors", *Path(folder).glob("model-*-of-*.safetensors")]:
        f.unlink(missing_ok=True)  # save_pretrained's single file, replaced by shards when they are needed
    save_torch_state_dict(model.state_dict(), folder, max_shard_size=max_bytes)


def export(out_dir, model, tokenizer, kind, metrics=None, sample=None):
    """<out_dir>/config.json, model.safetensors (tied weights stored once), tokenizer.json, README.md.

    Written into a temporary directory first, then each file renamed into place: never half a file."""
    from huggingface_hub import ModelCard, ModelCardData

    out_dir = Path(out_dir)
    make_dir(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        rows = [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in (metrics or {}).items()]
        card = ModelCard.from_template(
            ModelCardData(library_name="pytorch", tags=["tiny-dllm", "diffusion" if kind == "dllm" else "gpt",
                                                        "character-level"]),
            template_str=CARD, kind=kind, params=f"{model.num_params():,}", sample=sample,
            model_name="masked diffusion LM" if kind == "dllm" else "GPT", lesson="05" if kind == "dllm" else "07",
            bound_note="the NELBO, an upper bound on its NLL" if kind == "dllm" else "its exact NLL",
            metrics_table="\n".join(rows),
            load_command="python 06_generate.py --from-hub REPO_ID" if kind == "dllm"
            else "python 07_train_gpt.py generate --from-hub REPO_ID")
        card.save(tmp / "README.md")  # save_pretrained keeps a README.md that is already there
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False, indent=1))
        model.save_pretrained(tmp)  # config.json (the ModelConfig) + model.safetensors
        for f in tmp.iterdir():
            f.replace(out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_export(path):
    """(state_dict, config dict, tokenizer dict) of an export directory. safetensors stores a tied tensor once:
    the head that shares the embedding gets it back here."""
    from safetensors.torch import load_file

    path = Path(path)
    f = path / "config.json"  # the file being read, named if it fails
    try:
        config = json.loads(f.read_text())
        if not isinstance(config, dict):  # valid JSON, but no settings: a list, a number
            raise ValueError(f"a JSON {type(config).__name__}, not an object")
        f = path / "tokenizer.json"
        tok = (json.loads(f.read_text()) if f.exists()
               else config.pop("tokenizer", None))  # exports before tokenizer.json kept it in config.json
        if not isinstance(tok, dict | None):
            raise ValueError(f"a JSON {type(tok).__name__}, not an object")
        state, f = {}, path / "model.safetensors"
        for f in weight_files(path):  # one file, or the shards of a model over 16 MB
            state.update(load_file(f))  # tensors only; fp16 weights are cast when loaded
    except Exception as e:  # unreadable JSON, a truncated or foreign safetensors file (SafetensorError)
        raise UsageError(f"{path} is not a tiny-dllm export (config.json + model.safetensors): {f.name}: "
                         f"{type(e).__name__}: {short(' '.join(str(e).split()))}") from None
    tied = ("tok_emb.weight", "lm_head.weight")
    if config.get("tie_weights", True) and sum(k in state for k in tied) == 1:
        state[tied[0]] = state[tied[1]] = state.get(tied[0], state.get(tied[1]))
    return state, config, tok


def from_hub(repo_id, filename=None):
    """The local path of a Hub repo's export (a folder), or of one file in it such as the upstream
    dllm_step50000.pt: downloaded once into the Hub cache, then read from there (HF_HUB_OFFLINE=1 works offline)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        if filename:
            return Path(hf_hub_download(repo_id, filename))
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except Exception as e:  # no network, missing repo or file, offline and not cached: one line for the user
        msg = " ".join(str(e).split())
        raise UsageError(f"cannot load {repo_id}{'/' + filename if filename else ''} from the Hub "
                         f"({type(e).__name__}{': ' + short(msg) if msg else ''})") from None


def short(msg, n=200):
    """msg cut at a word boundary, so an error line never ends mid-word."""
    return msg if len(msg) <= n else msg[:n].rsplit(" ", 1)[0] + " ..."


def valid_repo_id(repo_id):
    """USER/NAME as the Hub spells repo ids: checked before a run starts, not found out after it."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", repo_id or "")) and ".." not in repo_id


def push_to_hub(hf_dir, repo_id):
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(hf_dir), commit_message="tiny-dllm export")
    except Exception as e:
        raise UsageError(f"cannot push to {repo_id} ({type(e).__name__}: {short(' '.join(str(e).split()))})") from None
    print(f"pushed {hf_dir} to https://huggingface.co/{repo_id}")


# ---------------------------------------------------------------------------------------------------------
# The upstream tiny-dllm checkpoint: a .pt with its own key names and a different residual wiring
# ---------------------------------------------------------------------------------------------------------
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # sorted set of the corpus
LEGACY_KEYS = {"step", "model", "vocab_size", "hidden", "n_layers", "n_heads", "seq_len"}
LEGACY_NAMES = [("token_emb.", "tok_emb."), ("pos_emb.", "pos_emb."), (".norm1.", ".ln1."), (".norm2.", ".ln2."),
                (".attn.out.", ".attn.proj."), (".ff.net.0.", ".mlp.fc."), (".ff.net.2.", ".mlp.proj."),
                ("norm.", "ln_f."), ("head.", "lm_head.")]


def is_legacy(ckpt):
    return isinstance(ckpt, dict) and LEGACY_KEYS <= set(ckpt) and "config" not in ckpt


def legacy_block(block_class):
    """Lesson 03's Block (passed in) rewired as upstream has it: y = x + MLP(LN2(x + Attn(LN1(x)))).

    Attention reaches the residual stream only through the MLP's input; lesson 03's pre-norm block adds both."""

    class LegacyBlock(block_class):
        def forward(self, x, rope, mask=None, cache=None, start=0):
            return x + self.mlp(self.ln2(x + self.attn(self.ln1(x), rope, mask, cache, start)))

    return LegacyBlock


def convert_legacy(ckpt, path="checkpoint"):
    """The upstream .pt layout (see LEGACY_KEYS) -> our checkpoint dict, marked legacy_residual.

    Learned positions (rope=False) and an untied 65-row head, as upstream has them."""
    C, V = ckpt["hidden"], ckpt["vocab_size"]
    if V != len(SHAKESPEARE_CHARS):
        raise UsageError(f"{path}: legacy checkpoint with vocab_size {V}; "
                         "only the 65-character TinyShakespeare one is known")
    config = dict(vocab_size=V, n_layer=ckpt["n_layers"], n_head=ckpt["n_heads"], n_embd=C, block_size=ckpt["seq_len"],
                  rope=False, tie_weights=False)
    state = {}
    for k, v in ckpt["model"].items():
        for old, new in LEGACY_NAMES:
            if k.startswith(old) or (old.startswith(".") and old in k):
                k = k.replace(old, new, 1)
                break
        state[k] = v
    print(f"converted an upstream tiny-dllm checkpoint (step {ckpt['step']}): its block "
          "y = x + FF(LN2(x + Attn(LN1(x)))) is rebuilt by support.hub.legacy_block", file=sys.stderr)
    return {"kind": "dllm", "model": state, "config": config, "step": ckpt["step"], "path": str(path),
            "tokenizer": {"kind": "char", "tokens": list(SHAKESPEARE_CHARS)}, "legacy_residual": True}
