"""``python -m containai``."""

from containai.cli.main import entry

entry()
