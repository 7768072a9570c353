"""The ``devops`` program: the task namespace without any tasks.py, as fabric builds ``fab``.

Configuration files are ``devops.yaml`` (system ``/etc/``, user ``~/.``, and the project's
root, where ``.devops/`` is) and ``-f FILE``; ``DEVOPS_ENV``, ``DEVOPS_JSON``... set the
same settings (:mod:`devops_tasks.program_env`). Everything that can go wrong before a task
runs (a bad flag, an unreadable config file) still answers as the contract says: with
``--json``, one object.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import gc
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from invoke import Collection, Config, Exit, ParseError, Program
from invoke.completion.complete import print_completion_script
from invoke.config import AmbiguousMergeError, merge_dicts
from invoke.exceptions import UnknownFileType
from invoke.parser import Argument, ParserContext
from invoke.util import helpline, yaml

from . import __version__
from .config.store import MAX_CONFIG_BYTES
from .durable import parse_json, read_bounded
from .errors import DevopsError, ErrorCode
from .ids import check_environment
from .output import Output
from .program_env import deprecated_variables, program_settings
from .project import find_project
from .tasks import namespace
from .tasks._command import SHORT_FLAGS, as_failure, reader_gone, tolerate_unencodable_output

__all__ = ["DevopsConfig", "DevopsProgram", "main", "program", "typed_names"]

#: invoke's core flags that mean something here. The others (--dry, --echo, --hide, --pty,
#: --warn-only, --command-timeout, --prompt-for-sudo-password, --write-pyc) would change how
#: the engine's own commands run, or concern a tasks.py this program does not have.
_KEPT_CORE_FLAGS = (
    "complete",
    "config",
    "help",
    "list",
    "list-depth",
    "list-format",
    "print-completion-script",
    "version",
)
#: Config sections that decide how commands run: pinned to invoke's defaults, whatever
#: devops.yaml, -f or DEVOPS_* variables say.
_LIST_FORMATS = ("flat", "nested", "json")
_PINNED_SECTIONS = ("run", "runners", "sudo", "tasks", "timeouts")
#: A word shown back in an error only if it looks like a task or flag name, never a value.
_NAME_LIKE = re.compile(r"-{0,2}[A-Za-z][\w.-]{0,63}")


def _config_file(path: str, parse: Callable[[str], Any]) -> Any:
    """A devops.yaml or devops.json: bounded, UTF-8, a mapping; CONFIG_INVALID naming it."""
    try:
        data = parse(read_bounded(Path(path), MAX_CONFIG_BYTES).decode("utf-8"))
    except NotADirectoryError:
        # HOME (or a directory above the file) is a file: then the file cannot exist.
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
    except RecursionError:
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            f"{path} is nested too deeply to be read as configuration",
            "Fix or remove that file, then run the command again.",
        ) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            f"{path} cannot be read as configuration: {_config_problem(exc)}",
            "Fix or remove that file, then run the command again.",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DevopsError(
            ErrorCode.CONFIG_INVALID,
            f"{path} must hold a mapping of settings, like `devops: {{env: staging}}`",
            "Fix or remove that file, then run the command again.",
        )
    return data


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases: 500 bytes of nested ``*anchor`` references expand to
    billions of nodes ("billion laughs"), and no devops setting needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def _load_yaml_without_aliases(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)


def _config_problem(exc: Exception) -> str:
    """What is wrong, and where; a YAML error's own text would quote the file's lines."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{getattr(exc, 'problem', None) or 'bad YAML'} (line {mark.line + 1})"
    return str(exc)


class DevopsConfig(Config):
    """Invoke's config, read from ``devops.*`` files and ``DEVOPS_`` variables."""

    prefix = "devops"
    env_prefix = "DEVOPS"  # type: ignore[assignment]

    def load_shell_env(self) -> None:
        """Invoke's ``DEVOPS_DEVOPS_*`` variables (deprecated), then ``DEVOPS_<NAME>`` over
        them: the one grammar of :mod:`devops_tasks.program_env`."""
        super().load_shell_env()
        settings = program_settings(os.environ)
        if settings:
            self._set(_env=merge_dicts(copy.deepcopy(self._env), {"devops": settings}))
            self.merge()

    def load_project(self, merge: bool = True) -> None:
        """Data files only: a ``devops.py`` in a cloned project would run as code for
        whoever runs ``devops`` there."""
        suffixes = self._file_suffixes
        self._set(_file_suffixes=tuple(s for s in suffixes if s != "py"))
        try:
            super().load_project(merge)
        finally:
            self._set(_file_suffixes=suffixes)

    def _load_yaml(self, path: os.PathLike[Any]) -> Any:
        return _config_file(os.fspath(path), _load_yaml_without_aliases)

    _load_yml = _load_yaml

    def _load_json(self, path: os.PathLike[Any]) -> Any:
        return _config_file(os.fspath(path), parse_json)


