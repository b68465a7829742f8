"""transformers + PEFT greedy evaluation of FPB test prompts (the peer of `finagent eval`).

Same prompts (FinLoRA's template over fpb/test.jsonl, file order, first --limit rows), same
tokenization (no special tokens), same budget (10 new tokens), batched with left padding, timed
after the model and adapter are loaded. Prints one JSON line; with --ours, also how many outputs
equal finagent's predictions log.
"""
import argparse, json, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

INSTRUCTION = "What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}."

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--adapter")
p.add_argument("--data", required=True, help="fpb/test.jsonl")
p.add_argument("--limit", type=int, default=64)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--ours", help="finagent's fpb.generate.jsonl to compare outputs with")
a = p.parse_args()

rows = [json.loads(line) for line in open(a.data)][: a.limit]
prompts = [f"Instruction: {INSTRUCTION}\nInput: {row['text']}\nAnswer: " for row in rows]
tok = AutoTokenizer.from_pretrained(a.model)
tok.padding_side = "left"
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
if a.adapter:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, a.adapter).eval()

# Longest first, as finagent batches.
order = sorted(range(len(prompts)), key=lambda i: -len(tok(prompts[i], add_special_tokens=False).input_ids))
outputs = {}
start = time.perf_counter()
with torch.no_grad():
    for b in range(0, len(order), a.batch_size):
        idx = order[b : b + a.batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id)
        for row, i in enumerate(idx):
            new = gen[row, enc.input_ids.shape[1]:].tolist()
            if tok.eos_token_id in new:
                new = new[: new.index(tok.eos_token_id)]
            outputs[rows[i]["id"]] = tok.decode(new)
elapsed = time.perf_counter() - start
result = {"peer": "transformers+peft" if a.adapter else "transformers", "examples": len(prompts),
          "batch_size": a.batch_size, "seconds": round(elapsed, 2),
          "examples_per_sec": round(len(prompts) / elapsed, 3), "threads": torch.get_num_threads()}
if a.ours:
    ours = {json.loads(line)["id"]: json.loads(line)["output"] for line in open(a.ours)}
    result["same_output"] = sum(1 for k, v in outputs.items() if ours.get(k) == v)
print(json.dumps(result))
