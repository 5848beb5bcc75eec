"""The data endpoints read by pandas, pyarrow, polars and DuckDB with no tarn code at all.

Every read is compared with what `tarn read` gives for the same URI, range and columns.
"""

import io
import json

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from compare import assert_frame, assert_table, csv_frame
from conftest import AUTH, DATASET, READS, URL, cli_text, data_url, error_of, get


def test_pandas_read_parquet_over_http(read, ref):
    # pandas' own HTTP client (urllib): storage_options become request headers.
    df = pd.read_parquet(data_url(read), storage_options=AUTH)
    assert_frame(df, ref)


def test_pyarrow_parquet_bytes(read, ref):
    status, headers, body = get(data_url(read, "parquet"))
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "application/vnd.apache.parquet"
    assert body[:4] == b"PAR1" and body[-4:] == b"PAR1"
    assert_table(pq.read_table(io.BytesIO(body)), ref)


def test_default_format_is_parquet(ref):
    read = READS["range"]
    _, _, default = get(data_url(read))
    _, _, parquet = get(data_url(read, "parquet"))
    assert default[:4] == b"PAR1"
    assert pq.read_table(io.BytesIO(default)).equals(pq.read_table(io.BytesIO(parquet)))


def test_arrow_ipc_stream(read, ref):
    status, headers, body = get(data_url(read, "arrow"))
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(body).read_all()
    assert_table(table, ref)


def test_csv_is_what_tarn_read_prints(read, ref):
    status, headers, body = get(data_url(read, "csv"))
    assert status == 200, body[:300]
    assert headers["Content-Type"].startswith("text/csv")
    assert body.decode() == cli_text(read, "csv")
    assert_frame(csv_frame(body.decode()), ref, text=True)


def test_pandas_read_csv_over_http(read, ref):
    df = pd.read_csv(data_url(read, "csv"), storage_options=AUTH)
    assert_frame(df, ref, text=True)


def test_jsonl_is_what_tarn_read_prints(read, ref):
    status, headers, body = get(data_url(read, "jsonl"))
    assert status == 200, body[:300]
    text = body.decode()
    assert text == cli_text(read, "jsonl")
    lines = text.splitlines()
    assert len(lines) == ref.num_rows
    for line in lines[:50]:
        keys = list(json.loads(line))
        # JSON lines omit nulls; the keys present keep the schema's order.
        assert keys == [c for c in ref.column_names if c in keys]


def test_pandas_read_json_lines_over_http(read, ref):
    df = pd.read_json(data_url(read, "jsonl"), lines=True, storage_options=AUTH, dtype=False)
    # Keys that are null on the first line come later: order the columns as the schema.
    assert set(df.columns) <= set(ref.column_names)
    df = df.reindex(columns=ref.column_names)
    assert_frame(df, ref, text=True)


def test_polars_on_downloaded_bytes(read, ref):
    _, _, body = get(data_url(read, "parquet"))
    df = pl.read_parquet(io.BytesIO(body))
    assert df.columns == ref.column_names
    assert df.to_arrow().equals(pl.from_arrow(ref).to_arrow())
    _, _, csv = get(data_url(read, "csv"))
    assert pl.read_csv(io.BytesIO(csv)).columns == ref.column_names
    _, _, ipc = get(data_url(read, "arrow"))
    assert pl.read_ipc_stream(io.BytesIO(ipc)).equals(df)


def test_pinned_version_is_immutable_and_revalidates():
    url = data_url(READS["version"])
    status, headers, body = get(url)
    assert status == 200
    etag = headers["ETag"]
    assert etag and etag.startswith('"') and etag.endswith('"')
    cache = [p.strip() for p in headers["Cache-Control"].split(",")]
    assert "immutable" in cache and "public" in cache, cache
    assert headers["Tarn-Version"] == f"tarn://{DATASET}@main:v2"
    status, again, _ = get(url, {**AUTH, "If-None-Match": etag})
    assert status == 304
    assert again["ETag"] == etag
    # Another format of the same rows is another representation: another ETag.
    status, other, _ = get(data_url(READS["version"], "csv"), {**AUTH, "If-None-Match": etag})
    assert status == 200 and other["ETag"] != etag
    # The same request again gives the same bytes and the same ETag.
    _, headers2, body2 = get(url)
    assert headers2["ETag"] == etag and body2 == body


def test_head_is_not_cached_but_names_its_version():
    status, headers, _ = get(data_url(READS["head"]))
    assert status == 200
    assert headers["Cache-Control"] == "no-cache"
    info = json.loads(get(f"{URL}/api/v1/info?uri=tarn://{DATASET}")[2])
    assert headers["Tarn-Version"] == f"tarn://{DATASET}@main:v{info['version']}"
    status, _, _ = get(data_url(READS["head"]), {**AUTH, "If-None-Match": headers["ETag"]})
    assert status == 304


def test_no_token_is_401_with_a_message():
    for headers in ({}, {"Authorization": "Bearer tarn_not_a_token"}):
        status, _, body = get(data_url(READS["version"]), headers)
        assert status == 401, (headers, body[:200])
        assert "token" in error_of(body)
    # pandas gets the refusal too.
    with pytest.raises(Exception, match="401"):
        pd.read_parquet(data_url(READS["version"]))


def test_unknown_dataset_is_404_with_a_message():
    status, _, body = get(data_url({"uri": "tarn://weather/nowhere/1min"}))
    assert status == 404
    assert "weather/nowhere/1min" in error_of(body)
    status, _, body = get(data_url({"uri": f"tarn://{DATASET}:v999"}))
    assert status == 404
    assert "v999" in error_of(body) or "999" in error_of(body)


def test_duckdb_http_needs_the_httpfs_extension():
    # Nothing may be downloaded at run time: without httpfs (not in the wheel) DuckDB cannot
    # read http:// at all, and says so. If this starts to pass, DuckDB bundles an HTTP
    # reader and the README's DuckDB section must be updated.
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    installed = con.sql(
        "select installed from duckdb_extensions() where extension_name = 'httpfs'"
    ).fetchall()
    assert installed == [(False,)]
    with pytest.raises(duckdb.Error, match="httpfs"):
        con.sql(f"select count(*) from read_parquet('{data_url(READS['version'])}')").fetchall()

