"""`ttskit download` against a local HTTP server serving a tiny LJSpeech-style archive."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import tarfile
import threading

import pytest
from typer.testing import CliRunner

from ttskit.cli import app
from ttskit.data.corpora import read_corpus
from ttskit.data.download import COMPLETE_MARKER, DownloadError, download_corpus

runner = CliRunner()


class Server:
    """Serves one archive; honours Range requests unless told not to; records what was asked."""

    def __init__(self, payload: bytes, ranges: bool = True) -> None:
        self.payload, self.ranges, self.requests = payload, ranges, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked = self.headers.get("Range")
                server.requests.append(asked)
                start = int(asked.split("=")[1].split("-")[0]) if asked and server.ranges else 0
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/LJSpeech-1.1.tar.bz2"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, mini_corpus):
    """LJSpeech-1.1/{metadata.csv, wavs/} with three real clips, as a .tar.bz2."""
    root = tmp_path_factory.mktemp("archive")
    folder = root / "LJSpeech-1.1"
    (folder / "wavs").mkdir(parents=True)
    lines = (mini_corpus / "metadata.csv").read_text().splitlines()[:3]
    for line in lines:
        name = line.split("|")[0] + ".flac"
        shutil.copy(mini_corpus / "wavs" / name, folder / "wavs" / name)
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    path = root / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(path, "w:bz2") as bundle:
        bundle.add(folder, arcname="LJSpeech-1.1")
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def test_download_verifies_extracts_and_is_readable(archive, tmp_path):
    data, digest = archive
    server = Server(data)
    try:
        result = runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path), "--url", server.url,
                                     "--sha256", digest])
        assert result.exit_code == 0, result.output
        folder = tmp_path / "LJSpeech-1.1"
        assert (folder / COMPLETE_MARKER).is_file() and "ttskit preprocess ljspeech" in result.stderr
        assert len(read_corpus("ljspeech", folder)) == 3
        assert not (tmp_path / "LJSpeech-1.1.tar.bz2").exists()  # archive removed unless --keep-archive
        again = runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path), "--url", server.url,
                                    "--sha256", digest])
        assert again.exit_code == 0 and len(server.requests) == 1  # already there: nothing fetched
        kept = tmp_path / "kept"
        result = runner.invoke(app, ["download", "ljspeech", "-o", str(kept), "--url", server.url, "--sha256", digest,
                                     "--keep-archive"])
        assert result.exit_code == 0 and (kept / "LJSpeech-1.1.tar.bz2").read_bytes() == data
    finally:
        server.close()


@pytest.mark.parametrize("ranges", [True, False])
def test_a_broken_download_resumes(archive, tmp_path, ranges):
    data, digest = archive
    server = Server(data, ranges=ranges)
    try:
        half = len(data) // 2
        (tmp_path / "LJSpeech-1.1.tar.bz2.part").write_bytes(data[:half])  # what a cut connection leaves
        folder = download_corpus("ljspeech", tmp_path, url=server.url, sha256=digest)
        assert server.requests == [f"bytes={half}-"]
        assert len(read_corpus("ljspeech", folder)) == 3  # whole either way: appended, or started over
    finally:
        server.close()


def test_a_wrong_checksum_leaves_nothing_that_looks_done(archive, tmp_path):
    data, _ = archive
    server = Server(data)
    try:
        with pytest.raises(DownloadError, match="SHA-256"):
            download_corpus("ljspeech", tmp_path, url=server.url, sha256="0" * 64)
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        result = runner.invoke(app, ["download", "timit", "-o", str(tmp_path)])
        assert result.exit_code == 2 and "unknown corpus" in result.stderr
        result = runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path), "--url",
                                     server.url.replace("LJSpeech", "missing")])
        assert result.exit_code == 2 and "SHA-256" in result.stderr  # the server's 200 for any path
    finally:
        server.close()
    result = runner.invoke(app, ["download", "ljspeech", "-o", str(tmp_path), "--url", server.url])
    assert result.exit_code == 2 and "cannot connect" in result.stderr
