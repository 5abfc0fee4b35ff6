"""How every configuration check reports a problem, and the checks they share.

Both YAML files (the main config and the exporter-toolkit web config) and the
tables the main config holds (formats, providers, reasons) are checked with a
Checker: each problem is one ConfigError naming the file, the key path
(`formats[2].match`) and what to do about it. Problems collects them, so that
a check can go on and report every problem it finds, not just the first.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import yaml


class ConfigError(Exception):
    """A problem in a configuration: the file (or "(command line)"), the key
    path and the problem with its fix. One raised for several problems holds
    the others in .more; .every gives them all."""

    def __init__(self, file: str, key: str, problem: str, more: Sequence[ConfigError] = ()) -> None:
        super().__init__(file, key, problem)
        self.file, self.key, self.problem = file, key, problem
        self.more = tuple(more)

    @property
    def every(self) -> tuple[ConfigError, ...]:
        """Each problem on its own."""
        if not self.more:
            return (self,)
        return (ConfigError(self.file, self.key, self.problem), *self.more)

    def __str__(self) -> str:
        return "\n".join(f"{e.file}: {e.key}: {e.problem}" for e in self.every)


class Problems:
    """The problems found so far, for a check that goes on after one."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    @contextmanager
    def gather(self) -> Iterator[None]:
        """Runs a check, keeping the ConfigError it raises instead of passing it on."""
        try:
            yield
        except ConfigError as err:
            self.found.extend(err.every)

    def raise_any(self) -> None:
        raise_all(self.found)


def raise_all(errors: Sequence[ConfigError]) -> None:
    """Raises one ConfigError carrying every one of errors, if there is any."""
    if errors:
        first, *rest = errors
        raise ConfigError(first.file, first.key, first.problem, rest)


def describe(value: Any) -> str:
    """A value as an error message shows it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{value!r} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def child(key: str, name: object) -> str:
    """The path of a key inside the mapping at key ("" is the top level)."""
    return f"{key}.{name}" if key else str(name)


class Checker:
    """Checks the values read from one file; each problem raises a ConfigError
    naming the file and the key path."""

    def __init__(self, file: str = "(config)") -> None:
        self.file = file
        self.directory = os.path.dirname(os.path.abspath(file))  # relative paths in the file start here

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ConfigError(self.file, key, problem)

    def mapping(self, key: str, value: Any, known: Iterable[str] | None, what: str = "settings") -> dict[Any, Any]:
        """A mapping ({} for nothing) whose keys are all in known (None: any key)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key or "(top level)", f"must be a mapping of {what}, got {describe(value)}")
        if known is not None:
            self.known_keys(key, value, known)
        return value

    def known_keys(self, key: str, mapping: dict[Any, Any], known: Iterable[str]) -> None:
        """Names every key of the mapping at key that is not in known, with the closest known one."""
        known = tuple(known)
        unknown = []
        for name in mapping:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                unknown.append(ConfigError(self.file, child(key, name),
                                           f"unknown key{hint}; the known keys are: {', '.join(known)}"))
        raise_all(unknown)

    def items(self, key: str, value: Any, example: str) -> list[Any]:
        """A list ([] for nothing)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"must be a list such as {example}, got {describe(value)}")
        return value

    def text(self, key: str, value: Any, hint: str = "non-empty text") -> str:
        if not isinstance(value, str):
            self.fail(key, f"must be {hint}, got {describe(value)}")
        if not value.strip():
            self.fail(key, f"is empty; give {hint}")
        return value

    def texts(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, f"must be a list of text, got {describe(value)}")
        return [self.text(f"{key}[{i}]", item) for i, item in enumerate(value)]

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {describe(value)}")
        return value

    def number(self, key: str, value: Any, hint: str) -> float:
        # bool is an int in Python; true where a number is wanted is a mistake.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be {hint}, got {describe(value)}")
        return value

    def whole(self, key: str, value: Any, hint: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be {hint}, got {describe(value)}")
        return value

    def choice(self, key: str, value: Any, choices: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
        choices = tuple(choices)
        if aliases and value in aliases:
            return aliases[value]
        if value not in choices:
            self.fail(key, f"got {describe(value)}; must be one of: {', '.join(choices)}")
        return str(value)

    def readable_file(self, key: str, value: Any) -> str:
        """The absolute path of a file that can be read; relative to the config's directory."""
        name = self.text(key, value)
        full = os.path.join(self.directory, name)
        try:
            with open(full, "rb"):
                pass
        except OSError as err:
            relative = "" if os.path.isabs(name) else " (relative paths are read from the config file's directory)"
            self.fail(key, f"cannot read {full}: {err.strerror}{relative}; fix the path or the file's permissions")
        return full


def load_yaml(file: str, how_given: str, problems: Problems) -> Any:
    """The data of a YAML file. ConfigError if it cannot be read or is not
    YAML; a key given twice in one mapping (YAML would keep the last
    silently) is added to problems. how_given says where the file's name
    came from, for the fix."""
    import yaml  # here: a run without a config file (the --once one-liner) need not load it

    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(file, "(file)", f"cannot read it: {err.strerror}; check {how_given}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(file, "(file)", "is not UTF-8 text; save it as UTF-8 YAML") from err
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        problems.found.extend(
            ConfigError(file, key, f"is given twice (lines {first} and {again}); keep one "
                        "(YAML would silently use the last)")
            for key, first, again in _repeated_keys(root, "", set())
        )
        return loader.construct_document(root)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(file, "(file)", f"is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from err
    finally:
        loader.dispose()


def _repeated_keys(node: yaml.Node, where: str, seen_nodes: set[int]) -> Iterator[tuple[str, int, int]]:
    """(key path, first line, repeated line) of each key given twice in a mapping."""
    import yaml
    if id(node) in seen_nodes:  # an alias: checked where it was defined (and no loops)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            here = child(where, name)
            line = key_node.start_mark.line + 1
            if name in lines:
                yield here, lines[name], line
            else:
                lines[name] = line
            yield from _repeated_keys(value_node, here, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _repeated_keys(item, f"{where}[{i}]", seen_nodes)
