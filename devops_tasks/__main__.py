"""``python -m devops_tasks`` and the ``devops`` script: the ``devops`` program."""

import sys

from . import early


def main() -> None:
    """Start what a deploy reads first, then load the program and run it."""
    early.start(sys.argv[1:])
    from .cli import main as run  # noqa: PLC0415 - loaded while those reads run

    run()


if __name__ == "__main__":
    main()
