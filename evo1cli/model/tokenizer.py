"""An offline byte-level tokenizer for backbones built without a download (the `tiny` preset).

Every UTF-8 byte is one token (the GPT-2 byte alphabet, no merges), plus the special tokens of
InternVL3's prompt. It is a real `transformers` fast tokenizer: it saves with `save_pretrained`
and loads back with `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models
from tokenizers.pre_tokenizers import ByteLevel
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"
IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    alphabet = sorted(ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([PAD_TOKEN, IMG_START, IMG_END, IMG_CONTEXT])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN)
