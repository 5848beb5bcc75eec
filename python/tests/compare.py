"""Comparing what a client read with the rows `tarn read` gives."""

import io

import pandas as pd
import pyarrow as pa


def assert_table(table: pa.Table, ref: pa.Table) -> None:
    """Same column names and order, same types, same rows and values."""
    assert table.column_names == ref.column_names
    assert table.schema.types == ref.schema.types, (table.schema, ref.schema)
    assert table.num_rows == ref.num_rows
    assert table.equals(ref), "same schema and row count but different values"


def ref_frame(ref: pa.Table) -> pd.DataFrame:
    return ref.to_pandas()


def assert_frame(df: pd.DataFrame, ref: pa.Table, *, text: bool = False) -> None:
    """A pandas or polars-converted frame against the reference table.

    ``text``: the frame came from a text format (CSV, JSON lines), so time stamps are
    strings to parse and dtypes are pandas' guesses: values are compared, not dtypes.
    """
    expected = ref_frame(ref)
    assert list(df.columns) == list(expected.columns)
    assert len(df) == len(expected)
    for name, field in zip(ref.column_names, ref.schema):
        got = df[name].reset_index(drop=True)
        want = expected[name].reset_index(drop=True)
        if text and pa.types.is_timestamp(field.type):
            got = pd.to_datetime(got, utc=True, format="ISO8601").astype(want.dtype)
        if text:
            if pa.types.is_floating(field.type) or pa.types.is_integer(field.type):
                got = got.astype("float64")
                want = want.astype("float64")
            elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                got = got.astype(object).where(got.notna(), None)
                want = want.astype(object).where(want.notna(), None)
            pd.testing.assert_series_equal(got, want, check_dtype=False, check_exact=True,
                                           check_names=False)
        else:
            pd.testing.assert_series_equal(got, want, check_exact=True, check_names=False)


def csv_frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))
