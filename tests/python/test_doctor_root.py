"""``osml.doctor(root=...)`` reads what ``osml doctor --root`` reads, and refuses what it
refuses (exit 2 there, an exception here) instead of a report of skips."""

import io
import os
import stat
import subprocess
import tarfile

import pytest

import osml

HOSTNAME = "capture-host"


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture()
def capture(tmp_path):
    """A capture archive of a host with a hostname and a meminfo."""
    path = tmp_path / "host.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "proc/sys/kernel/hostname", f"{HOSTNAME}\n".encode())
        _add(tar, "proc/meminfo", b"MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    return path


def _cli(osml_bin, *args):
    return subprocess.run([osml_bin, *map(str, args)], capture_output=True, text=True)


def test_an_archive_is_read_like_the_cli(capture, osml_bin):
    report = osml.doctor(root=capture)
    assert report["host"]["hostname"] == HOSTNAME
    assert report["host"]["memory"]["total_bytes"] == 16384000 * 1024
    assert report["host"]["root"] == os.fspath(capture)
    cli = _cli(osml_bin, "doctor", "--json", "--root", capture)
    assert cli.returncode in (0, 1), cli.stderr


def test_a_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        osml.doctor(root=tmp_path / "absent")


def test_a_file_that_is_not_a_capture_raises_osml_error(osml_bin):
    with pytest.raises(osml.OsmlError, match="not a capture"):
        osml.doctor(root="/etc/passwd")
    assert _cli(osml_bin, "doctor", "--root", "/etc/passwd").returncode == 2


def test_a_fifo_raises_not_a_directory_without_blocking(tmp_path):
    fifo = tmp_path / "host.tar.gz"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(NotADirectoryError, match="FIFO"):
        osml.doctor(root=fifo)


def test_an_archive_past_the_member_limit_raises_osml_error(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "proc/meminfo", bytes(17 << 20))
    with pytest.raises(osml.OsmlError, match="16 MiB"):
        osml.doctor(root=path)
