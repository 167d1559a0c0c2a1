"""``python -m containai``."""

from containai.cli.hot import entry

entry()
