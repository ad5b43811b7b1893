"""What every man-tf command shares: a quiet TensorFlow start-up, ``--help``
that shows the command's flags (and config fields), and flag or config
mistakes reported as one line with exit status 2."""

import contextlib
import logging as std_logging
import os
import re
import sys
import tempfile

from absl import app, flags, logging

from man_tf.data.errors import DataError
from man_tf.settings import ConfigError
from man_tf.training.workdir import WorkdirMismatch

FLAGS = flags.FLAGS
HELP_ARGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")

# C++ lines TensorFlow prints while it loads on a machine without a GPU driver
# or with oneDNN, before (or regardless of) TF_CPP_MIN_LOG_LEVEL, and while a
# command works (oneDNN's DT_HALF/DT_INT64 notice at the first op, TF Text's
# SentencePiece when a tokenizer is built). Each says nothing is wrong; they
# are hidden unless --verbosity>=1. Anything else is passed through.
HARMLESS = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|TF-TRT Warning"
    r"|oneDNN supports DT_\w+ only on platforms with AVX-512"
    r"|precompiled_charsmap is empty. use identity normalization")


# The filter between the process's stderr (file descriptor 2) and the
# terminal: a separate process, so that whatever the command writes just
# before a crash (a C++ check failure, a traceback) still gets through.
_STDERR_FILTER = r"""
import re, sys
hidden = re.compile(sys.argv[1])
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not hidden.search(line.decode("utf-8", "replace")):
        out.write(line)
        out.flush()
"""

@contextlib.contextmanager
def stderr_filtered(hidden=HARMLESS):
    """Passes the process's stderr through a filter process that drops the
    lines ``hidden`` matches; restores it after the block."""
    import subprocess

    sys.stderr.flush()
    saved = os.dup(2)
    child = subprocess.Popen([sys.executable, "-c", _STDERR_FILTER, hidden.pattern],
                             stdin=subprocess.PIPE, stdout=saved, close_fds=True)
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        child.stdin.close()
        child.wait()


class _OwnInfoLines(std_logging.Filter):
    """absl log records below WARNING from man_tf's own modules only
    (TensorFlow logs through absl too: checkpoint sharding times...)."""

    PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def filter(self, record):
        return record.levelno >= std_logging.WARNING or \
            os.path.abspath(record.pathname).startswith(self.PACKAGE + os.sep)


def verbose():
    """``--verbosity=1`` (``-v 1``) or more: TensorFlow's own INFO lines and
    C++ notices are shown too."""
    return FLAGS["verbosity"].present and FLAGS.verbosity >= 1


def quiet_tensorflow_startup():
    """Imports TensorFlow (and finds its devices) with its harmless start-up
    notices hidden. Later C++ INFO lines are hidden unless the user set
    ``TF_CPP_MIN_LOG_LEVEL``. Logical device settings can still be made
    afterwards (the runtime is not started)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules:
        return
    with stderr_filtered():
        import tensorflow as tf
        tf.config.list_physical_devices()


def _config_file_from_argv(argv):
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def config_file_problem(argv):
    """One line for a ``--config`` that cannot be loaded (``None``: it
    loads): no ``--config`` beside ``--config.FIELD`` overrides, a missing
    file, or the error the file raised, at its line in the file."""
    import traceback

    given = _config_file_from_argv(argv)
    if given is None:
        if any(a.startswith("--config.") for a in argv[1:]):
            return "--config.FIELD overrides given without --config=FILE (e.g. " \
                   "--config=configs/conll_ner.py)"
        return None
    path = given.split(":", 1)[0]
    if not os.path.exists(path):
        return f"--config={given}: no such file"
    if os.path.isdir(path):
        return f"--config={given}: is a folder, expected a config file (configs/*.py)"
    from man_tf.config_files import load_config_file

    try:
        load_config_file(given)
    except Exception as e:  # noqa: BLE001  -- a config file can raise anything
        where = given
        if isinstance(e, SyntaxError) and e.lineno:
            where = f"{e.filename or path}:{e.lineno}"
        else:
            frames = [f for f in traceback.extract_tb(e.__traceback__)
                      if os.path.abspath(f.filename) == os.path.abspath(path)]
            if frames:
                where = f"{path}:{frames[-1].lineno}"
        reason = (str(e).strip().splitlines() or [""])[0]
        return f"--config={given}: {where}: {type(e).__name__}: {reason}" if where != given \
            else f"--config={given}: {type(e).__name__}: {reason}"
    return None


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if hasattr(value, "items"):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def help_text(doc, flag_names, argv, config_flag=False):
    """The command's docstring, its own flags with defaults, and for
    ``man-tf-train`` the config's fields with their defaults."""
    lines = [doc.strip(), "", "Flags:"]
    for name in flag_names:
        flag = FLAGS[name]
        default = "required" if name in _required(flag_names) else f"default: {flag.default!r}"
        lines.append(f"  --{name}: {flag.help} ({default})")
    lines.append("  --help: show this help and exit")
    if config_flag:
        from man_tf.config_files import load_config_file

        given = _config_file_from_argv(argv)
        path = given or "configs/conll_ner.py"
        try:
            config = load_config_file(path)
            lines += ["", f"Config fields of {path} (override with --config.FIELD=VALUE):"]
            lines += [f"  {field} = {value!r}" for field, value in _flatten(config)]
        except Exception as e:  # noqa: BLE001  -- help must not fail on a broken config
            lines += ["", f"(config fields of {path} not shown: {e})"]
    return "\n".join(lines)



