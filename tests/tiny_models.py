"""Tiny models with random weights, built from a config and MiniLM's tokenizer: real code paths, no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def minilm_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from wattlens.gateway.local import embedding_model_path

    return AutoTokenizer.from_pretrained(embedding_model_path())


def tiny_llama(path: Path, max_positions: int = 256) -> Path:
    """A two-layer Llama saved with its tokenizer in `path`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = minilm_tokenizer()
    cfg = LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=tok.sep_token_id,
        bos_token_id=tok.cls_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path
