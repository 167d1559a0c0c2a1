"""``cai image build [--template NAME] [--offline]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_subcommand, add_subcommands
from containai.domain.validation import validate_template_name

if TYPE_CHECKING:
    import argparse

NAME = "image"
HELP = "build images from templates"
DESCRIPTION = "Build images from templates."


def arguments(p: argparse.ArgumentParser) -> None:
    sub = add_subcommands(p, "image_command")
    q = add_subcommand(
        sub,
        "build",
        help="build containai:<template>",
        description="Build containai:<template> from a template plus cai's "
        "system layer. Without a usable base image, bootstrap one offline.",
    )
    q.add_argument(
        "--template",
        metavar="NAME",
        help="template to build (default: config template, 'default')",
    )
    q.add_argument(
        "--offline",
        action="store_true",
        help="bootstrap the base image with debootstrap from the apt mirror",
    )


def run(args: argparse.Namespace) -> int:
    app = App(args)
    settings = app.settings(app.workspace().path if args.template is None else None)
    template = args.template or str(settings.value("template"))
    validate_template_name(template)
    images = app.images(settings)
    ref = images.build(template, offline=args.offline)
    app.out.info(f"built {ref.tag} (template hash {ref.template_hash})")
    gateway = images.ensure_gateway()  # the egress gateway every workspace uses
    app.out.info(f"gateway image {gateway}")
    return 0
