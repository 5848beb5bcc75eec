"""The ``tarn://`` fsspec filesystem: a thin client of the ``tarn serve`` HTTP API (SPEC §9).

A path is a tarn URI without its scheme, ``<dataset>[@<branch>][:<ref>]``, optionally
followed by ``?format=&start=&end=&columns=``. See the package README for the mapping.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qsl

import requests
from fsspec.spec import AbstractFileSystem

__all__ = [
    "TarnFileSystem",
    "TarnError",
    "TarnNotFoundError",
    "TarnPermissionError",
]

#: Formats of ``GET /api/v1/data`` and the Content-Type of each for ``POST /api/v1/write``.
FORMATS = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
}
#: Options a path may carry after ``?`` (and that a filesystem or ``open`` call may take).
READ_OPTIONS = ("format", "start", "end", "columns")
#: Query parameters of ``POST /api/v1/write`` that ``open(..., "wb")`` passes through.
WRITE_OPTIONS = (
    "ordered_on",
    "duplicates_on",
    "row_group_size",
    "max_off_target",
    "message",
    "evolve",
)
#: The server's largest page of ``/api/v1/datasets``.
PAGE = 10_000


class TarnError(OSError):
    """An error answered by the server (``{"error": msg}``) or met on the way to it.

    ``str(err)`` is the server's message; ``err.status`` the HTTP status (None when the
    server could not be reached) and ``err.url`` the request.
    """

    def __init__(self, message: str, status: Optional[int] = None, url: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.url = url

    def __str__(self) -> str:
        return self.message


class TarnNotFoundError(TarnError, FileNotFoundError):
    """404: unknown dataset, version, tag or branch."""


class TarnPermissionError(TarnError, PermissionError):
    """401 (no or unknown token) or 403 (token out of scope)."""


def _error(response: requests.Response) -> TarnError:
    try:
        body = response.json()
        message = body["error"] if isinstance(body, dict) and "error" in body else response.text
    except ValueError:
        message = response.text
    message = str(message).strip() or f"HTTP {response.status_code} {response.reason}"
    status = response.status_code
    cls = TarnError
    if status == 404:
        cls = TarnNotFoundError
    elif status in (401, 403):
        cls = TarnPermissionError
    return cls(message, status=status, url=response.url)


def _split(path: str) -> Tuple[str, Dict[str, str]]:
    """``"ds@b:v2?format=csv"`` -> ``("ds@b:v2", {"format": "csv"})``."""
    base, _, query = path.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = sorted(set(options) - set(READ_OPTIONS) - set(WRITE_OPTIONS))
    if unknown:
        raise ValueError(
            f"tarn://{path}: unknown option(s) {', '.join(unknown)} after '?' "
            f"(known: {', '.join(READ_OPTIONS + WRITE_OPTIONS)})"
        )
    return base.strip("/"), options


def _dataset_name(base: str) -> str:
    """The dataset part of ``<dataset>[@<branch>][:<ref>]``."""
    for sep in ("@", ":"):
        base = base.split(sep, 1)[0]
    return base


def _columns(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(c) for c in value)


class _DownloadedData(tempfile.SpooledTemporaryFile):
    """The rows of one ``GET /api/v1/data``: seekable, in memory up to a bound, then on disk.

    ``tarn_version`` is the server's ``Tarn-Version`` header (the exact version read, e.g.
    ``tarn://weather/payerne/1min@main:v5``), ``etag`` its ``ETag``.
    """

    tarn_version: Optional[str] = None
    etag: Optional[str] = None
    size: int = 0


class _Upload(tempfile.SpooledTemporaryFile):
    """A file opened for writing: buffered (bounded memory), sent on ``close()``."""

    def __init__(self, fs: "TarnFileSystem", path: str, options: Dict[str, Any], max_size: int):
        super().__init__(max_size=max_size)
        self._fs = fs
        self._path = path
        self._options = options
        self._sent = False
        self.request_id: Optional[str] = None
        self.version: Optional[int] = None

    def close(self) -> None:
        if self._sent or self.closed:
            super().close()
            return
        self._sent = True
        try:
            self.seek(0)
            result = self._fs._write(self._path, self, self._options)
            self.request_id = result.get("request_id")
            self.version = result.get("version")
        finally:
            super().close()

    def discard(self) -> None:
        """Close without sending."""
        self._sent = True
        super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class TarnFileSystem(AbstractFileSystem):
    """Datasets of a tarn lake served by ``tarn serve``, as read-only files (and writable
    ones through the server's queue).

    Parameters (all optional; each also a storage option):

    - ``url``: the server, e.g. ``http://127.0.0.1:8080`` (default: ``$TARN_URL``).
    - ``token``: sent as ``Authorization: Bearer`` (default: ``$TARN_TOKEN``; none if unset).
    - ``job``: sent as ``Tarn-Job`` on every request (default: ``$TARN_JOB``; none if unset).
    - ``format``: ``parquet`` (default), ``arrow``, ``csv`` or ``jsonl``.
    - ``start``, ``end``, ``columns``: the range and columns of every read (a path's
      ``?start=...`` wins).
    - ``timeout``: seconds to connect and between two received chunks (default 60).
    - ``spool_max_memory``: bytes of a download kept in memory before it spills to a
      temporary file (default 64 MiB).
    - ``write_timeout``: seconds a write waits for its queued request to finish (default 300).
    - ``headers``: extra HTTP headers for every request.

    Environment variables are read at each request unless the option was given, so
    ``TARN_JOB`` set after the filesystem was created is honoured.
    """

    protocol = "tarn"
    root_marker = ""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        job: Optional[str] = None,
        format: Optional[str] = None,
        start: Optional[str] = None,
        end: Optional[str] = None,
        columns: Any = None,
        timeout: float = 60.0,
        spool_max_memory: int = 64 << 20,
        write_timeout: float = 300.0,
        headers: Optional[Dict[str, str]] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if format is not None and format not in FORMATS:
            raise ValueError(f"unknown format {format!r}: one of {', '.join(FORMATS)}")
        self._url = url
        self._token = token
        self._job = job
        self.defaults = {"format": format, "start": start, "end": end, "columns": columns}
        self.timeout = timeout
        self.spool_max_memory = spool_max_memory
        self.write_timeout = write_timeout
        self.extra_headers = dict(headers or {})
        self._session = requests.Session()
        # Size of the newest download of each read (keyed by its data_params), and a
        # download made by size() that the next open() of the same read takes over, so
        # that a reader asking for the size first (DuckDB) gets the bytes it measured.
        self._sizes: Dict[Tuple, int] = {}
        self._handoff: Dict[Tuple, "_DownloadedData"] = {}

    # -- HTTP ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        url = self._url or os.environ.get("TARN_URL")
        if not url:
            raise ValueError("no tarn server: pass url= (storage option) or set TARN_URL")
        return url.rstrip("/")

    def _headers(self) -> Dict[str, str]:
        headers = dict(self.extra_headers)
        token = self._token if self._token is not None else os.environ.get("TARN_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        job = self._job if self._job is not None else os.environ.get("TARN_JOB")
        if job:
            headers["Tarn-Job"] = job
        return headers

    def _request(
        self,
        method: str,
        endpoint: str,
        params: Optional[Dict[str, Any]] = None,
        *,
        stream: bool = False,
        headers: Optional[Dict[str, str]] = None,
        data: Any = None,
        timeout: Optional[float] = None,
    ) -> requests.Response:
        url = f"{self.url}/api/v1/{endpoint}"
        all_headers = self._headers()
        all_headers.update(headers or {})
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                headers=all_headers,
                data=data,
                stream=stream,
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as e:
            raise TarnError(f"{method} {url}: {e}", url=url) from e
        if response.status_code >= 400:
            try:
                raise _error(response)
            finally:
                response.close()
        return response

    def _json(self, endpoint: str, params: Dict[str, Any]) -> Any:
        return self._request("GET", endpoint, params).json()

    # -- paths --------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("tarn://"):
            path = path[len("tarn://") :]
        base, sep, query = path.partition("?")
        return base.strip("/") + sep + query

    def unstrip_protocol(self, name: str) -> str:
        return "tarn://" + self._strip_protocol(name)

    def _options(self, path: str, given: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
        """The URI part of a path and its options: path suffix > call > filesystem."""
        base, from_path = _split(self._strip_protocol(path))
        options = {k: v for k, v in self.defaults.items() if v is not None}
        options.update({k: v for k, v in given.items() if v is not None})
        options.update(from_path)
        return base, options

    # -- listing ------------------------------------------------------------------------

    def _datasets(self, prefix: str) -> List[Dict[str, Any]]:
        """Every dataset under ``prefix`` (all pages of ``/api/v1/datasets``)."""
        out: List[Dict[str, Any]] = []
        after = None
        while True:
            page = self._json(
                "datasets", {"prefix": prefix or None, "after": after, "limit": PAGE}
            )
            if not page:
                return out
            out.extend(page)
            after = page[-1]["name"]

    @staticmethod
    def _file_entry(entry: Dict[str, Any], name: str) -> Dict[str, Any]:
        out = {k: v for k, v in entry.items() if k != "name"}
        out.update(name=name, dataset=entry.get("name"), type="file", size=None)
        return out

    def ls(self, path: str, detail: bool = True, **kwargs: Any):
        base, options = _split(self._strip_protocol(path))
        if options or base != _dataset_name(base):
            # A pinned version or a branch names one dataset: ls of a file is the file.
            entries = [self.info(path)]
        else:
            entries = self._children(base)
        return entries if detail else [e["name"] for e in entries]

    def _children(self, prefix: str) -> List[Dict[str, Any]]:
        children: Dict[str, Dict[str, Any]] = {}
        datasets = self._datasets(prefix)
        for entry in datasets:
            name = entry["name"]
            if name == prefix:
                # `ls` of a dataset is the dataset (fsspec's convention for a file).
                return [self._file_entry(entry, name)]
            rest = name[len(prefix) + 1 :] if prefix else name
            head, sep, _ = rest.partition("/")
            child = f"{prefix}/{head}" if prefix else head
            if not sep:
                children[child] = self._file_entry(entry, child)  # a dataset wins
            elif child not in children:
                children[child] = {"name": child, "type": "directory", "size": 0}
        if not children and prefix:
            raise TarnNotFoundError(f"tarn://{prefix}: no dataset is named so or lies under it")
        return [children[k] for k in sorted(children)]

    def info(self, path: str, **kwargs: Any) -> Dict[str, Any]:
        stripped = self._strip_protocol(path)
        base, options = _split(stripped)
        if not base:
            return {"name": "", "type": "directory", "size": 0}
        try:
            info = self._json("info", {"uri": f"tarn://{base}"})
        except TarnNotFoundError:
            if base == _dataset_name(base) and not options and self._datasets(base):
                return {"name": base, "type": "directory", "size": 0}
            raise
        entry = self._file_entry(info, stripped)
        entry["dataset"] = info.get("name")
        return entry

    def exists(self, path: str, **kwargs: Any) -> bool:
        # Unlike fsspec's default, only "not found" is False: a 401 or a server that is
        # down raises instead of looking like a missing dataset.
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    # -- reading ------------------------------------------------------------------------

    def data_params(self, path: str, **options: Any) -> Dict[str, Any]:
        """The query of ``GET /api/v1/data`` that reading ``path`` sends."""
        base, opts = self._options(path, options)
        fmt = opts.get("format", "parquet")
        if fmt not in FORMATS:
            raise ValueError(f"tarn://{base}: unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        return {
            "uri": f"tarn://{base}",
            "format": fmt,
            "start": opts.get("start"),
            "end": opts.get("end"),
            "columns": _columns(opts.get("columns")),
        }

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Any = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ):
        if "r" in mode:
            return self._download(path, kwargs)
        if "w" in mode:
            base, options = self._options(path, kwargs)
            return _Upload(self, base, options, self.spool_max_memory)
        raise NotImplementedError(
            f"tarn://{path}: mode {mode!r} is not supported: datasets are read ('rb') or "
            "written whole through the server's write queue ('wb'); there is no append"
        )

    @staticmethod
    def _key(params: Dict[str, Any]) -> Tuple:
        return tuple(sorted((k, v) for k, v in params.items() if v is not None))

    def size(self, path: str) -> int:
        """Bytes of the response that reading ``path`` gives.

        The data endpoint streams without Content-Length, so the first call downloads the
        response (kept for the next ``open`` of the same path and options); later calls
        answer with the size of the newest download.
        """
        params = self.data_params(path)
        key = self._key(params)
        if key not in self._sizes:
            spool = self._download(path, {})
            while len(self._handoff) >= 4:  # bound what unopened downloads hold
                self._handoff.pop(next(iter(self._handoff))).close()
            self._handoff[key] = spool
        return self._sizes[key]

    def modified(self, path: str):
        """The commit time of the version the path names."""
        from datetime import datetime

        stamp = self.info(path).get("timestamp")
        if not stamp:
            raise IsADirectoryError(f"tarn://{path}: a prefix has no modification time")
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    def glob(self, path: str, maxdepth: Optional[int] = None, **kwargs: Any):
        # A "?" that starts known options (`?format=csv`) is not a glob character.
        stripped = self._strip_protocol(path)
        base, sep, query = stripped.partition("?")
        if sep and "=" in query:
            _split(stripped)  # unknown options are an error, not a pattern
            if any(c in base for c in "*[?"):
                matches = super().glob(base, maxdepth=maxdepth)
            else:
                matches = [base] if self.exists(base) else []
            return [f"{m}?{query}" for m in matches]
        return super().glob(path, maxdepth=maxdepth, **kwargs)

    def _download(self, path: str, options: Dict[str, Any]) -> _DownloadedData:
        params = self.data_params(path, **{k: options.get(k) for k in READ_OPTIONS})
        key = self._key(params)
        spool = self._handoff.pop(key, None)
        if spool is not None:
            return spool
        response = self._request("GET", "data", params, stream=True)
        spool = _DownloadedData(max_size=self.spool_max_memory)
        try:
            for chunk in response.iter_content(chunk_size=1 << 20):
                spool.write(chunk)
        except requests.RequestException as e:
            spool.close()
            raise TarnError(
                f"{params['uri']}: the response was cut ({e})", url=response.url
            ) from e
        finally:
            response.close()
        spool.size = spool.tell()
        self._sizes[key] = spool.size
        spool.seek(0)
        spool.tarn_version = response.headers.get("Tarn-Version")
        spool.etag = response.headers.get("ETag")
        return spool

    # -- writing ------------------------------------------------------------------------

    def _write(self, base: str, body: Any, options: Dict[str, Any]) -> Dict[str, Any]:
        """POST the rows in ``body`` to ``/api/v1/write`` and wait for the request."""
        if ":" in base:
            raise ValueError(f"tarn://{base}: a write names a dataset (and branch), not a version")
        fmt = options.get("format", "parquet")
        if fmt not in FORMATS:
            raise ValueError(f"tarn://{base}: unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        params = {k: options.get(k) for k in WRITE_OPTIONS}
        if isinstance(params.get("duplicates_on"), (list, tuple)):
            params["duplicates_on"] = ",".join(params["duplicates_on"])
        params["uri"] = f"tarn://{base}"
        key = options.get("idempotency_key") or uuid.uuid4().hex
        headers = {"Content-Type": FORMATS[fmt], "Idempotency-Key": key}
        queued = self._request("POST", "write", params, headers=headers, data=body).json()
        request_id = queued["request_id"]
        deadline = time.monotonic() + self.write_timeout
        while True:
            wait = max(1, min(60, int(deadline - time.monotonic())))
            status = self._request(
                "GET", f"requests/{request_id}", {"wait": wait}, timeout=wait + self.timeout
            ).json()
            if status.get("status") == "succeeded":
                return status
            if status.get("status") == "failed":
                raise TarnError(
                    f"tarn://{base}: write request {request_id} failed: {status.get('error')}",
                    url=f"{self.url}/api/v1/requests/{request_id}",
                )
            if time.monotonic() >= deadline:
                raise TarnError(
                    f"tarn://{base}: write request {request_id} still {status.get('status')} "
                    f"after {self.write_timeout} s (GET /api/v1/requests/{request_id})"
                )

    def _unsupported(self, what: str):
        raise NotImplementedError(
            f"tarn:// does not support {what}: a lake changes only through writes "
            "(open(path, 'wb') / put_file), deletes and tags made with the tarn CLI or API"
        )

    def rm(self, path, recursive=False, maxdepth=None):
        self._unsupported("rm")

    def rm_file(self, path):
        self._unsupported("rm")

    def mkdir(self, path, create_parents=True, **kwargs):
        self._unsupported("mkdir")

    def makedirs(self, path, exist_ok=False):
        # Datasets need no directories; pyarrow and pandas call this before a write.
        return None

    def cp_file(self, path1, path2, **kwargs):
        self._unsupported("copy")

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs):
        self._unsupported("move")

    def touch(self, path, truncate=True, **kwargs):
        self._unsupported("touch")


def _register(names: Iterable[str] = ("tarn",)) -> None:
    import fsspec

    for name in names:
        fsspec.register_implementation(name, TarnFileSystem, clobber=True)
