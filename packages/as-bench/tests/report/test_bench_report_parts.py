"""The report's building blocks, public for other tools: tables, the page, embedded figures."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from as_bench.exceptions import ResultStoreError
from as_bench.report import (
    Table,
    escape_markdown,
    html_document,
    html_table,
    markdown_table,
    png_data_uri,
)

TABLE = Table(headers=["model", "ms"], rows=[["<b>x|y</b>", "1.5"]], numeric=frozenset({1}))


def test_tables_escape_every_cell_and_align_numbers() -> None:
    page = html_table(TABLE)
    assert "&lt;b&gt;x|y&lt;/b&gt;" in page and "<b>" not in page
    assert '<td class="num">1.5</td>' in page
    lines = markdown_table(TABLE)
    assert lines[1] == "| --- | ---: |"
    assert lines[2] == "| &lt;b&gt;x\\|y&lt;/b&gt; | 1.5 |"
    assert escape_markdown("a\nb*") == "a b\\*"


def test_the_page_forbids_fetches_and_escapes_its_title() -> None:
    page = html_document("<t>", ["<p>body</p>"])
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>&lt;t&gt;</title>" in page
    assert "default-src 'none'; img-src data:" in page
    assert "<p>body</p>" in page and "<style>" in page


def test_png_data_uri_embeds_png_only(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 10)
    uri = png_data_uri(png)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :]) == png.read_bytes()
    (tmp_path / "b.png").write_text("not a png")
    with pytest.raises(ResultStoreError, match="not a PNG"):
        png_data_uri(tmp_path / "b.png")
