"""Loading experiment config files (``configs/*.py``) by path.

Config files are not a package on ``sys.path`` (absl's ``config_flags``
loads them by path too), so a config that extends another, a benchmark or a
test loads it with :func:`load_config_file`.
"""

import importlib.util
import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config_file(name_or_path):
    """``"conll_ner"`` (a file in the project's ``configs/``) or a path ->
    its ``get_config()``; ``"path.py:arg"`` calls ``get_config("arg")``, as
    ``--config=path.py:arg`` does. A relative ``data.root`` is made absolute
    as the commands do (relative to the file's project)."""
    name_or_path, _, arg = name_or_path.partition(":")
    path = name_or_path if name_or_path.endswith(".py") else \
        os.path.join(CONFIG_DIR, f"{name_or_path}.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such config file")
    spec = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    if "data" in config:
        from man_tf.settings import resolve_data_root
        resolve_data_root(config, path)  # as man-tf-train does: from any directory
    return config


def in_language_config(config_file, arg):
    """An in-language check of ``config_file`` (``configs/conll_in_language.py``,
    ``configs/amazon_in_language.py``): ``arg`` = ``"<lang>[,<inputs>]"``;
    ``<lang>`` is the one labeled source and, under the name ``<lang>_self``
    (MAN-MoE needs a target distinct from its sources), the target reading
    the same files. A language the encoder reads as one text stays so."""
    import ml_collections

    language, _, inputs = arg.partition(",")
    config = load_config_file(f"{config_file}:{inputs or 'encoder'}")
    if language not in config.data.languages:
        raise ValueError(f"in-language config: {language!r} is not one of "
                         f"{list(config.data.languages)}")
    files = config.data.languages[language].to_dict()
    target = f"{language}_self"
    config.data.languages = ml_collections.ConfigDict({language: files, target: files})
    config.data.embeddings = ml_collections.ConfigDict({language: "", target: ""})
    config.sources = (language,)
    config.target = target
    if language in config.model.encoder_joined_languages:
        config.model.encoder_joined_languages = (*config.model.encoder_joined_languages,
                                                 target)
    return config