class DevopsProgram(Program):
    """Invoke's ``Program``, keeping the output contract from the first argument on.

    ``--json``, ``--env`` and ``--debug`` also work before the task name; invoke's flags
    that would change how commands run are gone; the project's own ``devops.yaml`` is read.
    """

    def core_args(self) -> list[Argument]:
        kept = [arg for arg in super().core_args() if arg.name in _KEPT_CORE_FLAGS]
        return [
            *kept,
            Argument(
                names=("json", "j"),
                kind=bool,
                default=False,
                help="Print exactly one JSON object on stdout (as the task's --json does).",
            ),
            Argument(
                names=("env", "e"),
                help="Environment for the task (as the task's --env; the task's own wins).",
            ),
            Argument(
                names=("debug", "d"),
                kind=bool,
                default=False,
                help="On failure, also print the traceback (secret values stay masked).",
            ),
        ]

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        tolerate_unencodable_output()
        self.normalize_argv(argv)  # now, so a failure while reading config knows about --json
        super().run(self.argv, exit)

    def create_config(self) -> None:
        """Invoke's config plus the collection's defaults and ``DEVOPS_*`` variables, early:
        ``DEVOPS_JSON=1`` must already count if the command line is bad. A deprecated
        variable is named on stderr (stdout stays one JSON object)."""
        with self._answering():
            for warning in deprecated_variables(os.environ):
                Output().warn(warning)
            super().create_config()
            if self.namespace is not None:
                self.config.load_collection(self.namespace.configuration(), merge=False)
            self.config.load_shell_env()

    def parse_core(self, argv: list[str] | None) -> None:
        """Invoke's, without its debug logging and bytecode switches (``--debug`` is ours)."""
        self.normalize_argv(argv)
        with self._answering(parsing=True):
            self.parse_core_args()
            if self.args.version.value:
                self.print_version()
                raise Exit
            if self.args["print-completion-script"].value:
                print_completion_script(
                    shell=self.args["print-completion-script"].value, names=self.binary_names
                )
                raise Exit

    def parse_collection(self) -> None:
        """Also read ``devops.yaml`` from the project root (invoke looks beside a tasks.py)."""
        super().parse_collection()
        with self._answering():
            root = find_project(self.config.get("devops", {}).get("project_dir")).root
            self.config.set_project_location(str(root))
            self.config.load_project()

    def parse_tasks(self) -> None:
        with self._answering(parsing=True):
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with self._answering(parsing=True):
            if self.args["list-format"].value not in _LIST_FORMATS:
                raise _invalid(
                    "--list-format takes flat, nested or json", "Write e.g. --list-format nested."
                )
            super().parse_cleanup()

    def update_config(self, merge: bool = True) -> None:
        """Flags and ``-f FILE`` into the config; nothing may change how commands run.

        ``--json``, ``--env`` and ``--debug`` before the task become ``devops.*`` (a task's
        own flag still wins) and the words after ``--`` ``devops.remainder`` (secrets.exec).
        The sections in ``_PINNED_SECTIONS`` are set to invoke's defaults above every file
        and variable: a ``run.dry`` from anywhere would make a deploy record a release it
        never made.
        """
        with self._answering():
            # The words after ``--``, one argument each: invoke keeps them only joined by
            # spaces, which loses their quoting, and secrets.exec runs them as given.
            words = self.argv[self.argv.index("--") + 1 :] if "--" in self.argv else []
            devops: dict[str, Any] = {"remainder": words}
            if self.args.env.value is not None:
                devops["env"] = check_environment(self.args.env.value, "--env")
            for name in ("json", "debug"):
                if self.args[name].value:
                    devops[name] = True
            defaults = self.config.global_defaults()
            pinned = {section: defaults[section] for section in _PINNED_SECTIONS}
            self.config.load_overrides({**pinned, "devops": devops}, merge=False)
            runtime = self.args.config.value or os.environ.get("INVOKE_RUNTIME_CONFIG")
            self.config.set_runtime_path(Path(runtime) if runtime else None)
            self.config.load_runtime(merge=False)
            if merge:
                self.config.merge()

    def print_version(self) -> None:
        """devops's version and those of the libraries it runs on, as ``fab --version`` does."""
        from importlib import metadata  # noqa: PLC0415 - 14 ms that only --version needs

        versions = {"devops": __version__}
        versions.update((name, metadata.version(name)) for name in ("invoke", "fabric", "paramiko"))
        if self._asked_for("json"):
            Output(json_mode=True).success(versions)
            return
        for name, version in versions.items():
            print(f"{name if name == 'devops' else name.capitalize()} {version}")

    def list_tasks(self) -> None:
        """``--list``: every task as it is typed; with ``--json``, one object."""
        if self._asked_for("json") or self.list_format == "json":
            self.list_json()
            return
        super().list_tasks()

    def list_flat(self) -> None:
        if self.list_depth:  # invoke's own summary of the collections below that depth
            super().list_flat()
            return
        print(f"{self.task_list_opener()}:\n")
        self.print_columns(self._listing())

    def list_nested(self) -> None:
        """Collections with their tasks below; a collection's default task is the
        collection's own line (``deploy``), never a ``.configured*`` line of its own."""
        pairs = _defaults_folded(self._make_pairs(self.scoped_collection), self.list_root)
        print(f"{self.task_list_opener()}:\n")
        self.print_columns(pairs)

    def list_json(self) -> None:
        """``{"success": true, "tasks": [{"name", "help"}]}``: the tasks as they are typed."""
        tasks = [{"name": name, "help": text} for name, text in self._listing()]
        Output(json_mode=True).success({"tasks": tasks})

    def _listing(self) -> list[tuple[str, str | None]]:
        """(typed name, first line of its help) of each task ``--list NAME`` asks about."""
        prefix = f"{self.list_root}." if self.list_root else ""
        names = typed_names(self.scoped_collection, prefix)
        return [(typed, helpline(self._root[full])) for full, typed in names.items()]

    @property
    def _root(self) -> Collection:
        """The program's collection (invoke types it optional: programs may find one later)."""
        return self.namespace or Collection()

    def no_tasks_given(self) -> None:
        """Help for people; with ``--json``, one object saying which task is missing."""
        if self._asked_for("json"):
            self._fail(_invalid("No task given", "Name one: `devops --list` shows them all."))
        super().no_tasks_given()

    def execute(self) -> None:
        with self._answering():
            super().execute()

    @contextlib.contextmanager
    def _answering(self, parsing: bool = False) -> Iterator[None]:
        """Render any failure of the program itself once, as a task's would be, then exit 1.

        While ``parsing``, a ``ValueError`` is invoke failing to read a flag's value.
        """
        try:
            yield
        except Exit as exit_:
            if exit_.message and exit_.code and self._asked_for("json"):
                # invoke's own complaints (e.g. `--list NAME` of no collection) quote words
                # from the command line: say what failed, never what was typed.
                said = str(exit_.message)
                self._fail(
                    _invalid("--list names no collection of devops", "See `devops --list`.")
                    if said.startswith("Sub-collection")
                    else _invalid("devops refused the command line", _help_fix(None))
                )
            raise
        except BrokenPipeError:
            reader_gone()
            raise Exit(code=1) from None
        except ParseError as exc:
            self._fail(self._argument_error(exc))
        except UnknownFileType:
            self._fail(
                DevopsError(
                    ErrorCode.CONFIG_INVALID,
                    "A -f config file must end in .yaml, .yml or .json",
                    "Name a YAML or JSON file of settings, like devops.yaml.",
                )
            )
        except AmbiguousMergeError:
            self._fail(
                DevopsError(
                    ErrorCode.CONFIG_INVALID,
                    "A devops.yaml file (or -f file) sets a section of settings to a single value",
                    "Make each section a mapping, like `devops: {env: staging}`.",
                )
            )
        except ValueError as exc:
            wrong_kind = _invalid(
                "A flag got a value of the wrong kind (it wants a number)",
                "Run `devops --help` (or `devops --help <task>`) to see what each flag takes.",
            )
            self._fail(wrong_kind if parsing else as_failure(exc))
        except Exception as exc:  # noqa: BLE001 - the contract: never a bare traceback
            self._fail(as_failure(exc))

    def _fail(self, error: DevopsError) -> None:
        Output(json_mode=self._asked_for("json")).failure(error, self._asked_for("debug"))
        raise Exit(code=1)

    def _asked_for(self, flag: str) -> bool:
        """``--json`` / ``--debug`` (or ``-j`` / ``-d``) anywhere before ``--``, or
        ``devops.<flag>`` in the config.

        Checked on the words themselves: the command line may not have parsed at all.
        """
        words = self.argv[1 : self.argv.index("--")] if "--" in self.argv else self.argv[1:]
        short = f"-{SHORT_FLAGS[flag]}"
        if any(w in (f"--{flag}", short) or w.startswith(f"--{flag}=") for w in words):
            return True
        config = getattr(self, "config", None)
        return bool(config is not None and (config.get("devops") or {}).get(flag))

    def _argument_error(self, exc: ParseError) -> DevopsError:
        """invoke's complaint about the command line, never quoting what followed a task.

        Anything typed after a task may be a secret (``devops secrets.set NAME value``), so
        only names the program knows are shown: the task's, and its flags'.
        """
        context: ParserContext | None = exc.context
        task = None if context is None else context.name
        if task is not None:  # as the user typed it: deploy, not deploy.configured
            task = typed_names(self._root).get(task, task)
        text = str(exc)
        needed = re.match(r"Flag <Argument: ([\w-]+)", text)
        if needed and "needed value" in text:
            return _invalid(f"--{needed[1]} needs a value", "Give it one: --flag value.")
        if "did not receive required positional arguments" in text:
            return _invalid(text.replace("'", "").rstrip("!"), _help_fix(task))
        if context is None or task is None:
            word = re.fullmatch(r"No idea what '(.*)' is!", text, re.S)
            if word and _NAME_LIKE.fullmatch(word[1]):
                kind = "flag" if word[1].startswith("-") else "task"
                return _invalid(f"devops has no {kind} {word[1]}", _help_fix(None))
            return _invalid("devops got an unexpected argument (not shown)", _help_fix(None))
        valued = [w.partition("=")[0] for w in self.argv if w.startswith("--") and "=" in w]
        for flag in valued:
            if flag in context.flags and not context.flags[flag].takes_value:
                return _invalid(f"{flag} takes no value", f"Write {flag} alone.")
        takes = [str(a.name).upper() for a in context.positional_args] + [
            f"--{name}" for name, arg in context.args.items() if not arg.positional
        ]
        return _invalid(
            f"{task} got an unexpected argument (not shown: it may be a secret); "
            f"it takes {', '.join(takes)}",
            _help_fix(task),
        )


