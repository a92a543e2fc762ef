"""Local paths and fsspec URLs, handled alike."""

from __future__ import annotations

import os

import fsspec

__all__ = ["normalize_url", "is_local", "filesystem", "exists", "join"]


def normalize_url(url: str | os.PathLike) -> str:
    """``url`` as a string; local paths (and ``file://`` URLs) become absolute paths, other URLs kept."""
    s = os.fspath(url)
    if isinstance(s, bytes):
        s = s.decode()
    if s.startswith("file://"):
        s = s[len("file://"):]
    if "://" in s:
        return s.rstrip("/") if not s.endswith("://") else s
    return os.path.abspath(s)


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def exists(url: str) -> bool:
    if is_local(url):
        return os.path.exists(local_path(url))
    fs, path = filesystem(url)
    return fs.exists(path)


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])
