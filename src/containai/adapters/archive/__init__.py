"""Tar streams for ``cai export`` and ``cai import`` (DESIGN decision 1).

``docker cp`` streams a tar out of and into any container, running or stopped
(the engine mounts its volumes for the copy), so no helper image is pulled.
cai re-packs those streams in Python, one module per job:

* ``docker_cp.py``  ``DockerArchive``: export, import and host import through
  ``docker cp``, atomic archive files, the journal of exports in progress (for gc)
* ``reading.py``    open an archive whatever its compression, walk its members once,
  strict about damage; each member as the domain's ``Member``
* ``repacking.py``  the tars cai writes: an export from the engine's stream, an
  import below its staging directory, a host import's items
* ``streams.py``    the byte streams under them: counting, forward-only, threaded gzip

The names below are what the composition root and the tests use.
"""

from __future__ import annotations

from containai.adapters.archive.docker_cp import GZIP_MAGIC, DockerArchive, ExportStats
from containai.adapters.archive.reading import member_of, open_archive, read_members
from containai.adapters.archive.repacking import TarItem, repack
from containai.adapters.archive.streams import CHUNK, GZIP_LEVEL, Progress

__all__ = [
    "CHUNK",
    "GZIP_LEVEL",
    "GZIP_MAGIC",
    "DockerArchive",
    "ExportStats",
    "Progress",
    "TarItem",
    "member_of",
    "open_archive",
    "read_members",
    "repack",
]
