"""``cai image build [--template NAME] [--offline]`` and ``cai template list``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.domain.validation import validate_template_name

if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    app = App(args)
    if args.command == "template":
        return _template_list(app)
    settings = app.settings(app.workspace().path if args.template is None else None)
    template = args.template or str(settings.value("template"))
    validate_template_name(template)
    images = app.images(settings)
    ref = images.build(template, offline=args.offline)
    app.out.info(f"built {ref.tag} (template hash {ref.template_hash})")
    gateway = images.ensure_gateway()  # the egress gateway every workspace uses
    app.out.info(f"gateway image {gateway}")
    return 0


def _template_list(app: App) -> int:
    settings = app.settings(None)
    images = app.images(settings)
    rows = images.templates()
    if app.arg("json"):
        app.out.json(
            {
                "templates": [
                    {
                        "name": t.name,
                        "builtin": t.builtin,
                        "path": str(t.path),
                        "image": images.tag(t.name),
                    }
                    for t in rows
                ]
            }
        )
        return 0
    width = max((len(t.name) for t in rows), default=4)
    for t in rows:
        kind = "built-in" if t.builtin else "user"
        app.out.line(f"{t.name:<{width}}  {kind:<8}  {t.path}")
    return 0
