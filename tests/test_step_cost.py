"""benchmarks/step_cost.py's FLOP count, checked against the traced graph.

The count per part (``iteration_flops``) is written from the layers'
shapes; here it must equal the matmul and convolution FLOPs of the graph
TensorFlow actually traces for one training step (forward, gradients and
updates, loop bodies times their trip counts, pruned to what runs) on
small real batches.
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import step_cost
from man_tf.layers.bilstm import RowPacking
from man_tf.layers.char_cnn import CharCNN
from man_tf.models import building
from man_tf.tasks import TASKS
from tests.helpers import adversarial, first_batch, sample_corpora, tiny_config


def _step_graph(trainer, batch):
    return tf.function(trainer.train_step).get_concrete_function(batch).graph


@pytest.mark.parametrize("overrides, discriminator_batch", [
    (dict(lstm_layers=2), "own"),
    (dict(lstm_layers=1, use_private=False, predictor_layers=2, discriminator_layers=2), "own"),
    (dict(lstm_layers=2), "main"),  # D learns in the main update: no pass of its own
])
def test_iteration_count_equals_the_traced_training_step(overrides, discriminator_batch):
    labeled, unlabeled, vocabularies = sample_corpora()
    # No char-CNN (its distinct-word gather), no packed rows and every
    # token through the head (as under XLA): shapes a traced graph can read.
    # The count is linear in the positions each part runs, which the real
    # run takes from the packing (test_packed_positions_are_row_packings).
    overrides = dict(overrides, use_char_cnn=False, lstm_implementation="loop")
    config = tiny_config(**overrides)
    config.train.jit_compile = True
    words, chars, tags = vocabularies
    keras.utils.set_random_seed(0)
    model = building.build_model(config, TASKS["tagging"], words.size, len(chars), tags.tags,
                                 len(labeled))
    trainer = adversarial(model, discriminator_batch=discriminator_batch)
    batch = first_batch(labeled, unlabeled,
                        discriminator_steps=0 if discriminator_batch == "main" else 1)
    by_name = {}
    traced = step_cost.graph_flops(_step_graph(trainer, batch), by_name)
    shapes = step_cost.batch_shapes(batch, config.model.char_kernel_sizes, packed=False,
                                    real_units=False)
    counted = step_cost.iteration_flops(shapes, config.model, model.backbone.input_dim,
                                        len(labeled), len(vocabularies[2].tags),
                                        len(unlabeled))
    traced_parts = {}
    for name, flops in by_name.items():
        part = step_cost.part_of(name)
        traced_parts[part] = traced_parts.get(part, 0) + flops
    assert traced_parts == dict(counted)
    assert traced == sum(counted.values())


def test_char_cnn_count_equals_the_traced_graph():
    """The char-CNN of one length group: frozen characters (no input
    gradient), trained convolutions and projection."""
    layer = CharCNN(30, embedding_dim=6, filters=5, kernel_sizes=(2, 3, 4), output_dim=7)
    layer.build((None, None, None))
    words = tf.constant(np.random.default_rng(0).integers(1, 30, size=(9, 6)), tf.int32)
    lengths = tf.constant([6, 5, 4, 3, 2, 6, 6, 1, 4])

    @tf.function
    def step(words, lengths):
        with tf.GradientTape() as tape:
            h = layer.projection(layer.pooling(layer.embedding(words), lengths))
            loss = tf.reduce_sum(h * h)
        return tape.gradient(loss, layer.trainable_variables)

    traced = step_cost.graph_flops(step.get_concrete_function(words, lengths).graph)
    model = types.SimpleNamespace(char_embedding_dim=6, char_filters=5, char_kernel_sizes=(2, 3, 4),
                               char_output_dim=7)
    conv, projection = step_cost.char_cnn([(9, 6)], model)
    assert traced == 2 * conv + 3 * projection


def test_adjoint_matmuls_are_counted_by_their_real_sizes():
    """TensorFlow's own flops registry reads BatchMatMul's shapes without
    its adjoint flags; this count must not."""
    a, b = tf.zeros([2, 3, 8]), tf.zeros([2, 3, 32])

    @tf.function
    def product(a, b):
        return tf.matmul(a, b, adjoint_a=True)  # [2, 8, 32] from k = 3

    assert step_cost.graph_flops(product.get_concrete_function(a, b).graph) == 2 * 2 * 8 * 3 * 32


def test_char_groups_cut_each_group_to_its_longest_word():
    chars = np.zeros([1, 4, 20], np.int32)
    for position, length in enumerate([3, 3, 10, 15]):
        chars[0, position, :length] = np.arange(1, length + 1)
    groups = step_cost.char_groups(chars, np.array([4]), (3, 4, 5))
    # "abc" twice is one distinct word; groups <= 8, <= 12, longer.
    assert groups == [(1, 5), (1, 10), (1, 15)]


@pytest.mark.parametrize("lengths", [[7, 0, 3, 2, 7, 1, 5, 4], [3], [0, 0], [5, 5, 5, 1, 1, 1, 1, 1]])
def test_packed_positions_are_row_packings(lengths):
    packing = RowPacking(tf.constant(lengths), 9)
    assert step_cost.packed_positions(np.array(lengths)) == \
        int(packing.rows) * int(packing.capacity)


def test_timings_added_to_a_run_become_its_mean():
    # --timing_only: a run's s/iteration and its rates follow the mean of its timings.
    run = {"seconds_per_iteration": 0.4, "gflops_achieved": 100.0,
           "useful_gflops_achieved": 80.0, "share_of_peak": {"bfloat16": 0.25}}
    step_cost.add_run_seconds(run, 0.3)
    step_cost.add_run_seconds(run, 0.5)
    assert run["seconds_per_iteration_runs"] == [0.4, 0.3, 0.5]
    assert run["seconds_per_iteration"] == pytest.approx(0.4)
    step_cost.add_run_seconds(run, 0.2)
    assert run["seconds_per_iteration"] == pytest.approx(0.35)
    assert run["gflops_achieved"] == pytest.approx(40.0 / 0.35)
    assert run["useful_gflops_achieved"] == pytest.approx(32.0 / 0.35)
    assert run["share_of_peak"]["bfloat16"] == pytest.approx(0.1 / 0.35)
    assert step_cost.seconds_text(run) == "0.350 ± 0.129 (4)"
    assert step_cost.seconds_text({"seconds_per_iteration": 0.41}) == "0.410"
