"""Corpus download: resumable, checksummed, extracted atomically (`ttskit download`).

The archive is fetched into `<archive>.part`, continuing with an HTTP Range request when a
previous attempt was cut off (a server that ignores ranges makes it start over); it is renamed
only once its SHA-256 matches. Extraction goes into a hidden folder that is renamed into place
when complete, and a marker file says the corpus is whole, so an interrupted run never leaves
something that looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ttskit.errors import TtskitError

CHUNK = 1 << 20
COMPLETE_MARKER = ".ttskit-complete"


class DownloadError(TtskitError, RuntimeError):
    """A download or extraction that failed; the message names the URL or file and the problem."""


@dataclass(frozen=True)
class CorpusSource:
    url: str
    sha256: str
    folder: str  # the top-level folder inside the archive
    layout: str  # the `ttskit preprocess` adapter that reads it
    licence: str


CORPORA: dict[str, CorpusSource] = {
    # Checksums as published with torchaudio's dataset loaders.
    "ljspeech": CorpusSource("https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
                             "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5", "LJSpeech-1.1",
                             "ljspeech", "public domain; 2.6 GB, 13,100 clips, 24 h"),
    "vctk": CorpusSource("https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
                         "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c", "VCTK-Corpus-0.92",
                         "vctk", "CC BY 4.0; 11 GB, 110 speakers, 44 h"),
}

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def fetch(url: str, target: Path, on_progress: Progress | None = None, timeout: float = 60.0) -> None:
    """Download `url` to `target`, resuming `target.part` when present."""
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    except ValueError:
        raise DownloadError(f"{url!r}: not a URL (expected http://, https:// or file://...)") from None
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file already holds everything
            part.rename(target)
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({getattr(err, 'reason', err)})") from None
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # a fresh download, or a server that ignored the range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as handle:
            done = have
            try:
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
            except OSError as err:
                raise DownloadError(f"{url}: connection lost after {done} bytes ({err}); run the same command "
                                    "again to continue") from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: got {done} of {total} bytes; run the same command again to continue")
    part.rename(target)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract(archive: Path, destination: Path, folder: str) -> Path:
    """Unpack `archive` (tar.* or zip) so that `destination/folder` appears only when complete."""
    staging = destination / f".extracting-{folder}"  # ttskit's own: a leftover of a killed run is replaced
    final = destination / folder
    if final.exists():
        raise DownloadError(f"{final} already exists; ttskit does not replace a folder it did not finish "
                            "(move it away and run again)")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _unpack(archive, staging)
        inside = staging / folder
        if not inside.is_dir():
            found = sorted(p.name for p in staging.iterdir())
            raise DownloadError(f"{archive}: expected a top-level folder {folder!r}, found {found}")
        inside.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # refused, failed or done: nothing half-extracted stays
    (final / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
    return final


def _unpack(archive: Path, staging: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise DownloadError(f"{archive}: refuses to extract {name!r} (outside the folder)")
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")  # no absolute paths, links out or devices
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as err:
        raise DownloadError(f"{archive}: cannot be extracted ({err})") from None


def download_corpus(name: str, destination: Path, *, url: str | None = None, sha256: str | None = None,
                    keep_archive: bool = False, on_progress: Progress | None = None) -> Path:
    """Fetch, verify and extract a known corpus; returns its folder (at once if already there)."""
    if name not in CORPORA:
        raise DownloadError(f"unknown corpus {name!r} (choose from {', '.join(CORPORA)})")
    source = CORPORA[name]
    folder = destination / source.folder
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    if folder.exists():  # not ttskit's: never deleted, never replaced (checked before downloading gigabytes)
        raise DownloadError(f"{folder} already exists and was not made by `ttskit download` (no {COMPLETE_MARKER} "
                            f"in it); preprocess it directly, or move it away to download anew. Nothing was changed")
    url = url or source.url
    expected = (sha256 or source.sha256).lower()
    destination.mkdir(parents=True, exist_ok=True)
    archive = destination / url.rstrip("/").rsplit("/", 1)[-1]
    if not archive.is_file():
        fetch(url, archive, on_progress)
    got = sha256_of(archive)
    if got != expected:
        archive.unlink()
        raise DownloadError(f"{archive.name} from {url}: SHA-256 {got}, expected {expected}; the file was "
                            "removed, run again to download it anew")
    folder = extract(archive, destination, source.folder)
    if not keep_archive:
        archive.unlink()
    return folder
