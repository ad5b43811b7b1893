import keras
import numpy as np
import pytest
import tensorflow as tf

from man_tf.data import conll, pipeline
from man_tf.data.vocab import CharVocabulary, TagVocabulary, WordVocabulary
from man_tf.training import losses
from man_tf.training.optimizers import LazyAdam, applied_step_size, step_size
from man_tf.training.adversarial import AdversarialModel, distribute_stream
from tests.conftest import conll_file
from tests.helpers import (NO_DROPOUT, adversarial, first_batch, fit_batch, fit_steps,
                           sample_corpora, snapshot, tiny_model)


@pytest.fixture(scope="module")
def data():
    return sample_corpora()


def make_trainer(model, **kwargs):
    return adversarial(model, num_languages=4, **kwargs)


def test_the_step_is_keras_train_step_run_by_fit():
    assert AdversarialModel.train_step is not keras.Model.train_step
    assert issubclass(AdversarialModel, keras.Model)


def changed(before, variables):
    return [not np.array_equal(b, a) for b, a in zip(before, snapshot(variables))]


def test_discriminator_update_touches_only_d(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies)
    trainer = make_trainer(model)
    batch = first_batch(labeled, unlabeled)
    main_before, d_before = snapshot(trainer.main_variables), snapshot(trainer.d_variables)
    trainer.discriminator_update(batch["discriminator"][0])
    assert not any(changed(main_before, trainer.main_variables))
    assert all(changed(d_before, trainer.d_variables))


def test_main_update_leaves_d_unchanged(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies)
    trainer = make_trainer(model)
    batch = first_batch(labeled, unlabeled)
    main_before, d_before = snapshot(trainer.main_variables), snapshot(trainer.d_variables)
    trainer.main_update(batch["labeled"], batch["unlabeled"])
    assert not any(changed(d_before, trainer.d_variables))
    moved = changed(main_before, trainer.main_variables)
    assert sum(moved) >= len(moved) - 1  # the unused char <pad> row may not move


def test_the_two_optimizers_own_disjoint_variables(data):
    _, _, vocabularies = data
    trainer = make_trainer(tiny_model(vocabularies))
    main = {id(v) for v in trainer.main_variables}
    d = {id(v) for v in trainer.d_variables}
    assert main and d and not main & d
    assert len(main | d) == len(trainer.man_moe.trainable_variables)


def test_frozen_embeddings_never_change(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, fix_embeddings=True)
    # Pretrained vectors for some rows: with fix_embeddings the whole table stays.
    model.backbone.load_word_vectors(np.ones([3, model.backbone.word_dim], np.float32),
                                     [2, 3, 4])
    trainer = make_trainer(model)
    before = model.backbone.word_embedding.embeddings.numpy().copy()
    fit_steps(trainer, pipeline.training_stream(labeled, unlabeled, 4, 0), 3)
    np.testing.assert_array_equal(model.backbone.word_embedding.embeddings.numpy(), before)
    assert all(v is not model.backbone.word_embedding.embeddings for v in trainer.main_variables)


def test_reversal_sends_minus_lambda_gradient_to_shared_encoder(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, **NO_DROPOUT)
    batch = first_batch(labeled, unlabeled)["unlabeled"]
    shared = model.backbone.shared_encoder.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        features, mask = model.shared_features(batch)
        reversed_loss = tf.reduce_sum(model.discriminate(features, batch["lengths"], reverse=True))
        plain_loss = tf.reduce_sum(model.discriminate(features, batch["lengths"]))
    for r, p in zip(tape.gradient(reversed_loss, shared), tape.gradient(plain_loss, shared)):
        np.testing.assert_allclose(r.numpy(), -0.002 * p.numpy(), rtol=1e-4, atol=1e-9)


