"""The CA bundle a user names is PEM certificates and nothing else (SPEC section 14).

``image.ca_bundle`` is read on the host and copied into images and containers, so a
path to ``/etc/shadow`` or a private key must never get through: only the certificate
blocks of the file are kept (re-encoded), and a file with none, with any other PEM block
(a key), or that is not text is refused. Pure: the caller reads the file.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from containai.domain.errors import UsageError

_BLOCK: Final = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL
)
_BEGIN: Final = re.compile(rb"-----BEGIN ")


def certificates(data: bytes, source: str) -> bytes:
    """The certificate blocks of ``data`` as a clean PEM bundle; ``UsageError`` (exit 2)
    naming ``source`` when the file is anything but PEM certificates."""
    refuse = f"CA bundle {source} (config image.ca_bundle) is not a file of PEM certificates"
    fix = "; point image.ca_bundle at a certificate bundle or unset it"
    if b"\0" in data:
        raise UsageError(f"{refuse} (binary data){fix}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{refuse} (not text){fix}") from None
    out: list[bytes] = []
    for match in _BLOCK.finditer(data):
        kind, body, end = match.group(1), match.group(2), match.group(3)
        if kind != b"CERTIFICATE" or end != kind:
            what = kind.decode("ascii", "replace").lower()
            raise UsageError(f"{refuse} (it holds a '{what}' block, not only certificates){fix}")
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{refuse} (a certificate block is not base64){fix}") from None
        if not der or der[0] != 0x30:
            raise UsageError(f"{refuse} (a certificate block is not DER){fix}")
        b64 = base64.encodebytes(der).replace(b"\n", b"")
        lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
        out.append(
            b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
        )
    if len(_BEGIN.findall(data)) != len(out):
        raise UsageError(f"{refuse} (an unterminated PEM block){fix}")
    if not out:
        raise UsageError(f"{refuse} (no certificate in it){fix}")
    return b"".join(out)
