"""Adapter parity between finagent and Python PEFT on the same base model.

Two directions, both comparing the logit change an adapter causes (adapter minus base), which
isolates the adapter from the tiny differences between the two frameworks' base models:

  write-fixture OUT   PEFT writes a LoRA adapter with random A and B (rank 2, q_proj and v_proj) for
                      the HF folder of the default model, and stores the base and adapted logits of
                      a fixed token sequence. trainer/tests/peft_adapter.rs loads that adapter in
                      finagent and compares (the committed fixture is trainer/tests/fixtures/peft_adapter).
  check ADAPTER LOGITS
                      PEFT loads an adapter finagent trained and compares its logits with the ones
                      finagent printed (`cargo run --release -p trainer --example adapter_logits`).

Usage: python scripts/peft_parity.py --base HFDIR write-fixture OUTDIR
       python scripts/peft_parity.py --base HFDIR check ADAPTER_DIR FINAGENT_LOGITS_JSON
"""
import argparse, json, os, sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

VOCAB_STRIDE = 8
IDS = [1, 504, 2444, 282, 4299, 28, 1435, 30, 12213, 314, 2365, 2543, 30, 198, 9519, 42, 216]


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    sub = parser.add_subparsers(dest="cmd", required=True)
    write = sub.add_parser("write-fixture")
    write.add_argument("out")
    check = sub.add_parser("check")
    check.add_argument("adapter")
    check.add_argument("finagent_logits")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32).eval()

    if args.cmd == "write-fixture":
        base_logits = logits(base, IDS)
        config = LoraConfig(r=2, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                            init_lora_weights=False, task_type="CAUSAL_LM")
        model = get_peft_model(base, config).eval()
        with torch.no_grad():  # PEFT's non-identity init is tiny; make the change clearly visible.
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(5.0)
        adapted = logits(model, IDS)
        os.makedirs(args.out, exist_ok=True)
        model.save_pretrained(args.out)
        # Keep the fixture small: the adapter's effect on the last 4 positions, every 8th token.
        effect = (adapted - base_logits)[-4:, ::VOCAB_STRIDE].contiguous()
        save_file({"effect": effect}, os.path.join(args.out, "peft_effect.safetensors"))
        with open(os.path.join(args.out, "peft_effect.json"), "w") as f:
            json.dump({"ids": IDS, "positions": list(range(len(IDS) - 4, len(IDS))), "vocab_stride": VOCAB_STRIDE}, f)
        readme = os.path.join(args.out, "README.md")
        if os.path.exists(readme):
            os.remove(readme)
        delta = (adapted - base_logits).abs().max().item()
        print(json.dumps({"written": args.out, "max_adapter_effect": delta}))
        return

    with open(args.finagent_logits) as f:
        ours = json.load(f)
    base_logits = logits(base, ours["ids"])
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    adapted = logits(model, ours["ids"])
    positions = ours["positions"]
    peft_delta = (adapted - base_logits)[positions]
    our_delta = torch.tensor(ours["adapted"]) - torch.tensor(ours["base"])
    report = {
        "adapter": args.adapter,
        "positions": len(positions),
        "max_abs_diff_adapted_logits": (adapted[positions] - torch.tensor(ours["adapted"])).abs().max().item(),
        "max_abs_diff_adapter_effect": (peft_delta - our_delta).abs().max().item(),
        "max_adapter_effect": peft_delta.abs().max().item(),
    }
    print(json.dumps(report))
    sys.exit(0 if report["max_abs_diff_adapter_effect"] <= 1e-4 else 1)


if __name__ == "__main__":
    main()
