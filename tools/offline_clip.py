# SPDX-License-Identifier: GPL-3.0-or-later
"""A CLIP tokenizer that loads offline, for random-weight models in tests and benchmarks.

The real one downloads its vocabulary; this byte-level one (one token per byte, no merges) is
written locally and loads with ``CLIPTokenizer.from_pretrained(folder)``.
"""

import json
import pathlib


def write_clip_tokenizer(folder: pathlib.Path):
    """A byte-level CLIP tokenizer (one token per byte, no merges) that loads offline."""
    from transformers import CLIPTokenizer

    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77,
                                                              "tokenizer_class": "CLIPTokenizer"}))
    return CLIPTokenizer.from_pretrained(str(folder))