def _required(flag_names):
    validators = {name for name in flag_names for v in FLAGS[name].validators
                  if "must have a value other than None" in str(getattr(v, "message", ""))}
    return validators


def _closest_field(field, argv):
    """``"; did you mean config.train.steps?"`` for a misspelled field."""
    import difflib

    from man_tf.config_files import load_config_file

    try:
        config = load_config_file(_config_file_from_argv(argv) or "")
    except Exception:  # noqa: BLE001
        return ""
    fields = [f for f, _ in _flatten(config)]
    close = difflib.get_close_matches(field, fields, n=1)
    return f": no such config field; did you mean --config.{close[0]}?" if close else \
        ": no such config field"


def run_command(command, doc, define_flags, main, config_flag=False):
    """Defines the flags, answers ``--help``, parses the rest (a mistake is
    one line on stderr and exit 2) and runs ``main`` under absl."""
    before = set(FLAGS)
    define_flags()
    names = sorted(set(FLAGS) - before)
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        try:
            print(help_text(doc, names, sys.argv, config_flag))
        except BrokenPipeError:  # `--help | head`
            pass
        sys.exit(0)

    def parse(argv):
        problem = config_file_problem(argv) if config_flag else None
        if problem:
            print(f"{command}: error: {problem}", file=sys.stderr)
            sys.exit(2)
        try:
            return FLAGS(argv)
        except Exception as e:  # noqa: BLE001  -- flags and config overrides raise many kinds
            message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            field = None
            unknown = re.search(r"Unknown command line flag '(config\.[^']+)'", message)
            if unknown:
                field = unknown.group(1)[len("config."):]
            elif re.search(r'Did you mean "\w+" instead of "(\w+)"', str(e)):
                # ml_collections' KeyError for a misspelled part of a field:
                # find the override that named it.
                key = re.search(r'Did you mean "\w+" instead of "(\w+)"', str(e)).group(1)
                for arg in argv[1:]:
                    name = arg.split("=", 1)[0]
                    if name.startswith("--config.") and key in name.split("."):
                        field = name[len("--config."):]
            if field and config_flag:
                message = f"--config.{field}" + _closest_field(field, argv)
            print(f"{command}: error: {message} (see {command} --help)", file=sys.stderr)
            sys.exit(2)

    def quiet_main(argv):
        if verbose():
            return main(argv)
        # TensorFlow's Python INFO lines (checkpoint sharding, SavedModel
        # assets and fingerprints) are hidden; its warnings are not.
        std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
        logging.get_absl_logger().addFilter(_OwnInfoLines())
        with stderr_filtered():
            return main(argv)

    quiet_tensorflow_startup()
    app.run(quiet_main, flags_parser=parse)


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_folder(flag, path):
    """One line (:class:`ConfigError`) unless ``path`` is a folder, or can be
    made one, that this process can write in; checked before any work, and
    nothing is created here."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag}={path}: is a file, expected a folder")
    _check_writable(flag, path, _nearest_existing(path))


def check_output_file(flag, path):
    """The same for a file to be written: not a folder, and its folder writable."""
    if os.path.isdir(path):
        raise ConfigError(f"{flag}={path}: is a folder, expected a file name")
    _check_writable(flag, path, _nearest_existing(os.path.dirname(os.path.abspath(path))))


def _check_writable(flag, path, existing):
    if not os.path.isdir(existing):
        raise ConfigError(f"{flag}={path}: {existing} is a file, expected a folder")
    try:  # a real write: permissions, read-only file systems, root squash all show
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise ConfigError(f"{flag}={path}: cannot write in {existing} "
                          f"({e.strerror or type(e).__name__})") from None


def _log_to_files(message):
    """The error line into the run's log file(s) only: stderr gets it once,
    from :func:`user_errors`."""
    record = std_logging.LogRecord("absl", std_logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.get_absl_logger().handlers:
        if isinstance(handler, std_logging.FileHandler):
            handler.handle(record)


@contextlib.contextmanager
def user_errors(command):
    """Turns errors in the user's input or config into one clear line and exit 2."""
    try:
        yield
    except (ConfigError, DataError, FileExistsError, FloatingPointError,
            WorkdirMismatch) as e:
        _log_to_files(str(e))
        print(f"{command}: error: {e}", file=sys.stderr)
        sys.exit(2)
