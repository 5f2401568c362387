"""osml's `.npy` header verdicts against numpy's own, on mutated headers.

For every header: when osml opens the file, numpy must load it too, with the same dtype and
length; when numpy refuses it, osml must refuse it (exit 1, never a crash). osml may refuse
more than numpy (float, big-endian or 2-D arrays are not token arrays), but never less.
"""

import json
import struct
import warnings

import numpy as np
import pytest

BASE = "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }"

HEADERS = [
    BASE,
    "{'descr': '<f4', 'descr': '<u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 'descr': '<i2'}",
    "{'shape': (3,), 'descr': '<u2', 'fortran_order': False}",
    '{"descr": "<u2", "fortran_order": False, "shape": (3,)}',
    "{'descr': '<' 'u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '\\x3cu2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': 'uint16', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': 'H', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '=u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '|u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '>u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': 'u', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u3', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '\u00e9u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': b'<u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': True, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': 0, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': None, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': false, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': 3}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': [3]}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': ((3),)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3.0,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (-3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (+3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (0x3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (0b11,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (0_3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (03,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3_,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3L,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (True,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3, 1)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': ()}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
    "{'descr': '<u2', 'fortran_order': False}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)} # trailing comment",
    "{'descr': '<u2', # a comment\n 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)} junk",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)",
    "['descr', '<u2']",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,),,}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,,)}",
    "  {'descr': '<u2', 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), 1: 2}",
    "{'descr': '<u2' 'fortran_order': False, 'shape': (3,)}",
    "{'descr': '<u2', 'fortran_order': False, 'shape': (3,)}" + " " * 10_001,
]


def npy_bytes(header: str, major: int, data: bytes) -> bytes:
    encoded = header.encode("utf8" if major == 3 else "latin1", errors="replace") + b"\n"
    length = struct.pack("<H" if major == 1 else "<I", len(encoded))
    return b"\x93NUMPY" + bytes([major, 0]) + length + encoded + data


def numpy_verdict(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.load(path, allow_pickle=False)
        return a
    except Exception:  # numpy's refusals are ValueError, TypeError, SyntaxError, EOFError...
        return None


@pytest.mark.parametrize("major", [1, 3])
@pytest.mark.parametrize("header", HEADERS)
def test_osml_never_reads_what_numpy_refuses(osml, tmp_path, header, major):
    if major == 1 and any(ord(c) > 255 for c in header):
        pytest.skip("not latin-1: a version 1.0 header cannot hold it")
    data = bytes(range(6))
    path = tmp_path / "x.npy"
    path.write_bytes(npy_bytes(header, major, data))
    theirs = numpy_verdict(path)
    proc = osml("data", "inspect", path, "--json", check=False)
    assert proc.returncode in (0, 1), f"exit {proc.returncode}: {proc.stderr}"
    if proc.returncode == 0:
        ours = json.loads(proc.stdout)
        assert theirs is not None, f"osml read a header numpy refuses: {header!r}"
        assert ours["dtype"] == str(theirs.dtype), header
        assert ours["tokens"] == theirs.size, header
    else:
        assert "npy" in proc.stderr
