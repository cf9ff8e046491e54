"""The importer: idempotent, updating, and strict about its format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from worker.materialize.run import Context
from worker.store.importer import ImportLineError, import_files

OWNER = "0x" + "c" * 40


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _files(tmp_path: Path, tags: list[str], country: str) -> tuple[Path, Path]:
    passports = [
        {"brandId": "b", "tokenId": "1", "productId": "p", "tags": tags, "owner": OWNER.upper()},
        {"brandId": "b", "tokenId": "2", "productId": None, "tags": [], "owner": None},
        {"brandId": "other", "tokenId": "1", "productId": "p", "tags": [], "owner": OWNER},
    ]
    wallets = [
        {
            "address": OWNER,
            "custodial": True,
            "country": country,
            "lastActiveAt": "2022-10-13T22:48:40Z",
        }
    ]
    return _write(tmp_path / "passports.jsonl", passports), _write(
        tmp_path / "wallets.jsonl", wallets
    )


def test_importing_twice_leaves_one_copy_updated_to_the_files(ctx: Context, tmp_path: Path) -> None:
    import_files(ctx.stores, *_files(tmp_path, ["Earring"], "France"))
    progress: list[int] = []
    counts = import_files(ctx.stores, *_files(tmp_path, ["Cap"], "Spain"), progress.append)

    assert (counts.passports, counts.wallets) == (3, 1)
    assert sum(progress) == 4
    assert ctx.stores.passports.count_documents({}) == 3
    assert ctx.stores.wallets.count_documents({}) == 1
    punk = ctx.stores.passports.find_one({"brandId": "b", "tokenId": "1"})
    assert punk is not None
    assert punk["tags"] == ["Cap"]
    assert punk["owner"] == OWNER
    wallet = ctx.stores.wallets.find_one({"_id": OWNER})
    assert wallet is not None
    assert wallet["country"] == "Spain"
    assert wallet["lastActiveAt"] == datetime(2022, 10, 13, 22, 48, 40, tzinfo=UTC)


def test_the_indexes_the_scans_use_exist_after_an_import(ctx: Context, tmp_path: Path) -> None:
    import_files(ctx.stores, *_files(tmp_path, [], "France"))
    keys = [dict(index["key"]) for index in ctx.stores.passports.list_indexes()]
    assert {"brandId": 1, "tokenId": 1} in keys


def test_a_line_out_of_format_is_reported_with_its_number(ctx: Context, tmp_path: Path) -> None:
    passports, wallets = _files(tmp_path, [], "France")
    with passports.open("a") as out:
        out.write('{"brandId": "b", "tokenId": 7}\n')
    with pytest.raises(ImportLineError, match=r"passports\.jsonl line 4"):
        import_files(ctx.stores, passports, wallets)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"brandId": "b", "tokenId": 7}', "must be strings"),
        ('{"brandId": "b"}', "missing 'tokenId'"),
        ('{"brandId": "b", "tokenId": "7", "owner": 5}', "owner must be"),
        ('{"brandId": "b", "tokenId": "7", "tags": "x"}', "tags must be"),
        ('{"brandId": "b", "tokenId": "7", "tags": [1, null]}', "tags must be"),
        ('{"brandId": "b", "tokenId": "7", "productId": 7}', "productId must be"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_each_bad_line_is_named_with_its_reason(
    ctx: Context, tmp_path: Path, line: str, message: str
) -> None:
    passports, wallets = _files(tmp_path, [], "France")
    with passports.open("a") as out:
        out.write(line + "\n")
    with pytest.raises(ImportLineError, match=message):
        import_files(ctx.stores, passports, wallets)
    # Refused whole: not even the good lines before it were written.
    assert ctx.stores.passports.count_documents({}) == 0
    assert ctx.stores.wallets.count_documents({}) == 0
