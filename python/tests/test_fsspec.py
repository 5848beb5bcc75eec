"""tarn-fsspec: tarn:// URIs read by pandas, polars, pyarrow and DuckDB through fsspec."""

import http.server
import json
import threading
import uuid

import duckdb
import fsspec
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tarn_fsspec
from compare import assert_frame, assert_table
from conftest import DATASET, READS, URL, WRITE_TOKEN, cli_table, get, tarn


def tarn_path(read: dict, **extra) -> str:
    """`tarn://ds:v2?start=..&end=..&columns=..` for a read."""
    options = {k: v for k, v in read.items() if k != "uri"}
    options.update(extra)
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return read["uri"] + (f"?{query}" if query else "")


def storage_options(read: dict, **extra) -> dict:
    options = {k: v for k, v in read.items() if k != "uri"}
    options.update(extra)
    return options


def test_registered_with_fsspec():
    assert fsspec.get_filesystem_class("tarn") is tarn_fsspec.TarnFileSystem
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="fsspec.specs") if ep.name == "tarn"]
    assert [ep.value for ep in eps] == ["tarn_fsspec:TarnFileSystem"]
    assert eps[0].load() is tarn_fsspec.TarnFileSystem


def test_pandas_read_parquet_tarn_uri(read, ref):
    # The range and columns as the path's query and as storage options: same rows.
    assert_frame(pd.read_parquet(tarn_path(read)), ref)
    assert_frame(pd.read_parquet(read["uri"], storage_options=storage_options(read)), ref)


def test_pandas_read_csv_tarn_uri(read, ref):
    df = pd.read_csv(read["uri"], storage_options=storage_options(read, format="csv"))
    assert_frame(df, ref, text=True)


def test_pandas_read_json_lines_tarn_uri(read, ref):
    df = pd.read_json(read["uri"], lines=True, dtype=False,
                      storage_options=storage_options(read, format="jsonl"))
    assert set(df.columns) <= set(ref.column_names)  # JSON lines leave out null values
    assert_frame(df.reindex(columns=ref.column_names), ref, text=True)


def test_polars_through_fsspec(read, ref):
    with fsspec.open(read["uri"], **storage_options(read)) as f:
        df = pl.read_parquet(f)
    assert df.columns == ref.column_names
    assert df.to_arrow().equals(pl.from_arrow(ref).to_arrow())
    with fsspec.open(read["uri"], **storage_options(read)) as f:
        lazy = pl.scan_parquet(f).collect()
    assert lazy.equals(df)
    with fsspec.open(read["uri"], **storage_options(read, format="arrow")) as f:
        assert pl.read_ipc_stream(f).equals(df)


def test_polars_native_paths_do_not_know_tarn():
    # polars resolves paths in Rust (object_store) and never asks fsspec: documented.
    with pytest.raises(FileNotFoundError):
        pl.read_parquet(READS["version"]["uri"])


def test_pyarrow_through_fsspec(read, ref, fs):
    assert_table(pq.read_table(tarn_path(read), filesystem=fs), ref)
    with fs.open(tarn_path(read, format="arrow")) as f:
        assert_table(pa.ipc.open_stream(f).read_all(), ref)


def test_open_gives_a_seekable_file_naming_its_version(fs):
    with fs.open(READS["version"]["uri"]) as f:
        assert f.seekable()
        assert f.read(4) == b"PAR1"
        f.seek(-4, 2)
        assert f.read(4) == b"PAR1"
        assert f.tarn_version == f"tarn://{DATASET}@main:v2"
        assert f.etag
        size = f.size
    # Bigger than the spool's memory: spilled to a temporary file, same bytes.
    small = fsspec.filesystem("tarn", spool_max_memory=1024, skip_instance_cache=True)
    with small.open(READS["version"]["uri"]) as f:
        assert f._rolled  # on disk
        assert len(f.read()) == size
    assert fs.size(READS["version"]["uri"]) == size
    assert fs.cat_file(READS["version"]["uri"], start=0, end=4) == b"PAR1"


def test_duckdb_register_filesystem(read, ref, fs):
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.register_filesystem(fs)
    df = con.sql(f"select * from read_parquet('{tarn_path(read)}')").df()
    assert list(df.columns) == ref.column_names
    assert len(df) == ref.num_rows
    expected = ref.to_pandas()
    for c in ref.column_names:
        pd.testing.assert_series_equal(df[c], expected[c], check_dtype=False, check_exact=True)
    csv = con.sql(f"select * from read_csv('{tarn_path(read, format='csv')}')").df()
    assert list(csv.columns) == ref.column_names and len(csv) == ref.num_rows


