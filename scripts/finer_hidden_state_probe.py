"""Do the default model's hidden states add to `finagent tag`'s ranking on FiNER? (docs/tag.md)

A probe, not part of finagent: for every FiNER row that `finagent tag --finer` proposed a tag for,
read the transformers model's hidden states at the number (its last token, the token after it and
the sentence mean, at layers 8, 16, 24 and 30), fit a multinomial logistic regression on them, and
combine its log-probability with the ranking's over the ranking's three proposals:
score = log(ranking confidence) + w * log(regression probability). Every choice (feature blocks,
C, w) is made by 5-fold cross-validation on FiNER train, folds grouped by sentence, against the
ranking's own out-of-fold proposals (`--folds 5`); test is scored once per setting with the
train-chosen w.

Usage (the peer venv of ../shared/bench/setup_peer.sh has torch, transformers and sklearn):
  finagent tag --finer ../shared/data/finer/test.jsonl --out rank_test.jsonl
  finagent tag --finer ../shared/data/finer/train.jsonl --folds 5 --out rank_train_oof.jsonl
  python scripts/finer_hidden_state_probe.py --model /tmp/smollm2-hf \
      --train rank_train_oof.jsonl --test rank_test.jsonl --cache DIR
"""
import argparse, json, os, sys, warnings, zlib

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from transformers import AutoModelForCausalLM, AutoTokenizer

LAYERS = (8, 16, 24, 30)
KINDS = ("last", "next", "mean")
SETTINGS = (["L16_last"], ["L16_last", "L16_next"], ["L24_last", "L24_next"],
            ["L8_last", "L16_last", "L24_last"], ["L16_last", "L16_next", "L16_mean"])
WEIGHTS = (0, 0.25, 0.5, 1, 2)


def embed(model, tok, rows):
    """Per row: for each layer, the hidden state at the number's last token, at the token after
    it, and the sentence mean, concatenated."""
    feats = []
    for i, row in enumerate(rows):
        enc = tok(row["sentence"], return_offsets_mapping=True, return_tensors="pt")
        offsets = enc["offset_mapping"][0].tolist()
        last = max(j for j, (a, _) in enumerate(offsets) if a < row["end"])
        n = enc["input_ids"].shape[1]
        with torch.no_grad():
            hidden = model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
        parts = []
        for layer in LAYERS:
            h = hidden[layer][0]
            parts += [h[last].numpy(), h[min(last + 1, n - 1)].numpy(), h.mean(0).numpy()]
        feats.append(np.concatenate(parts))
        if i % 200 == 0:
            print(f"embedded {i}/{len(rows)}", file=sys.stderr)
    return np.stack(feats)


def select(x, names, width):
    index = {f"L{layer}_{kind}": i * len(KINDS) + j for i, layer in enumerate(LAYERS) for j, kind in enumerate(KINDS)}
    return np.concatenate([x[:, index[n] * width:(index[n] + 1) * width] for n in names], 1)


def combined_accuracy(rows, probs, classes, w):
    """Accuracy when the ranking's three proposals are re-scored with the regression's log-probability."""
    column = {c: i for i, c in enumerate(classes)}
    right = 0
    for row, p in zip(rows, probs):
        confidence = {row["tag"]: row["confidence"], **{c["tag"]: c["confidence"] for c in row["candidates"]}}
        def score(tag):
            lr = np.log(max(p[column[tag]], 1e-9)) if tag in column else -20.0
            return np.log(confidence[tag]) + w * lr
        right += max(confidence, key=score) == row["gold"]
    return right / len(rows)


def fit_proba(x, y, classes, c, x_out):
    model = LogisticRegression(C=c, max_iter=300).fit(x, y)
    out = np.zeros((len(x_out), len(classes)))
    out[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(x_out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="HF folder of the default model")
    ap.add_argument("--train", required=True, help="`finagent tag --finer train.jsonl --folds 5` output")
    ap.add_argument("--test", required=True, help="`finagent tag --finer test.jsonl` output")
    ap.add_argument("--cache", required=True, help="folder for the hidden-state arrays")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(os.cpu_count() or 1)
    train = [json.loads(line) for line in open(args.train)]
    test = [json.loads(line) for line in open(args.test)]
    os.makedirs(args.cache, exist_ok=True)
    arrays = {}
    for name, rows in (("train", train), ("test", test)):
        path = os.path.join(args.cache, f"hidden_{name}.npy")
        if not os.path.exists(path):
            tok = AutoTokenizer.from_pretrained(args.model)
            model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
            np.save(path, embed(model, tok, rows))
        arrays[name] = np.load(path)
    width = arrays["train"].shape[1] // (len(LAYERS) * len(KINDS))
    y_train = np.array([r["gold"] for r in train])
    y_test = np.array([r["gold"] for r in test])
    classes = np.unique(y_train)
    groups = np.array([zlib.crc32(r["sentence"].encode()) for r in train])
    print(json.dumps({"ranking_cv": combined_accuracy(train, np.ones((len(train), len(classes))), classes, 0),
                      "ranking_test": combined_accuracy(test, np.ones((len(test), len(classes))), classes, 0)}))
    for names in SETTINGS:
        for c in (0.01, 0.1):
            scaler = StandardScaler().fit(select(arrays["train"], names, width))
            x_train = scaler.transform(select(arrays["train"], names, width))
            x_test = scaler.transform(select(arrays["test"], names, width))
            oof = np.zeros((len(train), len(classes)))
            for fit, held in GroupKFold(5).split(x_train, y_train, groups):
                oof[held] = fit_proba(x_train[fit], y_train[fit], classes, c, x_train[held])
            cv = {w: combined_accuracy(train, oof, classes, w) for w in WEIGHTS}
            best = max(cv, key=cv.get)
            probs = fit_proba(x_train, y_train, classes, c, x_test)
            print(json.dumps({"features": names, "C": c,
                              "regression_alone_cv": round(float((classes[oof.argmax(1)] == y_train).mean()), 3),
                              "combined_cv": {str(w): round(a, 3) for w, a in cv.items()},
                              "regression_alone_test": round(float((classes[probs.argmax(1)] == y_test).mean()), 3),
                              "w": best, "combined_test": round(combined_accuracy(test, probs, classes, best), 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
