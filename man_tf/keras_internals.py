"""Every use of Keras' private API in man_tf, in one place.

Each piece says why it is needed; ``tests/test_keras_internals.py`` fails
loudly if a Keras upgrade removes or reshapes what it relies on (checked on
Keras 3.15 with the TensorFlow backend).
"""

import keras
import tensorflow as tf


def all_layers(model):
    """Every layer inside ``model`` (itself included), however deep: Keras 3
    has no public recursive walk (``Model.layers`` is one level)."""
    return list(model._flatten_layers(include_self=True, recursive=True))


def adam_slots(optimizer, variable):
    """(first moment, second moment) variables that ``keras.optimizers.Adam``
    keeps for ``variable``: a row-sparse update (``LazyAdam``) writes them
    itself, and Keras exposes them only through private lists."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


class OwnTrainFunction:
    """A ``keras.Model`` mixin for a model that builds every variable before
    ``fit`` and whose ``train_step`` all-reduces its own logs:

    * ``_maybe_symbolic_build`` does nothing: Keras (3.15, TF backend) peeks
      at a batch under a strategy to build unbuilt parts symbolically, and
      under MultiWorkerMirroredStrategy that peek fails (it reduces the
      batch's dicts);
    * ``make_train_function`` runs ``strategy.run(train_step)`` and keeps the
      first replica's logs (all replicas hold the same, all-reduced values;
      Keras' own reduction averages them, which fails on scalars under
      MultiWorkerMirroredStrategy in Keras 3.15). New iterators go through
      the iterator hooks first (exact resume: a callback restores the
      iterator's position before its first element is read). One trace
      serves every batch shape.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return

    def add_iterator_hook(self, hook):
        """``hook(iterator)`` runs once for each new iterator ``fit`` draws
        from, before its first element is read. A hook added again (a
        callback reused by another ``fit``) runs once."""
        hooks = self.__dict__.setdefault("_iterator_hooks", [])
        if hook not in hooks:
            hooks.append(hook)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        strategy = self.distribute_strategy

        def step_on_data(data):
            outputs = strategy.run(self.train_step, args=(data,))
            return {k: strategy.experimental_local_results(v)[0] for k, v in outputs.items()}

        if self.jit_compile:
            step_on_data = tf.function(step_on_data, jit_compile=True, reduce_retracing=True)

        @tf.function(reduce_retracing=True)
        def step_on_iterator(iterator):
            return step_on_data(next(iterator))

        seen = []

        def train_function(iterator):
            if not seen or seen[-1] is not iterator:
                seen[:] = [iterator]
                for hook in self.__dict__.get("_iterator_hooks", []):
                    hook(iterator)
            return step_on_iterator(iterator)

        self.train_function = train_function
        return train_function


assert issubclass(keras.Model, keras.layers.Layer)  # the mixin goes before keras.Model


def keras_lstm(inputs, mask, kernel, recurrent_kernel, bias, training=False):
    """One LSTM direction through the kernels Keras' ``LSTM`` layer runs
    (Keras 3.15, TF backend): ``keras.src.backend.tensorflow.rnn.lstm``,
    which is cuDNN's fused kernel where a GPU is visible and the arguments
    allow it (tanh/sigmoid, right-padded mask), and otherwise Keras' generic
    ``rnn`` loop with the LSTM cell's step. The weights are passed in (gate
    order i, f, c, o, as Keras'), so a layer keeps its own variables.
    ``inputs`` ``[batch, time, dim]``, ``mask`` bool ``[batch, time]`` ->
    outputs ``[batch, time, units]``."""
    import importlib

    # The module: ``keras.src.backend.tensorflow`` exports a function ``rnn``
    # under the module's name.
    tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    del training  # no dropout inside the recurrence
    units = recurrent_kernel.shape[0]
    zeros = tf.zeros([tf.shape(inputs)[0], units], inputs.dtype)
    try:
        _, outputs, _ = tf_rnn.lstm(inputs, zeros, zeros, mask, kernel, recurrent_kernel, bias,
                                    activation=tf.tanh, recurrent_activation=tf.sigmoid,
                                    return_sequences=True)
        return outputs
    except NotImplementedError:  # no GPU: Keras' generic loop, as its LSTM falls back
        pass

    def step(x_t, states):
        h, c = states
        z = tf.matmul(x_t, kernel) + tf.matmul(h, recurrent_kernel) + bias
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return h, [h, c]

    _, outputs, _ = tf_rnn.rnn(step, inputs, [zeros, zeros], mask=mask,
                               zero_output_for_mask=True, return_all_outputs=True)
    return outputs