def test_lambda_lives_in_one_place_and_a_step_logs_the_value_it_applied(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, **NO_DROPOUT)
    model.build_all()
    trainer = make_trainer(model, lambd=0.01)  # assigns the model's λ variable
    assert trainer.lambd is model.lambd and float(model.lambd.numpy()) == pytest.approx(0.01)
    batch = first_batch(labeled, unlabeled)["unlabeled"]
    shared = model.backbone.shared_encoder.trainable_variables

    def reversed_over_plain():
        with tf.GradientTape(persistent=True) as tape:
            features, _ = model.shared_features(batch)
            reversed_loss = tf.reduce_sum(model.discriminate(features, batch["lengths"],
                                                             reverse=True))
            plain_loss = tf.reduce_sum(model.discriminate(features, batch["lengths"]))
        r, p = tape.gradient(reversed_loss, shared)[0], tape.gradient(plain_loss, shared)[0]
        return float(tf.reduce_sum(r * p) / tf.reduce_sum(p * p))

    assert reversed_over_plain() == pytest.approx(-0.01, rel=1e-4)
    # A schedule assigns λ between steps: the reversal applies the new value
    # (no retrace) and the step logs it.
    trainer.lambd.assign(0.05)
    assert reversed_over_plain() == pytest.approx(-0.05, rel=1e-4)
    logs = fit_steps(trainer, pipeline.training_stream(labeled, unlabeled, 8, seed=0), 1)[0]
    assert float(logs["lambda"]) == pytest.approx(0.05)
    # λ is a setting, not learned: not in the model's checkpoint keys.
    from man_tf.training.checkpoints import model_variables
    assert all(v is not model.lambd for v in model_variables(model).values())
    # Without an explicit λ the trainer keeps the model's (its config's).
    other = tiny_model(vocabularies, seed=1, **NO_DROPOUT)
    other.build_all()
    assert float(make_trainer(other).lambd.numpy()) == pytest.approx(0.002)


def test_gate_loss_targets_are_source_ids_in_source_order(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, **NO_DROPOUT)
    trainer = make_trainer(model, lambd=0.0)
    batch = first_batch(labeled, unlabeled)["labeled"]
    out = model(batch)
    mask = out["mask"]
    language = batch["language"].numpy()
    logits = out["gate_logits"].numpy()
    expected = 0.0
    for lang in range(3):  # sources en, es, nl are languages / experts 0, 1, 2
        rows = language == lang
        token_logits = logits[rows][mask.numpy()[rows]]
        log_softmax = token_logits - np.log(np.exp(token_logits).sum(-1, keepdims=True))
        expected += -log_softmax[:, lang].mean()
    logs = trainer.main_update(batch, None)
    np.testing.assert_allclose(float(logs["gate_loss"]), expected, rtol=1e-5)


@pytest.mark.parametrize("output_layer", ["softmax", "crf"])
def test_masked_positions_never_affect_the_loss(data, output_layer):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, output_layer=output_layer, **NO_DROPOUT)
    batch = first_batch(labeled, unlabeled)["labeled"]
    mask = tf.sequence_mask(batch["lengths"], tf.shape(batch["words"])[1])
    garbage = dict(batch, tags=tf.where(mask, batch["tags"], 3),
                   words=tf.where(mask, batch["words"], 9))

    def task_loss(b):
        out = model(b)
        return losses.per_language_mean(
            model.head.unit_losses(out, b["tags"]), out["mask"],
            b["language"], 4)

    np.testing.assert_allclose(task_loss(batch).numpy(), task_loss(garbage).numpy(), rtol=1e-6)


def real_conll_corpora(count=64):
    """Real CoNLL sentences: en/es/nl labeled (sources), de unlabeled (target)."""
    files = {"en": "eng.testa", "es": "esp.testa", "nl": "ned.testa", "de": "deu.testa"}
    sentences = {lang: conll.read_conll(conll_file(name), labeled=lang != "de")[:count]
                 for lang, name in files.items()}
    words = WordVocabulary.build(sentences)
    chars = CharVocabulary.build([s for v in sentences.values() for s in v])
    tags = TagVocabulary.build([s for lang in ("en", "es", "nl") for s in sentences[lang]])
    labeled = [pipeline.encode(sentences[lang], lang, i, words, chars, tags)
               for i, lang in enumerate(("en", "es", "nl"))]
    unlabeled = [pipeline.encode(sentences[lang], lang, i, words, chars)
                 for i, lang in enumerate(("en", "es", "nl", "de"))]
    return labeled, unlabeled, (words, chars, tags)


def test_fit_under_two_mirrored_replicas_gives_the_weights_of_one_on_real_conll():
    labeled, unlabeled, vocabularies = real_conll_corpora()
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
        with strategy.scope():
            model = tiny_model(vocabularies, seed=3, **NO_DROPOUT)
            trainer = make_trainer(model)
        assert strategy.num_replicas_in_sync in (1, 2)
        stream = pipeline.training_stream(labeled, unlabeled, 4, seed=0)
        logs = fit_steps(trainer, distribute_stream(strategy, stream), 3)
        results.append((snapshot(model.variables), logs))
    (one, logs_one), (two, logs_two) = results
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    for step_one, step_two in zip(logs_one, logs_two):
        for key in ("task_loss", "d_loss", "gate_loss", "adversarial_d_loss", "task_accuracy"):
            np.testing.assert_allclose(step_one[key], step_two[key], rtol=1e-4)


