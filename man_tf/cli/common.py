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
# or with oneDNN, before (or regardless of) TF_CPP_MIN_LOG_LEVEL. Each says
# nothing is wrong. Anything else printed then is passed through.
HARMLESS_STARTUP = re.compile(
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


@contextlib.contextmanager
def harmless_lines_hidden():
    """Captures the process's stderr (file descriptor 2, where TensorFlow's
    C++ code writes) for the block, then passes on every line that is not
    one of :data:`HARMLESS_STARTUP`'s notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not HARMLESS_STARTUP.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def quiet_tensorflow_startup():
    """Imports TensorFlow (and finds its devices) with its harmless start-up
    notices hidden. Later C++ INFO lines are hidden unless the user set
    ``TF_CPP_MIN_LOG_LEVEL``. Logical device settings can still be made
    afterwards (the runtime is not started)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules:
        return
    with harmless_lines_hidden():
        import tensorflow as tf
        tf.config.list_physical_devices()


def _config_file_from_argv(argv):
    for arg in argv[1:]:
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
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

    quiet_tensorflow_startup()
    app.run(main, flags_parser=parse)


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
