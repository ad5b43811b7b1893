"""The alternating MAN-MoE training step (Chen et al. 2019, Algorithm 1).

One iteration:

1. ``k`` discriminator updates: for each, F_s encodes one unlabeled batch per
   language (all languages, targets included, stacked), and D's optimizer
   minimises D's language-identification loss. Only D's variables change.
2. One main update of everything but D (embeddings unless frozen, char-CNN,
   F_s, F_p, C): task loss on one labeled batch per source language
   + ``gate_loss_weight`` x F_p's gate cross-entropy
   + ``tag_gate_loss_weight`` x C's gate cross-entropy
   + D's loss on one unlabeled batch per language seen through the gradient
   reversal layer, so F_s receives ``-λ ∂L_D/∂F_s``.

Target-language labels never enter: labeled batches come from sources only.
The whole iteration is one ``tf.function`` run by ``strategy.run``; losses use
:func:`per_language_mean`, so 2 replicas give the same update as 1.
"""

import keras
import tensorflow as tf

from man_tf.training import losses
from man_tf.training.optimizers import LazyAdam


def _rows(x, replica, replicas):
    """Replica ``replica``'s contiguous share of the rows of ``x``."""
    n = tf.shape(x)[0] // replicas
    return x[replica * n:(replica + 1) * n]