def typed_names(collection: Collection, prefix: str = "") -> dict[str, str]:
    """Each task's full dotted name -> the name a user types: a collection's default task is
    typed as the collection's own name (``deploy``, never ``deploy.configured``)."""
    found: dict[str, str] = {}
    for name in sorted(collection.tasks, key=lambda name: (name != collection.default, name)):
        default = bool(prefix) and name == collection.default
        found[prefix + name] = prefix[:-1] if default else prefix + name
    for name, child in sorted(collection.collections.items()):
        found.update(typed_names(child, f"{prefix}{name}."))
    return found


def _defaults_folded(
    pairs: list[tuple[str, str | None]], root: str | None
) -> list[tuple[str, str | None]]:
    """invoke's nested listing with each default task's help moved onto its collection's
    line (the nearest line above that is indented less), and its own line gone."""
    folded: list[tuple[str, str | None]] = []
    for name, text in pairs:
        if not name.endswith("*"):
            folded.append((name, text))
            continue
        depth = len(name) - len(name.lstrip())
        above = [i for i, (line, _) in enumerate(folded) if len(line) - len(line.lstrip()) < depth]
        if above:
            folded[above[-1]] = (folded[above[-1]][0], text)
        else:  # the listed collection's own default: `devops --list deploy -F nested`
            folded.insert(0, (str(root), text))
    return folded


def _invalid(message: str, fix: str) -> DevopsError:
    return DevopsError(ErrorCode.INVALID_ARGUMENT, message, fix)


def _help_fix(task: str | None) -> str:
    if task is None:
        return "Run `devops --help` for its flags and tasks, `devops --help <task>` for a task's."
    fix = f"Run `devops --help {task}`: each value goes after its flag (--flag value)."
    if task.startswith("secrets."):
        fix += " A secret value goes on stdin or at the prompt, never on the command line."
    return fix


program = DevopsProgram(
    name="devops",
    binary="devops",
    version=__version__,
    namespace=namespace,
    config_class=DevopsConfig,
)


def main() -> None:
    """Console-script entry point.

    A command lives for seconds: what exists now (modules, classes, the tasks) stays until it
    exits, and a scan adds an object per file. The cycle collector would walk all of it
    hundreds of times and find nothing, about a tenth of an unchanged deploy's time; so what
    exists is frozen and young objects are collected less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    program.run()
