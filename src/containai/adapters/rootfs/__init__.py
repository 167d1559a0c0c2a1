"""Offline base image: bootstrap a minimal Debian root file system and import it.

Used when the configured base image (``image.base``) is neither present in the
engine nor pullable (an air-gapped machine, SPEC section 8). ``debootstrap``
fetches packages from the package mirror the machine's own apt configuration
names, so no registry and no hard-coded mirror host are involved.

* ``apt_sources.py`` the machine's apt configuration: the mirror, the image's sources.list
* ``plan.py``        what runs and what is written, as data: argv, slim-image files
* ``bootstrap.py``   carrying it out: debootstrap, trimming, ``tar | docker import``
"""

from __future__ import annotations

from containai.adapters.rootfs.apt_sources import apt_mirror
from containai.adapters.rootfs.bootstrap import bootstrap_base_image, debootstrap_available

__all__ = [
    "apt_mirror",
    "bootstrap_base_image",
    "debootstrap_available",
]
