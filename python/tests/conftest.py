"""Fixtures for the interop tests: a real `tarn serve` started by python/run-tests.

Environment (set by run-tests): TARN_BIN (the tarn binary), TARN_LAKE (the demo lake the
server serves), TARN_URL, TARN_TOKEN (scope read:), TARN_WRITE_TOKEN (scope write:).
"""

import io
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REQUIRED = ("TARN_BIN", "TARN_LAKE", "TARN_URL", "TARN_TOKEN", "TARN_WRITE_TOKEN")
missing = [v for v in REQUIRED if not os.environ.get(v)]
if missing:
    raise pytest.UsageError(
        f"run these tests with python/run-tests PATH/TO/tarn (missing: {', '.join(missing)})"
    )

URL = os.environ["TARN_URL"]
TOKEN = os.environ["TARN_TOKEN"]
WRITE_TOKEN = os.environ["TARN_WRITE_TOKEN"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}

DATASET = "weather/payerne/1min"
# The reads every client is checked on: a pinned version, the head, a branch, a range and
# a column subset (in a non-schema order).
READS = {
    "version": dict(uri=f"tarn://{DATASET}:v2"),
    "head": dict(uri=f"tarn://{DATASET}"),
    "branch": dict(uri=f"tarn://{DATASET}@review"),
    "range": dict(
        uri=f"tarn://{DATASET}:v2", start="2016-06-10T12:00:00Z", end="2016-06-11T00:00:00Z"
    ),
    "columns": dict(
        uri=f"tarn://{DATASET}", start="2016-06-15", end="2016-06-16", columns="temp_air_c,ts"
    ),
}


def tarn(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the tarn CLI on the served lake."""
    return subprocess.run(
        [os.environ["TARN_BIN"], "--lake", os.environ["TARN_LAKE"], *args],
        check=check,
        capture_output=True,
        timeout=120,
    )


def cli_args(read: dict) -> list:
    args = ["read", read["uri"]]
    for opt in ("start", "end", "columns"):
        if opt in read:
            args += [f"--{opt}", read[opt]]
    return args


def cli_text(read: dict, fmt: str) -> str:
    """What `tarn read ... --format FMT` prints."""
    return tarn(*cli_args(read), "--format", fmt).stdout.decode()


def cli_table(read: dict, tmp_path) -> pa.Table:
    """The rows of `tarn read ... --format parquet --output FILE`, as an Arrow table."""
    out = tmp_path / "cli.parquet"
    tarn(*cli_args(read), "--format", "parquet", "--output", str(out))
    return pq.read_table(out)


def data_url(read: dict, fmt=None) -> str:
    params = dict(read)
    if fmt:
        params["format"] = fmt
    return f"{URL}/api/v1/data?" + urllib.parse.urlencode(params, safe=":/@,")


def get(url: str, headers=None):
    """(status, headers, body) of a GET with urllib; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers if headers is not None else AUTH)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def error_of(body: bytes) -> str:
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    assert doc["error"], doc
    return doc["error"]


@pytest.fixture(params=sorted(READS))
def read(request):
    return READS[request.param]


@pytest.fixture
def ref(read, tmp_path) -> pa.Table:
    table = cli_table(read, tmp_path)
    assert table.num_rows > 0, "every checked read has rows"
    return table


@pytest.fixture
def fs():
    import fsspec
    import tarn_fsspec  # noqa: F401  (registers tarn://)

    return fsspec.filesystem("tarn", skip_instance_cache=True)


def bytes_io(b: bytes) -> io.BytesIO:
    return io.BytesIO(b)
