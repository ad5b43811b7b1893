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


class Backbone(keras.layers.Layer):
    """Inputs: ``{"words": [batch, time], "chars": [batch, time, chars],
    "lengths": [batch]}``, and with a pretrained encoder ``"encoder_features":
    [batch, time, layers, dim]`` (its word features, mixed over layers by a
    learned :class:`ScalarMix`), or with a fine-tuned encoder
    (:meth:`attach_encoder`) ``"tokens": string [batch, time]`` from which
    it computes them.

    ``call`` returns ``{"embeddings", "mask", "shared"}`` and, with F_p,
    ``"private"`` (F_p's BiLSTM states, before its experts). The parts are
    also callable alone (``embed``, ``shared``, ``private``): the adversarial
    step runs the embeddings and F_s once over labeled and unlabeled rows
    stacked, and F_p over the labeled rows only.
    """

    def __init__(self, num_words, num_chars, word_dim=300, word_embeddings_trainable=True,
                 use_char_cnn=True, char_embedding_dim=128, char_filters=200,
                 char_kernel_sizes=(3, 4, 5), char_output_dim=128,
                 char_embedding_trainable=False, unique_char_words=True, shared_hidden=200,
                 private_hidden=200, lstm_layers=2, use_private=True, dropout=0.5,
                 word_dropout=0.5, word_block_starts=(0,), unk_replacement=0.0, use_words=True,
                 encoder_dim=0, encoder_layers=1, **kwargs):
        super().__init__(**kwargs)
        self.use_words = bool(use_words)
        self.use_char_cnn = bool(use_char_cnn)
        self.use_private = bool(use_private)
        self.encoder_dim = int(encoder_dim)
        self.encoder_layers = int(encoder_layers)
        self.shared_hidden = int(shared_hidden)
        self.private_hidden = int(private_hidden)
        if not (self.use_words or self.use_char_cnn or self.encoder_dim):
            raise ValueError("no input: enable word vectors, the char-CNN or an encoder")
        self.input_dim = 0
        if self.use_words:
            self.word_embedding = WordEmbedding(num_words, word_dim,
                                                trainable=word_embeddings_trainable,
                                                block_starts=word_block_starts,
                                                unk_replacement=unk_replacement,
                                                name="word_embedding")
            self.input_dim += int(word_dim)
        if self.encoder_dim:
            self.encoder_mix = ScalarMix(self.encoder_layers, name="encoder_mix")
            self.input_dim += self.encoder_dim
        if self.use_char_cnn:
            self.char_cnn = CharCNN(num_chars, char_embedding_dim, char_filters,
                                    char_kernel_sizes, char_output_dim, dropout,
                                    char_embedding_trainable, unique_char_words, name="char_cnn")
            self.input_dim += int(char_output_dim)
        self.shared_encoder = BiLSTMEncoder(shared_hidden, lstm_layers, dropout, word_dropout,
                                            name="shared_encoder")
        if self.use_private:
            self.private_encoder = BiLSTMEncoder(private_hidden, lstm_layers, dropout,
                                                 word_dropout, name="private_encoder")

    def attach_encoder(self, word_features):
        """Computes the encoder features in the model with ``word_features``
        (a :class:`man_tf.pretrained.word_features.TrainableWordFeatures`:
        a fine-tuned encoder) from the batch's ``"tokens"`` (string
        ``[batch, time]``) instead of reading ``"encoder_features"``. Before
        the backbone is built."""
        if self.built:
            raise ValueError("attach_encoder: the backbone is built already")
        if not self.encoder_dim:
            raise ValueError("attach_encoder: the backbone reads no encoder features")
        self.word_features = word_features

    @property
    def trainable_encoder(self):
        """The attached :class:`TrainableWordFeatures`, or None."""
        return getattr(self, "word_features", None)

    def build(self, input_shape=None):
        """Creates every variable; the shapes that matter are fixed by the
        constructor (``input_shape`` is accepted for Keras and not read)."""
        self.build_shared()
        self.build_private()
        self.built = True

    def build_shared(self):
        """The inputs' variables and F_s's (a model may build other parts
        between this and :meth:`build_private`: the order in which parts
        are built is the order their initial weights are drawn)."""
        with keras.name_scope(self.name, caller=self):
            build_once(self.word_embedding if self.use_words else None, (None, None))
            build_once(self.encoder_mix if self.encoder_dim else None,
                       (None, None, self.encoder_layers, self.encoder_dim))
            build_once(self.char_cnn if self.use_char_cnn else None, (None, None, None))
            build_once(self.shared_encoder, (None, None, self.input_dim))

    def build_private(self):
        """F_p's BiLSTM (nothing without F_p)."""
        with keras.name_scope(self.name, caller=self):
            build_once(self.private_encoder if self.use_private else None,
                       (None, None, self.input_dim))

    def embed(self, inputs, training=False):
        """-> (embeddings ``[batch, time, input_dim]``, mask ``[batch, time]`` bool)."""
        words = inputs["words"]
        mask = tf.sequence_mask(inputs["lengths"], tf.shape(words)[1])
        parts = []
        if self.use_words:
            parts.append(self.word_embedding(words, training=training))
        if self.encoder_dim:
            features = inputs.get("encoder_features")
            if features is None:  # a fine-tuned encoder: computed here
                features = self.word_features(inputs["tokens"], inputs["lengths"],
                                              inputs.get("language"), training=training)
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


def build_once(layer, shape):
    """Builds ``layer`` for ``shape`` unless it is None or built already."""
    if layer is not None and not layer.built:
        layer.build(shape)
