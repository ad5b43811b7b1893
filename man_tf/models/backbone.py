"""The backbone MAN-MoE's task models share: inputs -> F_s and F_p's BiLSTM.

    words (per-language rows) ┐
    encoder features (mixed)  ├─ concat -> x ─┬─ F_s (BiLSTM)  -> shared  [B, T, Hs]
    characters (char-CNN)     ┘               └─ F_p's BiLSTM -> private [B, T, Hp]

Any of the three inputs can be left out (at least one stays). The mixtures
of experts on top live in :mod:`man_tf.models.head`, the language
discriminator in :mod:`man_tf.models.adversary`.
"""

import keras
import tensorflow as tf

from man_tf.layers import BiLSTMEncoder, CharCNN, ScalarMix, WordEmbedding


@keras.saving.register_keras_serializable(package="man_tf")
class Backbone(keras.layers.Layer):
    """Inputs: ``{"words": [batch, time], "chars": [batch, time, chars],
    "lengths": [batch]}``, and with a pretrained encoder ``"encoder_features":
    [batch, time, layers, dim]`` (its word features, mixed over layers by a
    learned :class:`ScalarMix`), or with a fine-tuned encoder
    (``word_features``) ``"tokens": string [batch, time]`` from which it
    computes them.

    ``call`` returns ``{"embeddings", "mask", "shared"}`` and, with F_p,
    ``"private"`` (F_p's BiLSTM states, before its experts). The parts are
    also callable alone (``embed``, ``shared``, ``private``): the adversarial
    step runs the embeddings and F_s once over labeled and unlabeled rows
    stacked, and F_p over the labeled rows only.

    Arguments named as ``config.model`` fields come from there (see
    ``configs/``); the others are the data's (``num_words``, ``num_chars``,
    ``word_block_starts``: ``WordVocabulary.offsets``), the encoder's
    (``encoder_dim``, ``num_encoder_layers``, ``word_features``: a
    fine-tuned encoder layer) or the run's (``unique_char_words`` and
    ``pack_rows``, the BiLSTMs' training on packed rows: False under XLA,
    whose shapes must be static).
    """

    def __init__(self, *, num_words, num_chars, word_block_starts, unique_char_words,
                 encoder_dim, num_encoder_layers, use_words, word_dim, fix_embeddings,
                 unk_replacement, use_char_cnn, char_embedding_dim, char_filters,
                 char_kernel_sizes, char_output_dim, char_embedding_trainable, shared_hidden,
                 private_hidden, lstm_layers, use_private, dropout, word_dropout,
                 lstm_implementation="auto", word_features=None, pack_rows=True,
                 char_convolution="matmul", **kwargs):
        super().__init__(**kwargs)
        self.num_words, self.num_chars = int(num_words), int(num_chars)
        self.word_block_starts = tuple(int(b) for b in word_block_starts)
        self.unique_char_words = bool(unique_char_words)
        self.encoder_dim, self.num_encoder_layers = int(encoder_dim), int(num_encoder_layers)
        self.use_words, self.word_dim = bool(use_words), int(word_dim)
        self.fix_embeddings, self.unk_replacement = bool(fix_embeddings), float(unk_replacement)
        self.use_char_cnn = bool(use_char_cnn)
        self.char_embedding_dim, self.char_filters = int(char_embedding_dim), int(char_filters)
        self.char_kernel_sizes = tuple(int(k) for k in char_kernel_sizes)
        self.char_output_dim = int(char_output_dim)
        self.char_embedding_trainable = bool(char_embedding_trainable)
        self.char_convolution = char_convolution
        self.shared_hidden, self.private_hidden = int(shared_hidden), int(private_hidden)
        self.lstm_layers, self.use_private = int(lstm_layers), bool(use_private)
        self.dropout, self.word_dropout = float(dropout), float(word_dropout)
        self.lstm_implementation = lstm_implementation
        self.pack_rows = bool(pack_rows)
        if not (self.use_words or self.use_char_cnn or self.encoder_dim):
            raise ValueError("no input: enable word vectors, the char-CNN or an encoder")
        if word_features is not None and not self.encoder_dim:
            raise ValueError("word_features given, but the backbone reads no encoder features")
        self.word_features = word_features
        self.input_dim = 0
        if self.use_words:
            self.word_embedding = WordEmbedding(self.num_words, self.word_dim,
                                                block_starts=self.word_block_starts,
                                                unk_replacement=self.unk_replacement,
                                                name="word_embedding")
            self.input_dim += self.word_dim
        if self.encoder_dim:
            self.encoder_mix = ScalarMix(self.num_encoder_layers, name="encoder_mix")
            self.input_dim += self.encoder_dim
        if self.use_char_cnn:
            self.char_cnn = CharCNN(self.num_chars, self.char_embedding_dim, self.char_filters,
                                    self.char_kernel_sizes, self.char_output_dim, self.dropout,
                                    self.char_embedding_trainable, self.unique_char_words,
                                    convolution=self.char_convolution, name="char_cnn")
            self.input_dim += self.char_output_dim
        self.shared_encoder = BiLSTMEncoder(self.shared_hidden, self.lstm_layers, self.dropout,
                                            self.word_dropout, self.lstm_implementation,
                                            self.pack_rows, name="shared_encoder")
        if self.use_private:
            self.private_encoder = BiLSTMEncoder(self.private_hidden, self.lstm_layers,
                                                 self.dropout, self.word_dropout,
                                                 self.lstm_implementation, self.pack_rows,
                                                 name="private_encoder")

    @property
    def private_dim(self):
        """Size of F_p's states (0 without F_p)."""
        return self.private_hidden if self.use_private else 0

    def build(self, input_shape=None):
        """Creates every variable; the shapes that matter are fixed by the
        constructor (``input_shape`` is accepted for Keras and not read)."""
        if self.use_words:
            self.word_embedding.build((None, None))
        if self.encoder_dim:
            self.encoder_mix.build((None, None, self.num_encoder_layers, self.encoder_dim))
        if self.use_char_cnn:
            self.char_cnn.build((None, None, None))
        self.shared_encoder.build((None, None, self.input_dim))
        if self.use_private:
            self.private_encoder.build((None, None, self.input_dim))
        if self.word_features is not None:
            self.word_features.build()
        self.built = True

    def load_word_vectors(self, vectors, rows):
        """Pretrained vectors into word rows ``rows``; with ``fix_embeddings``
        the word table then stays frozen (the paper's fixed embeddings).
        Before the optimizer is built."""
        self.word_embedding.load(vectors, rows)
        self.word_embedding.trainable = not self.fix_embeddings

    def embed(self, inputs, training=False):
        """-> (embeddings ``[batch, time, input_dim]``, mask ``[batch, time]`` bool)."""
        words = inputs["words"]
        mask = tf.sequence_mask(inputs["lengths"], tf.shape(words)[1])
        parts = []
        if self.use_words:
            parts.append(self.word_embedding(words, training=training))
        if self.encoder_dim:
            if self.word_features is not None:  # a fine-tuned encoder: computed here
                features = self.word_features(inputs["tokens"], inputs["lengths"],
                                              inputs.get("language"), training=training)
            else:
                features = inputs["encoder_features"]
            parts.append(self.encoder_mix(features))
        if self.use_char_cnn:
            parts.append(self.char_cnn(inputs["chars"], mask, training=training))
        x = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
        return x, mask

    def shared(self, embeddings, lengths, training=False):
        """F_s: ``[batch, time, shared_hidden]``."""
        return self.shared_encoder(embeddings, lengths, training=training)

    def private(self, embeddings, lengths, training=False):
        """F_p's BiLSTM: ``[batch, time, private_hidden]``."""
        return self.private_encoder(embeddings, lengths, training=training)

    def call(self, inputs, training=False):
        x, mask = self.embed(inputs, training)
        outputs = {"embeddings": x, "mask": mask,
                   "shared": self.shared(x, inputs["lengths"], training)}
        if self.use_private:
            outputs["private"] = self.private(x, inputs["lengths"], training)
        return outputs

    def get_config(self):
        config = {**super().get_config(), "num_words": self.num_words,
                  "num_chars": self.num_chars, "word_block_starts": list(self.word_block_starts),
                  "unique_char_words": self.unique_char_words, "encoder_dim": self.encoder_dim,
                  "num_encoder_layers": self.num_encoder_layers, "use_words": self.use_words,
                  "word_dim": self.word_dim, "fix_embeddings": self.fix_embeddings,
                  "unk_replacement": self.unk_replacement, "use_char_cnn": self.use_char_cnn,
                  "char_embedding_dim": self.char_embedding_dim,
                  "char_filters": self.char_filters,
                  "char_kernel_sizes": list(self.char_kernel_sizes),
                  "char_output_dim": self.char_output_dim,
                  "char_embedding_trainable": self.char_embedding_trainable,
                  "char_convolution": self.char_convolution,
                  "shared_hidden": self.shared_hidden, "private_hidden": self.private_hidden,
                  "lstm_implementation": self.lstm_implementation, "pack_rows": self.pack_rows,
                  "lstm_layers": self.lstm_layers, "use_private": self.use_private,
                  "dropout": self.dropout, "word_dropout": self.word_dropout,
                  "word_features": None}
        if self.word_features is not None:
            config["word_features"] = keras.saving.serialize_keras_object(self.word_features)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("word_features") is not None:
            config["word_features"] = keras.saving.deserialize_keras_object(
                config["word_features"])
        return cls(**config)
