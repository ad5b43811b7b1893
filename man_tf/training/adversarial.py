"""MAN-MoE's alternating training step as a ``keras.Model.train_step``
(Chen et al. 2019, Algorithm 1), run by ``fit`` under any ``tf.distribute``
strategy.

One iteration (one ``fit`` step):

1. ``k`` discriminator updates: for each, F_s encodes one unlabeled batch per
   language (all languages, targets included, stacked), and ``d_optimizer``
   minimises D's language-identification loss. Only D's variables change.
2. One main update of everything but D (embeddings unless frozen, char-CNN,
   F_s, F_p, C) by ``optimizer``: task loss on one labeled batch per source
   language + ``gate_loss_weight`` x F_p's gate cross-entropy
   + ``predictor_gate_loss_weight`` x C's gate cross-entropy + D's loss on
   one unlabeled batch per language seen through the gradient reversal
   layer, so F_s receives ``-λ ∂L_D/∂F_s``. A fine-tuned encoder
   (``model.encoder_trainable``) takes the same update's gradients with its
   own ``encoder_optimizer`` (a fine-tuning step size).
   In self-training (a student's run), the update also takes
   ``self_training_weight`` x the cross-entropy between a teacher's label
   distributions and the model's on one batch of the target's text
   (per token or per document).

Target-language labels never enter: labeled batches come from sources only.
Losses use :func:`losses.per_language_mean` (each language's mean over the
*global* batch), and the logged values are all-reduced inside the step, so 2
replicas take the same update and log the same values as 1.

The Keras GAN pattern (keras-io ``custom_train_step_in_tensorflow``)::

    model = AdversarialModel(man_moe, num_languages=4, lambd=0.002)
    model.compile(optimizer=LazyAdam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
    model.fit(distribute_stream(strategy, stream), steps_per_epoch=..., callbacks=[...])
"""

import keras
import tensorflow as tf

from man_tf.keras_internals import OwnTrainFunction
from man_tf.training import losses
from man_tf.training.optimizers import LazyAdam


def _rows(x, replica, replicas):
    """Replica ``replica``'s contiguous share of the rows of ``x``."""
    n = tf.shape(x)[0] // replicas
    return x[replica * n:(replica + 1) * n]


def distribute_stream(strategy, dataset):
    """Splits every global batch of ``dataset`` into per-replica row slices
    (a ``DistributedDataset`` that ``fit`` uses as it is).

    Every worker builds the same global stream (same seeds) and keeps the
    slices of its own replicas, so N replicas on any number of workers see
    exactly the rows one replica would, and (with the global per-language
    normalisation) take the same step. One replica gets the dataset itself.
    """
    if strategy.num_replicas_in_sync == 1:
        return dataset

    def per_worker(context):
        replicas = context.num_replicas_in_sync
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(batch):
            parts = [tf.nest.map_structure(lambda x, r=r: _rows(x, r, replicas), batch)
                     for r in range(first, first + local)]
            stacked = tf.nest.map_structure(lambda *xs: tf.stack(xs), *parts) \
                if local > 1 else tf.nest.map_structure(lambda x: x[None], parts[0])
            return tf.data.Dataset.from_tensor_slices(stacked)

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.OFF
        return dataset.flat_map(slices).with_options(options)

    return strategy.distribute_datasets_from_function(per_worker)


class _Ratio(keras.metrics.Metric):
    """Σ correct / Σ count since the last reset (accuracy over real units)."""

    def __init__(self, name):
        super().__init__(name=name)
        self.correct = self.add_variable((), initializer="zeros", dtype="float32",
                                         aggregation="sum", name="correct")
        self.count = self.add_variable((), initializer="zeros", dtype="float32",
                                       aggregation="sum", name="count")

    def update_state(self, correct, count):
        self.correct.assign_add(tf.cast(correct, "float32"))
        self.count.assign_add(tf.cast(count, "float32"))

    def result(self):
        return self.correct / tf.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="man_tf")
