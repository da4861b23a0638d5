#!/usr/bin/env python3
"""A synthetic search corpus and queries, reproducible by seed, for
`ryx-cluster bench --job search`:

  scripts/search-corpus.py --docs 100000 --queries 200 --out /tmp/corpus
  target/release/ryx-cluster bench --job search --input /tmp/corpus/docs.jsonl \\
      --queries /tmp/corpus/queries.txt --nodes 10 --clients 20

Documents are JSON lines {"id": "d<n>", "title": ..., "text": ...} of words
drawn from a Zipf-distributed vocabulary (so terms are common, rare and in
between, as in real text); queries are 1 to 4 words drawn the same way."""
import argparse, json, os, random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--vocabulary", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(a.vocabulary)})
    rng.shuffle(vocab)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)

    def words(n):
        return rng.choices(vocab, cum_weights=cum, k=n)

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "docs.jsonl"), "w") as f:
        for i in range(a.docs):
            doc = {"id": f"d{i}", "title": " ".join(words(rng.randint(2, 8))),
                   "text": " ".join(words(rng.randint(20, 120)))}
            f.write(json.dumps(doc) + "\n")
    with open(os.path.join(a.out, "queries.txt"), "w") as f:
        for _ in range(a.queries):
            f.write(" ".join(words(rng.randint(1, 4))) + "\n")


if __name__ == "__main__":
    main()