def test_tiny_training_run_on_real_conll_lowers_task_loss():
    sentences = {"en": conll.read_conll(conll_file("eng.testa"))[:300],
                 "es": conll.read_conll(conll_file("esp.testa"))[:300],
                 "de": conll.read_conll(conll_file("deu.testa"), labeled=False)[:300]}
    words = WordVocabulary.build(sentences)
    chars = CharVocabulary.build([s for v in sentences.values() for s in v])
    tags = TagVocabulary.build(sentences["en"] + sentences["es"])
    labeled = [pipeline.encode(sentences[lang], lang, i, words, chars, tags)
               for i, lang in enumerate(["en", "es"])]
    unlabeled = [pipeline.encode(sentences[lang], lang, i, words, chars)
                 for i, lang in enumerate(["en", "es", "de"])]
    model = tiny_model((words, chars, tags), num_sources=2, word_dim=32, char_embedding_dim=16,
                       char_filters=16, char_output_dim=16, shared_hidden=32,
                       private_hidden=32, expert_hidden=32, discriminator_filters=16,
                       discriminator_hidden=32, lstm_layers=2)
    trainer = adversarial(model, num_languages=3)
    stream = pipeline.training_stream(labeled, unlabeled, 16, seed=0)
    history = [logs["task_loss"] for logs in fit_steps(trainer, stream, 60)]
    assert np.mean(history[-10:]) < 0.6 * np.mean(history[:5]), history


def test_lazy_adam_equals_adam_when_every_row_is_touched():
    dense_var = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
    lazy_var = tf.Variable(dense_var.numpy())
    dense, lazy = tf.keras.optimizers.Adam(0.1), LazyAdam(0.1)
    dense.build([dense_var])
    lazy.build([lazy_var])
    for step in range(3):
        values = tf.constant(np.random.RandomState(step).randn(5, 3), tf.float32)
        rows = tf.constant([0, 1, 2, 3, 1])  # row 1 twice: summed
        dense_grad = tf.math.unsorted_segment_sum(values, rows, 4)
        dense.apply_gradients([(dense_grad, dense_var)])
        lazy.apply_gradients([(tf.IndexedSlices(values, rows, tf.constant([4, 3])), lazy_var)])
    np.testing.assert_allclose(lazy_var.numpy(), dense_var.numpy(), rtol=1e-5)


def test_lazy_adam_leaves_untouched_rows_alone():
    var = tf.Variable(tf.ones([4, 2]))
    lazy = LazyAdam(0.1)
    lazy.build([var])
    lazy.apply_gradients([(tf.IndexedSlices(tf.ones([1, 2]), tf.constant([2]),
                                            tf.constant([4, 2])), var)])
    np.testing.assert_array_equal(var.numpy()[[0, 1, 3]], 1.0)
    assert (var.numpy()[2] < 1.0).all()


@pytest.mark.parametrize("schedule, middle", [("constant", 2e-3), ("linear", 1e-3),
                                               ("cosine", 1e-3)])
def test_step_size_schedules_decay_to_zero_by_the_last_step(schedule, middle):
    rate = step_size(2e-3, schedule, 100)
    dense, sparse = tf.Variable(tf.zeros([2])), tf.Variable(tf.zeros([3, 2]))
    optimizer = LazyAdam(rate)
    optimizer.build([dense, sparse])
    applied = []
    for _ in range(101):
        before = dense.numpy().copy(), sparse.numpy().copy()
        optimizer.apply_gradients([(tf.ones([2]), dense), (tf.IndexedSlices(
            tf.ones([1, 2]), tf.constant([1]), tf.constant([3, 2])), sparse)])
        applied.append(applied_step_size(rate, optimizer))  # update 1..101's rate
        # A constant gradient makes Adam's step exactly the step size, on the
        # dense and the row-sparse path alike: the schedule is what is applied.
        np.testing.assert_allclose(before[0] - dense.numpy(), applied[-1], rtol=1e-3, atol=2e-8)
        np.testing.assert_allclose(before[1][1] - sparse.numpy()[1], applied[-1], rtol=1e-3,
                                   atol=2e-8)
    assert applied[0] == pytest.approx(2e-3)
    assert applied[50] == pytest.approx(middle, rel=1e-5)
    assert applied[100] == pytest.approx(2e-3 if schedule == "constant" else 0.0, abs=1e-12)
    if schedule != "constant":  # never rising; cosine above the line before the middle
        assert all(a >= b for a, b in zip(applied, applied[1:]))
        assert (applied[25] > 1.6e-3) == (schedule == "cosine")  # line: 1.5e-3
    with pytest.raises(ValueError, match="expected one of"):
        step_size(2e-3, "step", 100)


