"""Downloads that are checked, resumable and never leave a half-written file under the final name.

``download(url, dest, ...)`` streams into ``<dest>.part`` and renames it to ``dest`` only once every byte arrived
and the checksums (md5 and/or sha256, when given) and the expected size match. An interrupted transfer keeps its
``.part`` file: the next call asks the server for the rest (HTTP ``Range: bytes=<n>-``) and appends when the server
answers ``206 Partial Content``; a server that ignores ranges (``200``) sends the whole file again and the ``.part``
file is restarted from zero. A completed download whose checksum does not match is deleted (the bytes are wrong, not
missing). ``file_digest`` hashes a local file the same way, for ``verify``.
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.errors import UserError

CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _expected_total(resp, offset: int) -> int | None:
    """The full file size the server announces: Content-Range's total for a 206, Content-Length for a 200."""
    if resp.status == 206:
        total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(url: str, dest: Path, md5: str | None = None, how_to_avoid: str = "", sha256: str | None = None,
             size: int | None = None) -> dict[str, Any]:
    """Fetch ``url`` into ``dest`` (resuming ``<dest>.part`` when present) and check it. Returns the provenance
    record: url, md5, sha256, bytes and whether the md5 was verified against a published one."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    avoid = f"; {how_to_avoid}" if how_to_avoid else ""
    received = offset
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            if resp.status != 206:          # the server sent the whole file: start over
                offset = received = 0
            total = _expected_total(resp, offset)
            with part.open("ab" if offset else "wb") as out, \
                    tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=f"download {dest.name}",
                         leave=False) as bar:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise UserError(f"could not download {url} (HTTP {exc.code} {exc.reason}){avoid}") from exc
        total = None                    # 416: the .part file already holds every byte; check it below
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets and IncompleteRead
        if received == 0:
            part.unlink(missing_ok=True)
        kept = f"; the {received:,} bytes received are kept in {part} and the next try resumes" if received else ""
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"could not download {url} ({reason}){kept}{avoid}") from exc
    if total is not None and received < total:
        raise UserError(f"{url}: download incomplete ({received:,} of {total:,} bytes, kept in {part}); run the "
                        f"same command again to resume{avoid}")
    if size is not None and received != size:   # complete as the server sees it, yet not the published file
        part.unlink()
        raise UserError(f"{url}: {received:,} bytes downloaded, the published size is {size:,} (a truncated or "
                        f"changed file){avoid}")
    digests = {"md5": file_digest(part, "md5"), "sha256": file_digest(part, "sha256")}
    for algorithm, published in (("md5", md5), ("sha256", sha256)):
        if published and digests[algorithm] != published:
            part.unlink()
            raise UserError(f"{url}: {algorithm} {digests[algorithm]} of the download does not match the published "
                            f"{published} (a truncated or changed file){avoid}")
    part.rename(dest)
    return {"url": url, "md5": digests["md5"], "md5_verified": bool(md5), "sha256": digests["sha256"],
            "bytes": received}
