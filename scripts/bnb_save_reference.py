"""Write what transformers + bitsandbytes save for a 4-bit and an 8-bit model, the target of `finagent quantize`.

For each of 4 and 8 bits this loads a Hugging Face folder with
`AutoModelForCausalLM.from_pretrained(src, quantization_config=..., dtype=torch.float32, device_map="cpu")`
and calls `model.save_pretrained(out)`; then it prints the sha256 of `model.safetensors`:

- 4 bits: `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)` (QLoRA's NF4 + double quant).
- 8 bits: `BitsAndBytesConfig(load_in_8bit=True)` (LLM.int8, threshold 6.0).

The dtype is float32 because finagent's sources are f32 (a GGUF dequantized, or an f32 folder such
as the one `../shared/bench/gguf_to_hf.py` writes); the embeddings, norms and an untied LM head are
then saved as F32, and bitsandbytes quantizes the f32 weights.

Usage, from the repository root, in the peer environment (`/work/.peer-venv`):

    CUDA_VISIBLE_DEVICES= python scripts/bnb_save_reference.py SRC OUT_ROOT
        writes OUT_ROOT/nf4 and OUT_ROOT/int8 (the real model: SRC=/tmp/smol-hf, OUT_ROOT=/tmp/bnb-ref)
    CUDA_VISIBLE_DEVICES= python scripts/bnb_save_reference.py SRC OUT_ROOT --check FINAGENT_ROOT
        also compares FINAGENT_ROOT/{nf4,int8} (written by `finagent quantize`): sha256 of
        model.safetensors, config.json as JSON, and the logits transformers computes from each folder
        against those of the model it quantized itself.

The test fixtures under `trainer/tests/fixtures/bnb_save/` come from
`python scripts/bnb_save_reference.py trainer/tests/fixtures/bnb_save/source trainer/tests/fixtures/bnb_save`.
"""

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import sys

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

DTYPE = torch.float32
PROMPT_IDS = [[1, 2, 3, 5, 8, 13, 21, 34, 0, 7, 11, 42]]


def quantization_config(bits):
    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPE,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def load(path, bits=None):
    kwargs = {"dtype": DTYPE, "device_map": "cpu"}
    if bits is not None:
        kwargs["quantization_config"] = quantization_config(bits)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def logits(model, vocab_size):
    ids = torch.tensor([[i % vocab_size for i in PROMPT_IDS[0]]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="Hugging Face folder with f32 weights")
    parser.add_argument("out_root", help="writes OUT_ROOT/nf4 and OUT_ROOT/int8")
    parser.add_argument("--check", metavar="FINAGENT_ROOT", help="compare FINAGENT_ROOT/{nf4,int8}")
    args = parser.parse_args()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    versions = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "bitsandbytes", "safetensors")}
    print("versions", json.dumps(versions))
    ok = True
    for bits, name in ((4, "nf4"), (8, "int8")):
        out = os.path.join(args.out_root, name)
        model = load(args.src, bits)
        model.save_pretrained(out)
        reference_sha = sha256(os.path.join(out, "model.safetensors"))
        size = os.path.getsize(os.path.join(out, "model.safetensors"))
        print(f"{name}: transformers+bitsandbytes model.safetensors {size} bytes sha256 {reference_sha}")
        if not args.check:
            continue
        ours = os.path.join(args.check, name)
        our_sha = sha256(os.path.join(ours, "model.safetensors"))
        same_bytes = our_sha == reference_sha
        print(f"{name}: finagent               model.safetensors sha256 {our_sha} identical={same_bytes}")
        with open(os.path.join(out, "config.json")) as f:
            reference_config = json.load(f)
        with open(os.path.join(ours, "config.json")) as f:
            our_config = json.load(f)
        same_config = reference_config == our_config
        print(f"{name}: config.json equal as JSON: {same_config}")
        vocab_size = model.config.vocab_size
        expected = logits(model, vocab_size)
        reloaded_reference = logits(load(out), vocab_size)
        from_ours = logits(load(ours), vocab_size)
        same_logits = torch.equal(expected, from_ours)
        print(
            f"{name}: logits from finagent's folder equal the in-memory quantized model: {same_logits} "
            f"(max |diff| {(expected - from_ours).abs().max().item():.3g}); "
            f"reference folder reloaded equal: {torch.equal(expected, reloaded_reference)}"
        )
        ok = ok and same_bytes and same_config and same_logits
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
