"""The `audience-worker` command line, run in-process against the test's store and Redis."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker import resources
from worker.audience.fields import AudienceCreate
from worker.cli import main
from worker.materialize.run import Context
from worker.settings import get_settings
from worker.store import audiences

OWNER = "0x" + "1" * 40


@pytest.fixture
def env(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    settings = ctx.settings
    for name, value in {
        "MONGO_URL": settings.mongo_url,
        "MONGO_DB": settings.mongo_db,
        "REDIS_URL": settings.redis_url,
        "KEY_PREFIX": settings.key_prefix,
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    resources._opened.clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield ctx
    # The command sets up logging for its process: give the test run its own back.
    root.handlers[:] = handlers
    root.setLevel(level)
    get_settings.cache_clear()
    resources._opened.clear()


@pytest.mark.parametrize("command", ["demo", "import", "materialize", "refresh", "status"])
def test_every_subcommand_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_import_then_materialize_one_then_status(
    env: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"brandId": "b", "tokenId": str(i), "tags": ["t"], "owner": OWNER} for i in range(3)]
    (tmp_path / "passports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "wallets.jsonl").write_text("")
    assert main(["import", "--data-dir", str(tmp_path)]) == 0

    fields = AudienceCreate.model_validate({"name": "cli audience", "tags": "t"}).stored()
    doc = audiences.insert(
        env.stores.audiences, audiences.new_document("b", fields, datetime.now(UTC))
    )
    audience_id = str(doc["_id"])
    assert main(["materialize", audience_id, "--as-of", "2022-10-20T00:00:00Z"]) == 0
    assert "done: countNFT 3, countOwner 1, recipients 3" in capsys.readouterr().out

    stored = env.stores.audiences.find_one({"_id": doc["_id"]})
    assert stored is not None and stored["materialization"]["state"] == "ready"
    assert main(["status", "--brand", "b"]) == 0
    table = capsys.readouterr().out
    assert "cli audience" in table and "ready" in table


def test_bad_ids_and_missing_audiences_are_plain_errors(
    env: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["materialize", "not-an-id"]) == 2
    assert main(["materialize", "660ffa248b242638ac6ccac5"]) == 1
    assert "no audience" in capsys.readouterr().out
