"""The ``NAME`` and ``--weights`` arguments that ``predict``, ``export`` and ``serve`` share.

The weight tags in ``--weights``'s help come from the registry, read only when the help is
printed: building the parser for any command (``cache ls`` with a broken site registry, say)
never reads it.
"""

from __future__ import annotations

import argparse

from paddlehub_cls.errors import RegistryError

TAGS = "{registry_tags}"


def registry_tags() -> str:
    """Every weight tag of the registry (packaged and site files), sorted, comma-separated."""
    from paddlehub_cls.registry import load_registry

    reg = load_registry()
    return ", ".join(sorted({tag for name in reg.names() for tag in reg.get(name).weights}))


class RegistryHelpFormatter(argparse.HelpFormatter):
    """Fills :data:`TAGS` in an argument's help with :func:`registry_tags` when help is printed."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if TAGS in text:
            try:
                tags = registry_tags()
            except RegistryError as exc:  # the help still prints, and says why the list is missing
                tags = f"the registry could not be read: {exc}"
            text = text.replace(TAGS, tags)
        return text


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    name_help: str = "model name, e.g. ResNet50 (or ResNet50.paddleclas)",
    local: str = "a local checkpoint file",
) -> None:
    """Add ``NAME`` and ``--weights TAG_OR_PATH`` to a subcommand's parser.

    Args:
        parser: the subcommand's parser; its help formatter becomes :class:`RegistryHelpFormatter`.
        name_help: help of ``NAME``.
        local: what a path given to ``--weights`` may be.
    """
    parser.formatter_class = RegistryHelpFormatter
    parser.add_argument("name", metavar="NAME", help=name_help)
    parser.add_argument(
        "--weights",
        default=None,
        metavar="TAG_OR_PATH",
        help=(
            f"a weight variant of NAME (`paddlehub-cls info NAME` lists its own; registered tags: {TAGS}) "
            f"or {local}; a registered tag wins over a file of the same name"
        ),
    )