class AdversarialModel(OwnTrainFunction, keras.Model):
    """Wraps a built MAN-MoE model (tagger or classifier) for ``fit``.

    Args:
      model: a ``ManMoeModel`` (a tagger or a classifier); its
        ``call`` returns ``log_probs``, ``gate_logits``, optionally
        ``private_gate_logits``, and ``mask``, and
        its ``label_key`` names the batch's label field. Built here (every
        variable, before any step) if it is not yet.
      num_languages: all languages (sources first, in source order).
      lambd: λ, assigned to the model's λ variable (the one its gradient
        reversal applies); None keeps the model's (its config's). λ = 0
        leaves the adversarial term out of the step (D is still trained when
        ``discriminator_steps > 0``, to monitor F_s); a positive λ may be
        reassigned between steps (``model.lambd.assign``: a schedule), and
        every step logs the value it applied as ``lambda``.
      discriminator_steps: k, D updates per iteration (0: no D at all).
      discriminator_batch: which unlabeled batch D's update reads. ``"own"``
        (the authors'): each of the k updates draws its own batch (the
        stream's ``discriminator`` batches) and runs F_s over it before the
        main update. ``"main"``: D's one update (k = 1) is computed in the
        main update's backward pass from the adversarial term's batch and
        F_s features (the gradient reversal sits between F_s and D, so the
        same D loss gives D its descent and F_s its reversed gradient): one
        F_s and one D pass fewer per iteration (BUILD_NOTES.md, "One
        iteration against the machine's peak").
      gate_loss_weight: weight of F_p's gate loss.
      predictor_gate_loss_weight: weight of C's gate loss.
      self_training_weight: weight of the loss on a teacher's labels of
        the target's text (the stream's ``taught`` batches); 0: no such loss.

    ``call`` is the wrapped model's (prediction); ``train_step`` is the
    iteration above; ``metrics`` are its trackers (losses: means, accuracies:
    ratios over real units, both since the last ``reset_metrics``), and the
    step's logs also hold ``lambda``. ``state`` (set by
    ``man_tf.training.train``) is the run's ``TrainingState``: the global
    step, best score and checkpoints, for callbacks.
    """

    def __init__(self, model, num_languages, lambd=None, discriminator_steps=1,
                 gate_loss_weight=0.01, predictor_gate_loss_weight=0.01,
                 self_training_weight=0.0, discriminator_batch="own", **kwargs):
        super().__init__(**kwargs)
        self.man_moe = model
        outputs = model.build_all()  # every variable, λ's included, before any step
        self.num_languages = int(num_languages)
        if lambd is not None:
            self.lambd.assign(float(lambd))
        self.discriminator_steps = int(discriminator_steps)
        self.adversarial = float(self.lambd.numpy()) > 0 and self.discriminator_steps > 0
        if discriminator_batch not in ("own", "main"):
            raise ValueError(f"discriminator_batch={discriminator_batch!r}: expected 'own' "
                             f"or 'main'")
        if discriminator_batch == "main" and self.discriminator_steps > 1:
            raise ValueError(f"discriminator_batch='main' makes one D update per iteration; "
                             f"discriminator_steps={self.discriminator_steps}")
        self.discriminator_batch = discriminator_batch
        # D trained inside the main update (then the main update runs the
        # adversary pass even at λ = 0, where the reversal passes F_s nothing).
        self.joint_discriminator = discriminator_batch == "main" and self.discriminator_steps > 0
        self.adversary_pass = self.adversarial or self.joint_discriminator
        self.gate_loss_weight = float(gate_loss_weight)
        self.predictor_gate_loss_weight = float(predictor_gate_loss_weight)
        self.self_training_weight = float(self_training_weight)
        # Which losses this model has: a gate with one expert learns nothing.
        self._gates = [(name, key, weight) for name, key, weight in (
            ("gate", "gate_logits", self.predictor_gate_loss_weight),
            ("private_gate", "private_gate_logits", self.gate_loss_weight))
            if key in outputs and outputs[key].shape[-1] > 1]
        names = ["task"] + [name for name, _, _ in self._gates]
        self._losses = {f"{n}_loss": keras.metrics.Mean(name=f"{n}_loss") for n in names}
        self._accuracies = {f"{n}_accuracy": _Ratio(f"{n}_accuracy") for n in names}
        if self.discriminator_steps:
            self._losses["d_loss"] = keras.metrics.Mean(name="d_loss")
            self._accuracies["d_accuracy"] = _Ratio("d_accuracy")
        if self.adversarial:
            self._losses["adversarial_d_loss"] = keras.metrics.Mean(name="adversarial_d_loss")
        if self.self_training_weight:
            self._losses["taught_loss"] = keras.metrics.Mean(name="taught_loss")
        self._losses["total_loss"] = keras.metrics.Mean(name="total_loss")
        self.d_optimizer = None
        self.encoder_optimizer = None
        self.state = None
        self.built = True

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.man_moe),
                "num_languages": self.num_languages, "lambd": float(self.lambd.numpy()),
                "discriminator_steps": self.discriminator_steps,
                "gate_loss_weight": self.gate_loss_weight,
                "predictor_gate_loss_weight": self.predictor_gate_loss_weight,
                "self_training_weight": self.self_training_weight,
                "discriminator_batch": self.discriminator_batch}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)

    @property
    def own_discriminator_batches(self):
        """How many D batches of their own each stream element carries (k, or
        0 where D learns in the main update); the stream's ``unlabeled``
        batch is there when :attr:`adversary_pass`."""
        return 0 if self.joint_discriminator else self.discriminator_steps

    @property
    def lambd(self):
        """λ: the wrapped model's gradient reversal variable (one λ)."""
        return self.man_moe.lambd

    @property
    def main_variables(self):
        """What ``optimizer`` updates: every trainable variable but D's."""
        return self.man_moe.main_variables()

    @property
    def encoder_variables(self):
        """What ``encoder_optimizer`` updates: a fine-tuned encoder's variables."""
        return self.man_moe.encoder_variables()

    @property
    def d_variables(self):
        """What ``d_optimizer`` updates: D's variables."""
        return self.man_moe.discriminator_variables()

    @property
    def metrics(self):
        return [*self._losses.values(), *self._accuracies.values()]

    def call(self, inputs, training=False):
        return self.man_moe(inputs, training=training)

    def compile(self, optimizer=None, d_optimizer=None, jit_compile=False,
                encoder_optimizer=None, **kwargs):
        """``optimizer`` updates everything but D and a fine-tuned encoder
        (default: LazyAdam 1e-3, which leaves embedding rows a batch does not
        touch alone); ``d_optimizer`` updates D (default: Adam 1e-3);
        ``encoder_optimizer`` a fine-tuned encoder (default: Adam 3e-5; unused
        without one). Under ``mixed_float16`` the first two are wrapped in a
        ``LossScaleOptimizer`` (a fine-tuned encoder is refused there)."""
        optimizer = optimizer or LazyAdam(1e-3, name="main_adam")
        d_optimizer = d_optimizer or keras.optimizers.Adam(1e-3, name="discriminator_adam")
        if self.encoder_variables:
            self.encoder_optimizer = encoder_optimizer or keras.optimizers.Adam(
                3e-5, name="encoder_adam")
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            if self.encoder_variables:
                raise ValueError("a fine-tuned encoder under mixed_float16: its optimizer "
                                 "would see scaled gradients; use mixed_bfloat16 or float32")
            # float16 gradients underflow without loss scaling (bf16 does not need it).
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        if self.joint_discriminator and isinstance(d_optimizer,
                                                   keras.optimizers.LossScaleOptimizer):
            # D's gradient would come scaled by the main optimizer's loss scale.
            raise ValueError("discriminator_batch='main' under mixed_float16: use 'own', or "
                             "mixed_bfloat16 or float32")
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        self.d_optimizer = d_optimizer
        # Each optimizer is built on exactly its own variables: neither can
        # touch the other's, and a Keras 3 optimizer insists on this anyway.
        self.optimizer.build(self.main_variables)
        self.d_optimizer.build(self.d_variables)
        if self.encoder_optimizer is not None:
            self.encoder_optimizer.build(self.encoder_variables)

    # -- losses -------------------------------------------------------------

    @staticmethod
    def _scaled(optimizer, loss):
        """The loss to differentiate: scaled under a LossScaleOptimizer (which
        unscales the gradients and skips steps that overflow)."""
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.scale_loss(loss)
        return loss

    def _language_loss(self, logits, batch, mask):
        """D's cross-entropy against each row's language; per-language mean."""
        language = batch["language"]
        if self.man_moe.adversary.per_token:
            targets = losses.broadcast_rows(language, mask)
            unit_mask = mask
        else:
            targets, unit_mask = language, tf.ones_like(language, tf.bool)
        loss = losses.per_language_mean(losses.cross_entropy(logits, targets), unit_mask,
                                        language, self.num_languages)
        correct, count = losses.correct_and_count(logits, targets, unit_mask)
        return loss, correct, count

    def discriminator_update(self, batch):
        """One D update on an unlabeled batch; returns (loss share, correct, count)."""
        features, mask = self.man_moe.shared_features(batch, training=True)
        features = tf.stop_gradient(features)
        with tf.GradientTape() as tape:
            logits = self.man_moe.discriminate(features, batch["lengths"], training=True)
            loss, correct, count = self._language_loss(logits, batch, mask)
            scaled = self._scaled(self.d_optimizer, loss)
        grads = tape.gradient(scaled, self.d_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.d_variables))
        return loss, correct, count

    def _taught_loss(self, batch):
        """Cross-entropy from the teacher's distributions (``soft``) to the
        model's, each language's mean over real units (the target's only)."""
        outputs = self.man_moe(batch, training=True)
        soft = tf.cast(batch["soft"], tf.float32)
        values = -tf.reduce_sum(soft * tf.cast(outputs["log_probs"], tf.float32), axis=-1)
        return losses.per_language_mean(values, outputs["mask"], batch["language"],
                                        self.num_languages)

    def main_update(self, labeled, unlabeled, taught=None):
        """The main update; returns this replica's shares of the losses and counts."""
        model = self.man_moe
        language = labeled["language"]
        labels = labeled[model.label_key]
        logs = {}
        with tf.GradientTape() as tape:
            if self.adversary_pass:
                outputs = model.call_with_adversary(labeled, unlabeled, training=True)
            else:
                outputs = model(labeled, training=True)
            mask = outputs["mask"]
            unit_language = losses.broadcast_rows(language, mask)
            task = losses.per_language_mean(
                model.head.unit_losses(outputs, labels), mask,
                language, self.num_languages)
            supervised = task  # task loss + weighted gate losses
            logs["task_loss"] = task
            logs["task_correct"], logs["task_count"] = losses.correct_and_count(
                outputs["log_probs"], labels, mask)
            for name, key, weight in self._gates:
                # Source rows' language index equals their expert index: sources
                # come first in the language list, in expert order.
                gate_loss = losses.per_language_mean(
                    losses.cross_entropy(outputs[key], unit_language), mask, language,
                    self.num_languages)
                supervised += weight * gate_loss
                logs[f"{name}_loss"] = gate_loss
                logs[f"{name}_correct"], _ = losses.correct_and_count(
                    outputs[key], unit_language, mask)
            if self.self_training_weight and taught is not None:
                logs["taught_loss"] = self._taught_loss(taught)
                supervised += self.self_training_weight * logs["taught_loss"]
            if self.adversary_pass:
                adversarial, d_correct, d_count = self._language_loss(
                    outputs["adversarial_logits"], unlabeled, outputs["adversarial_mask"])
                # L_D reaches F_s through the reversal layer, which turns its
                # gradient into -λ ∂L_D/∂F_s: differentiating supervised + L_D
                # descends supervised - λ·L_D (the objective, logged) for F_s,
                # and (discriminator_batch="main") descends L_D for D.
                differentiated = supervised + adversarial
                objective = supervised - tf.cast(self.lambd, supervised.dtype) * adversarial
                if self.adversarial:
                    logs["adversarial_d_loss"] = adversarial
                if self.joint_discriminator:
                    logs.update(d_loss=adversarial, d_correct=d_correct, d_count=d_count)
            else:
                differentiated = objective = supervised
            scaled = self._scaled(self.optimizer, differentiated)
        main = self.main_variables
        encoder = self.encoder_variables if self.encoder_optimizer is not None else []
        discriminator = self.d_variables if self.joint_discriminator else []
        grads = tape.gradient(scaled, main + encoder + discriminator)
        if discriminator:
            self.d_optimizer.apply_gradients(zip(grads[len(grads) - len(discriminator):],
                                                 discriminator))
            grads = grads[:len(grads) - len(discriminator)]
        self.optimizer.apply_gradients(zip(grads[:len(main)], main))
        if encoder:
            # Dense: the position table's gradient comes as IndexedSlices with
            # a row per piece, repeated rows included, and Keras' Adam moves
            # such a row by a multiple of its step size (tests/training:
            # the schedule test checks the step Adam applies).
            dense = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                     for g in grads[len(main):]]
            self.encoder_optimizer.apply_gradients(zip(dense, encoder))
        logs["total_loss"] = objective
        return logs

    # -- the step -------------------------------------------------------------

    def train_step(self, data):
        """One iteration on this replica's rows of a training-stream batch
        (``labeled``, ``unlabeled``, ``discriminator``); returns the trackers'
        values and ``lambda``."""
        logs = {}
        if self.discriminator_steps and not self.joint_discriminator:
            d_loss = d_correct = d_count = 0.0
            for d_batch in data["discriminator"][:self.discriminator_steps]:
                loss, correct, count = self.discriminator_update(d_batch)
                d_loss += loss / self.discriminator_steps
                d_correct += correct
                d_count += count
            logs.update(d_loss=d_loss, d_correct=d_correct, d_count=d_count)
        logs.update(self.main_update(data["labeled"], data.get("unlabeled"),
                                     data.get("taught")))
        # Loss shares and partial counts sum over replicas to the global values,
        # so every replica updates its trackers with the same numbers.
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            logs = context.all_reduce(tf.distribute.ReduceOp.SUM, logs)
        for name, tracker in self._losses.items():
            tracker.update_state(logs[name])
        for name, tracker in self._accuracies.items():
            prefix = name[:-len("_accuracy")]
            count = logs["d_count"] if prefix == "d" else logs["task_count"]
            tracker.update_state(logs[f"{prefix}_correct"], count)
        results = {m.name: m.result() for m in self.metrics}
        results["lambda"] = tf.identity(self.lambd)  # the value this step applied
        return results