def test_per_token_mlp_discriminator_trains(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, discriminator="mlp")
    trainer = make_trainer(model)
    d_before = snapshot(trainer.d_variables)
    logs = fit_batch(trainer, first_batch(labeled, unlabeled))
    assert np.isfinite(float(logs["adversarial_d_loss"]))
    assert 0.0 <= float(logs["d_accuracy"]) <= 1.0
    assert all(changed(d_before, trainer.d_variables))


def test_mixed_float16_uses_loss_scaling_and_trains(data):
    import keras

    labeled, unlabeled, vocabularies = data
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_model(vocabularies)
    trainer = make_trainer(model)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    out = model(first_batch(labeled, unlabeled)["labeled"])
    # Gates and log-probabilities stay float32 under a float16 policy.
    assert out["log_probs"].dtype == tf.float32 and out["gate_logits"].dtype == tf.float32
    before = snapshot(trainer.main_variables)
    logs = fit_batch(trainer, first_batch(labeled, unlabeled))
    assert np.isfinite(float(logs["total_loss"]))
    assert any(changed(before, trainer.main_variables))


def test_main_batch_discriminator_learns_in_the_main_update(data):
    """discriminator_batch="main": one backward pass gives D the descent of its
    loss on the adversarial term's batch (as a D update on those F_s features
    would) while F_s gets the reversed gradient; the stream has no D batches."""
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, **NO_DROPOUT)
    trainer = AdversarialModel(model, 4, discriminator_batch="main")
    # Step size 1 for D, 0 for the rest: D's new weights = old - its gradient.
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(1.0))
    stream = pipeline.training_stream(labeled, unlabeled, 4, seed=0,
                                      discriminator_steps=trainer.own_discriminator_batches)
    batch = next(iter(stream))
    assert batch["discriminator"] == ()
    u = batch["unlabeled"]
    with tf.GradientTape() as tape:
        features, mask = model.shared_features(u, training=True)
        logits = model.discriminate(tf.stop_gradient(features), u["lengths"], training=True)
        expected_loss, _, _ = trainer._language_loss(logits, u, mask)
    expected = [v.numpy() - g.numpy() for v, g in
                zip(trainer.d_variables, tape.gradient(expected_loss, trainer.d_variables))]
    main_before = snapshot(trainer.main_variables)
    logs = fit_batch(trainer, batch)
    for want, got in zip(expected, snapshot(trainer.d_variables)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)
    assert not any(changed(main_before, trainer.main_variables))  # step size 0
    assert float(logs["d_loss"]) == pytest.approx(float(expected_loss), rel=1e-4)
    assert 0 <= float(logs["d_accuracy"]) <= 1
    assert float(logs["adversarial_d_loss"]) == pytest.approx(float(expected_loss), rel=1e-4)


def test_main_batch_discriminator_trains_d_at_lambda_zero_and_refuses_k_above_one(data):
    labeled, unlabeled, vocabularies = data
    model = tiny_model(vocabularies, lambd=0.0)
    trainer = make_trainer(model, discriminator_batch="main")
    assert not trainer.adversarial and trainer.joint_discriminator
    shared = model.backbone.shared_encoder.trainable_variables
    d_before, shared_before = snapshot(trainer.d_variables), snapshot(shared)
    logs = fit_batch(trainer, first_batch(labeled, unlabeled, discriminator_steps=0))
    assert all(changed(d_before, trainer.d_variables))  # D learns (to monitor F_s)
    assert np.isfinite(float(logs["d_loss"])) and "adversarial_d_loss" not in logs
    assert any(changed(shared_before, shared))  # by the task loss alone
    with pytest.raises(ValueError, match="discriminator_steps=2"):
        make_trainer(tiny_model(vocabularies), discriminator_steps=2, discriminator_batch="main")
