"""How well frozen e5-small states separate Japanese review sentiment, by
how the text reaches the encoder (a diagnostic, not a MAN-MoE run).

    python benchmarks/jp_encoding_probe.py [--domain=dvd] [--reviews=400] [--cross_lingual]
        [--ways=runs_first_piece,runs_all_pieces,text_all_pieces,joined_first_piece]

man_tf's word features cut raw text with TF Text's UnicodeScriptTokenizer
and encode every token on its own, with SentencePiece's word-start mark:
for Japanese, written without spaces, each script run (kanji, hiragana,
katakana) becomes a "word". XLM-R's tokenizer saw Japanese as running text
in pretraining. For ``--reviews`` seeded train and test reviews of
Webis-CLS-10 jp/<domain>, this compares mean-pooled layer-7 states
(features up to 256 tokens / 510 pieces per review) fed to a logistic
regression trained and tested in Japanese:

- ``runs_first_piece``: man_tf's word features (each run's first piece);
- ``runs_all_pieces``: every piece of the same input;
- ``text_all_pieces``: the review as one string, every piece;
- ``joined_first_piece``: man_tf's word features with Japanese read as one
  text (``model.encoder_joined_languages``, the default since): each run's
  feature is the state of the piece holding its first character (en, de,
  fr word by word, as training reads them).

``--ways`` reruns some inputs and keeps the others' stored rows.

``--cross_lingual`` also trains the regression on the domain's en, de and fr
train reviews and tests it on the same jp reviews (the transfer setting),
as they come and with each language's features centred on its own mean.

Writes benchmarks/results/jp_encoding_probe.json and .md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

SOURCES = ("en", "de", "fr")
WAYS = ("runs_first_piece", "runs_all_pieces", "text_all_pieces", "joined_first_piece")


def logistic_regression(X, y, l2=1e-2, steps=500, learning_rate=0.5):
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(steps):
        g = 1 / (1 + np.exp(-(X @ w + b))) - y
        w -= learning_rate * (X.T @ g / len(y) + l2 * w)
        b -= learning_rate * g.mean()
    return w, b


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="dvd", choices=["books", "dvd", "music"])
    parser.add_argument("--reviews", type=int, default=400)
    parser.add_argument("--cross_lingual", action="store_true",
                        help="also train on --reviews train reviews of each of en/de/fr "
                             "(the domain's) and test on the same jp test reviews")
    parser.add_argument("--ways", default=",".join(WAYS),
                        help="inputs to (re)run, comma-separated; stored rows of the others "
                             "(same domain and size) are kept")
    args = parser.parse_args()
    import tensorflow as tf

    from man_tf.data import loading, reviews
    from man_tf.pretrained import e5_file
    from man_tf.pretrained.word_features import WordFeatures

    weights = e5_file.read_e5()
    features = WordFeatures(weights, layers=(7,))
    rng = np.random.default_rng(0)
    folder = os.path.join(os.path.dirname(common.CONLL_DATA), "webis-cls-10", "jp", args.domain)

    def sample(split):
        docs = reviews.read_reviews(os.path.join(folder, f"{split}.review"))
        return [docs[i] for i in rng.choice(len(docs), args.reviews, replace=False)]

    def with_ends(pieces):
        return [weights.bos_id] + pieces[:510] + [weights.eos_id]

    def run_pieces(tokens):
        return with_ends(features.pieces(tf.ragged.constant([tokens])).flat_values.numpy()
                         .tolist())

    def text_pieces(text):
        return with_ends(features.tokenizer.tokenize(features.normalize(tf.constant([text])))
                         .flat_values.numpy().tolist())

    def mean_states(id_lists):
        out = []
        for i in range(0, len(id_lists), 16):
            chunk = id_lists[i:i + 16]
            ids = np.full((len(chunk), max(map(len, chunk))), weights.pad_id, np.int32)
            mask = np.zeros(ids.shape, np.float32)
            for row, x in enumerate(chunk):
                ids[row, :len(x)], mask[row, :len(x)] = x, 1
            states = features.encoder(tf.constant(ids), tf.constant(mask), layers=(7,))[0]
            out += [states[row, 1:len(x) - 1].numpy().mean(0) for row, x in enumerate(chunk)]
        return np.stack(out)

    def first_piece_means(token_lists, joined=False):
        out = []
        for i in range(0, len(token_lists), 16):
            chunk = token_lists[i:i + 16]
            words = features.compiled(tf.ragged.constant(chunk, row_splits_dtype=tf.int64),
                                      tf.fill([len(chunk)], True) if joined else None)
            out += [words[row, :len(t), 0].numpy().mean(0) for row, t in enumerate(chunk)]
        return np.stack(out)

    docs = {"train": sample("train"), "test": sample("test")}  # jp
    source_rng = np.random.default_rng(1)
    for lang in SOURCES:
        all_docs = reviews.read_reviews(os.path.join(os.path.dirname(os.path.dirname(folder)),
                                                     lang, args.domain, "train.review"))
        docs[lang] = [all_docs[i] for i in
                      source_rng.choice(len(all_docs), args.reviews, replace=False)]
    tokens = {s: [list(t)[:256] for t in loading.tokenize_texts([d.text for d in ds])]
              for s, ds in docs.items()}
    labels = {s: np.array([d.label for d in ds], float) for s, ds in docs.items()}
    ways = {
        "runs_first_piece": lambda s: first_piece_means(tokens[s]),
        "runs_all_pieces": lambda s: mean_states([run_pieces(t) for t in tokens[s]]),
        "text_all_pieces": lambda s: mean_states([text_pieces(d.text) for d in docs[s]]),
        "joined_first_piece": lambda s: first_piece_means(tokens[s], s in ("train", "test")),
    }
    ways = {name: ways[name] for name in args.ways.split(",")}

    def accuracy(X_train, y_train, X_test, y_test, mean, std):
        w, b = logistic_regression((X_train - mean) / std, y_train)
        predicted = ((X_test - mean) / std) @ w + b > 0
        return round(100 * float(np.mean(predicted == (y_test > 0.5))), 2)

    stored_path = os.path.join(common.RESULTS, "jp_encoding_probe.json")
    results = {}
    if os.path.exists(stored_path):
        with open(stored_path, encoding="utf-8") as f:
            stored = json.load(f)
        if (stored.get("domain"), stored.get("reviews")) == (args.domain, args.reviews):
            results = {name: dict(r, command=r.get("command", stored["command"]),
                                  date=r.get("date", stored["date"]))
                       for name, r in stored["results"].items() if name in WAYS}
    command = "python benchmarks/jp_encoding_probe.py " + " ".join(sys.argv[1:])
    for name, pooled in ways.items():
        start = time.perf_counter()
        sets = ["train", "test"] + (list(SOURCES) if args.cross_lingual and
                                    name != "runs_all_pieces" else [])
        X = {s: pooled(s) for s in sets}
        results[name] = {"test_acc": accuracy(X["train"], labels["train"], X["test"],
                                              labels["test"], X["train"].mean(0),
                                              X["train"].std(0) + 1e-6)}
        if len(sets) > 2:
            Xs = np.concatenate([X[l] for l in SOURCES])
            ys = np.concatenate([labels[l] for l in SOURCES])
            results[name]["cross_lingual_test_acc"] = accuracy(
                Xs, ys, X["test"], labels["test"], Xs.mean(0), Xs.std(0) + 1e-6)
            # Each language centred on its own mean (jp: its train reviews'
            # text, labels unread, as MAN-MoE's unlabeled data).
            centred = np.concatenate([X[l] - X[l].mean(0) for l in SOURCES])
            results[name]["cross_lingual_centred_test_acc"] = accuracy(
                centred, ys, X["test"] - X["train"].mean(0), labels["test"], 0.0,
                centred.std(0) + 1e-6)
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        results[name].update(command=command, date=common.today())
        if not name.endswith("first_piece"):
            inputs = ([run_pieces(t) for t in tokens["test"]] if name.startswith("runs")
                      else [text_pieces(d.text) for d in docs["test"]])
            results[name]["mean_pieces"] = round(float(np.mean([len(x) - 2 for x in inputs])), 1)
        print(name, results[name], flush=True)
    results = {name: results[name] for name in WAYS if name in results}
    data = {"command": command, "machine": common.machine(), "date": common.today(),
            "commit": common.git_commit(), "domain": args.domain, "reviews": args.reviews,
            "results": results}
    common.save("jp_encoding_probe.json", data)
    lines = [f"# Japanese review sentiment from frozen e5-small states, by how text reaches "
             f"the encoder (jp/{args.domain})", "",
             f"Last run: `{data['command']}` on {data['machine']}, {data['date']} (commit "
             f"{data['commit']}); each row's own command and date are in the JSON. "
             f"{args.reviews} seeded train and {args.reviews} test reviews; "
             "layer 7, mean-pooled, logistic regression trained and tested in Japanese.", "",
             "| input | jp -> jp test accuracy (%) | en+de+fr -> jp | en+de+fr -> jp, each "
             "language centred | pieces per jp review |", "|---|---|---|---|---|"]
    cell = lambda r, key: f"{r[key]:.2f}" if key in r else ""
    for name, r in results.items():
        lines.append(f"| {name} | {r['test_acc']:.2f} | {cell(r, 'cross_lingual_test_acc')} | "
                     f"{cell(r, 'cross_lingual_centred_test_acc')} | "
                     f"{r.get('mean_pieces', '')} |")
    lines += ["", "runs_*: UnicodeScriptTokenizer tokens, each encoded with its own word-start "
              "mark (man_tf's encoder input; runs_first_piece is the word feature MAN-MoE "
              "read before model.encoder_joined_languages); text_all_pieces: the review as "
              "one string (every language); joined_first_piece: each jp run's feature is the "
              "state of the piece holding its first character in the review read as one "
              "text (what MAN-MoE reads now; en/de/fr word by word). "
              "en+de+fr -> jp: trained on the domain's en, de and fr train reviews "
              f"({args.reviews} each, seeded), tested on the same jp test reviews; centred: "
              "each language's features minus its own mean (jp: the mean over its train "
              "reviews, labels unread)."]
    with open(os.path.join(common.RESULTS, "jp_encoding_probe.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
