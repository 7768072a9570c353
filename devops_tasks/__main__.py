"""``python -m devops_tasks``: the ``devops`` program."""

from .cli import main

main()