class AdversarialTrainer:
    """Owns the two optimizers and the compiled iteration for a MAN-MoE model.

    Args:
      model: a built ``ManMoeEncoder`` subclass whose ``call`` returns
        ``log_probs``, ``gate_logits``, optionally ``private_gate_logits``,
        and ``mask``, and whose ``label_key`` names the batch's label field.
      strategy: a ``tf.distribute.Strategy`` (the model was built in its scope).
      num_languages: all languages (sources first, in source order).
      lambd: λ, adversarial weight, assigned to the model's λ variable (the
        one its gradient reversal applies); None keeps the model's (its
        config's). λ = 0 here leaves the adversarial term out of the step
        (D is still trained when ``discriminator_steps > 0``, to monitor
        F_s); a positive λ may be reassigned between steps
        (``trainer.lambd.assign``: a schedule), and every step logs the
        value it applied.
      discriminator_steps: k, D updates per iteration (0: no D at all).
    """

    def __init__(self, model, strategy, num_languages, learning_rate=1e-3,
                 d_learning_rate=1e-3, lambd=None, discriminator_steps=1,
                 gate_loss_weight=0.01, tag_gate_loss_weight=0.01, jit_compile=False):
        self.model = model
        self.strategy = strategy
        self.num_languages = int(num_languages)
        self.lambd = model.lambd  # one λ: the variable the reversal layer applies
        if lambd is not None:
            self.lambd.assign(float(lambd))
        self.discriminator_steps = int(discriminator_steps)
        self._adversarial = float(self.lambd.numpy()) > 0 and self.discriminator_steps > 0
        self.gate_loss_weight = float(gate_loss_weight)
        self.tag_gate_loss_weight = float(tag_gate_loss_weight)
        with strategy.scope():
            self.optimizer = LazyAdam(learning_rate, name="main_adam")
            self.d_optimizer = keras.optimizers.Adam(d_learning_rate, name="discriminator_adam")
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                # float16 gradients underflow without loss scaling (bf16 does not need it).
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
                self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
            self.main_variables = model.main_variables()
            self.d_variables = model.discriminator_variables()
            # Each optimizer is built on exactly its own variables: neither can
            # touch the other's, and a Keras 3 optimizer insists on this anyway.
            self.optimizer.build(self.main_variables)
            self.d_optimizer.build(self.d_variables)
        self._jit_compile = jit_compile
        self._step = tf.function(self._distributed_step, jit_compile=jit_compile,
                                 reduce_retracing=True)

    def trace_for(self, element_spec):
        """Compiles the step once for ``element_spec`` (the distributed
        iterator's, with unknown batch and length dimensions) instead of
        tracing per batch shape. With per-shape traces, which graph runs a
        step depends on the shapes the process has met before, so a resumed
        process runs other graphs than an uninterrupted one; under bfloat16
        their different op fusions round differently and the runs drift
        apart. One graph for every shape makes a resumed run exact."""
        self._step = tf.function(self._distributed_step, jit_compile=self._jit_compile,
                                 input_signature=[element_spec])

    @property
    def adversarial(self):
        """Whether the step holds the adversarial term (λ > 0 when built)."""
        return self._adversarial

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
        if logits.shape.rank == 3:  # per-token MLP discriminator
            targets = losses.broadcast_rows(language, mask)
            unit_mask = mask
        else:
            targets, unit_mask = language, tf.ones_like(language, tf.bool)
        loss = losses.per_language_mean(losses.cross_entropy(logits, targets), unit_mask,
                                        language, self.num_languages)
        correct, count = losses.correct_and_count(logits, targets, unit_mask)
        return loss, correct, count

    def _discriminator_update(self, batch):
        features, mask = self.model.shared_features(batch, training=True)
        features = tf.stop_gradient(features)
        with tf.GradientTape() as tape:
            logits = self.model.discriminate(features, batch["lengths"], training=True)
            loss, correct, count = self._language_loss(logits, batch, mask)
            scaled = self._scaled(self.d_optimizer, loss)
        grads = tape.gradient(scaled, self.d_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.d_variables))
        return loss, correct, count

    def _main_update(self, labeled, unlabeled):
        model = self.model
        language = labeled["language"]
        labels = labeled[model.label_key]
        logs = {}
        with tf.GradientTape() as tape:
            if self.adversarial:
                outputs = model.call_with_adversary(labeled, unlabeled, training=True)
            else:
                outputs = model(labeled, training=True)
            mask = outputs["mask"]
            unit_language = losses.broadcast_rows(language, mask)
            task = losses.per_language_mean(
                losses.negative_log_likelihood(outputs["log_probs"], labels), mask,
                language, self.num_languages)
            total = task
            logs["task_loss"] = task
            logs["task_correct"], logs["task_count"] = losses.correct_and_count(
                outputs["log_probs"], labels, mask)
            gates = [("gate", outputs["gate_logits"], self.tag_gate_loss_weight)]
            if "private_gate_logits" in outputs:
                gates.append(("private_gate", outputs["private_gate_logits"],
                              self.gate_loss_weight))
            for name, gate_logits, weight in gates:
                if gate_logits.shape[-1] == 1:  # a single expert has nothing to learn
                    continue
                # Source rows' language index equals their expert index: sources
                # come first in the language list, in expert order.
                gate_loss = losses.per_language_mean(
                    losses.cross_entropy(gate_logits, unit_language), mask, language,
                    self.num_languages)
                total += weight * gate_loss
                logs[f"{name}_loss"] = gate_loss
                logs[f"{name}_correct"], _ = losses.correct_and_count(
                    gate_logits, unit_language, mask)
            if self.adversarial:
                adversarial, _, _ = self._language_loss(
                    outputs["adversarial_logits"], unlabeled, outputs["adversarial_mask"])
                # Through the reversal layer: minimising this trains D's input,
                # F_s, to *raise* D's loss, scaled by λ.
                objective = total - tf.cast(self.lambd, total.dtype) * adversarial
                total += adversarial
                logs["adversarial_d_loss"] = adversarial
            else:
                objective = total
            scaled = self._scaled(self.optimizer, total)
        grads = tape.gradient(scaled, self.main_variables)
        self.optimizer.apply_gradients(zip(grads, self.main_variables))
        # What the main update descends, as seen from F_s: task + gate losses
        # - λ·L_D. (``total`` differentiates to the same gradients, the
        # reversal layer flipping and scaling L_D's, but its value adds +L_D.)
        logs["total_loss"] = objective
        return logs

    # -- the step -------------------------------------------------------------

    def _replica_step(self, batch):
        logs = {}
        if self.discriminator_steps:
            d_loss = d_correct = d_count = 0.0
            for d_batch in batch["discriminator"][:self.discriminator_steps]:
                loss, correct, count = self._discriminator_update(d_batch)
                d_loss += loss / self.discriminator_steps
                d_correct += correct
                d_count += count
            logs.update(d_loss=d_loss, d_correct=d_correct, d_count=d_count)
        logs.update(self._main_update(batch["labeled"], batch.get("unlabeled")))
        return logs

    def _distributed_step(self, batch):
        per_replica = self.strategy.run(self._replica_step, args=(batch,))
        # Losses are per-replica shares and counts are partial: both sum.
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    def distribute(self, dataset):
        """Splits every global batch of ``dataset`` into per-replica row slices.

        Every worker builds the same global stream (same seeds) and keeps the
        slices of its own replicas, so N replicas on any number of workers
        see exactly the rows one replica would, and (with the global
        per-language normalisation) take the same step.
        """
        strategy = self.strategy
        if strategy.num_replicas_in_sync == 1:
            return strategy.experimental_distribute_dataset(dataset)

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

    def train_step(self, batch):
        """Runs one iteration on a (distributed) batch; returns global scalars.

        ``task_accuracy``, ``gate_accuracy``, ``private_gate_accuracy`` and
        ``d_accuracy`` are fractions of real units in this iteration.
        """
        raw = self._step(batch)
        logs = {k: v for k, v in raw.items() if not k.endswith(("_correct", "_count"))}
        count = raw["task_count"]
        for name in ("task", "gate", "private_gate"):
            if f"{name}_correct" in raw:
                logs[f"{name}_accuracy"] = raw[f"{name}_correct"] / tf.maximum(count, 1.0)
        if "d_correct" in raw:
            logs["d_accuracy"] = raw["d_correct"] / tf.maximum(raw["d_count"], 1.0)
        logs["lambda"] = tf.identity(self.lambd)  # the value this step applied
        return logs