def test_ls_find_info_exists(fs):
    listed = json.loads(tarn("ls", "weather", "--json").stdout)
    names = sorted(d["name"] for d in listed)
    assert len(names) >= 2
    # ls is one level, as on every fsspec filesystem; find lists every dataset.
    children = sorted({"/".join(n.split("/")[:2]) for n in names})
    assert fs.ls("tarn://weather", detail=False) == children
    assert fs.find("tarn://weather") == names
    entries = {e["name"]: e for e in fs.ls("tarn://weather/payerne", detail=True)}
    assert entries[DATASET]["type"] == "file"
    assert entries[DATASET]["rows"] == next(d["rows"] for d in listed if d["name"] == DATASET)
    assert all(fs.isdir(c) for c in children)
    assert fs.isfile(DATASET)
    everything = sorted(d["name"] for d in json.loads(tarn("ls", "--json").stdout))
    assert fs.find("") == everything
    info = fs.info(READS["version"]["uri"])
    cli = json.loads(tarn("info", READS["version"]["uri"], "--json").stdout)
    assert info["type"] == "file" and info["version"] == 2
    assert info["rows"] == cli["rows"] and info["schema"] == cli["schema"]
    assert fs.exists(READS["version"]["uri"]) and fs.exists("weather/payerne")
    assert not fs.exists("tarn://weather/nowhere")
    assert not fs.exists(f"tarn://{DATASET}:v999")


def test_missing_dataset_is_file_not_found_with_the_server_message(fs):
    uri = "tarn://weather/nowhere/1min"
    _, _, body = get(f"{URL}/api/v1/data?uri={uri}")
    message = json.loads(body)["error"]
    with pytest.raises(FileNotFoundError) as err:
        fs.open(uri)
    assert str(err.value) == message
    assert isinstance(err.value, tarn_fsspec.TarnError) and err.value.status == 404
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pd.read_csv(uri, storage_options={"format": "csv"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fs.info(uri)
    with pytest.raises(FileNotFoundError):  # pyarrow puts its own message in
        pd.read_parquet(uri)


def test_refusals_are_permission_errors_with_the_server_message():
    anonymous = fsspec.filesystem("tarn", token="", skip_instance_cache=True)
    with pytest.raises(PermissionError, match="token") as err:
        anonymous.open(READS["version"]["uri"])
    assert err.value.status == 401
    with pytest.raises(PermissionError):
        anonymous.ls("weather")


def test_bad_input_is_an_os_error_with_the_server_message(fs):
    with pytest.raises(OSError) as err:
        fs.open(f"tarn://{DATASET}?start=not-a-time")
    assert not isinstance(err.value, (FileNotFoundError, PermissionError))
    assert err.value.status == 400
    assert "not-a-time" in str(err.value)
    with pytest.raises(ValueError, match="unknown option"):
        fs.open(f"tarn://{DATASET}?frmat=csv")


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):
        type(self).seen.append(dict(self.headers))
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_tarn_job_header(monkeypatch):
    # Only this check talks to a recording server: tarn serve does not echo headers.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TARN_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("TARN_TOKEN", "secret-1")
        monkeypatch.delenv("TARN_JOB", raising=False)
        fs = fsspec.filesystem("tarn", skip_instance_cache=True)
        fs.ls("")
        monkeypatch.setenv("TARN_JOB", "nightly-42")
        fs.ls("")
        fs.find("")
    finally:
        server.shutdown()
        thread.join(10)
    first, second, third = _Recorder.seen[-3:]
    assert "Tarn-Job" not in first
    assert second["Tarn-Job"] == "nightly-42" and third["Tarn-Job"] == "nightly-42"
    assert all(h["Authorization"] == "Bearer secret-1" for h in (first, second, third))


def test_tarn_job_is_accepted_by_the_server(monkeypatch, fs, tmp_path):
    monkeypatch.setenv("TARN_JOB", "job-" + uuid.uuid4().hex[:8])
    assert_table(pq.read_table(READS["range"]["uri"] + "?start=2016-06-10T12:00:00Z"
                               "&end=2016-06-11T00:00:00Z", filesystem=fs),
                 cli_table(READS["range"], tmp_path))


def test_write_through_the_queue(tmp_path):
    fs = fsspec.filesystem("tarn", token=WRITE_TOKEN, skip_instance_cache=True)
    name = f"scratch/py_{uuid.uuid4().hex[:8]}"
    table = pa.table({
        "ts": pa.array([1_000_000_000 * i for i in range(5)], pa.timestamp("ns", "UTC")),
        "value": pa.array([0.5, 1.5, 2.5, 3.5, 4.5]),
    })
    key = uuid.uuid4().hex
    with fs.open(f"tarn://{name}?ordered_on=ts", "wb", idempotency_key=key) as f:
        pq.write_table(table, f)
    assert f.version == 1 and f.request_id
    got = pq.read_table(f"tarn://{name}:v1", filesystem=fs)
    assert got.column_names == table.column_names
    assert got.column("value").to_pylist() == table.column("value").to_pylist()
    cli = cli_table({"uri": f"tarn://{name}:v1"}, tmp_path)
    assert got.equals(cli)
    # The same idempotency key again: the same request, applied once.
    with fs.open(f"tarn://{name}?ordered_on=ts", "wb", idempotency_key=key) as f2:
        pq.write_table(table, f2)
    assert f2.request_id == f.request_id and f2.version == 1
    assert fs.info(f"tarn://{name}")["version"] == 1
    # A read token may not write.
    reader = fsspec.filesystem("tarn", skip_instance_cache=True)
    with pytest.raises(PermissionError):
        with reader.open(f"tarn://{name}?ordered_on=ts", "wb") as f3:
            pq.write_table(table, f3)
    with pytest.raises(NotImplementedError, match="rm"):
        fs.rm(f"tarn://{name}")
    with pytest.raises(NotImplementedError, match="append"):
        fs.open(f"tarn://{name}", "ab")
