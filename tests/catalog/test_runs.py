"""Runs: stats merging, finishing, last successful run per kind/family, errors, interruption."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dingvault.catalog import Catalog, CatalogInputError, CatalogStateError, RunErrorRecord


def test_stats_are_merged_and_finalised(catalog: Catalog) -> None:
    run = catalog.start_run("full", ["approvals", "files", "approvals"])
    catalog.add_run_stats(
        run, {"items": {"new": 3, "changed": 1}, "api_calls": {"/topapi/a": 2}, "bytes": 100}
    )
    totals = catalog.add_run_stats(
        run, {"items": {"new": 2, "failed": 1}, "api_calls": {"/topapi/a": 1, "/v1.0/b": 5}, "bytes": 50}
    )
    assert totals == {
        "items": {"new": 5, "changed": 1, "failed": 1},
        "api_calls": {"/topapi/a": 3, "/v1.0/b": 5},
        "bytes": 150,
    }
    info = catalog.finish_run(run, "partial", stats={"errors": 1}, error="1 item failed")
    assert info.status == "partial"
    assert info.families == ("approvals", "files")
    assert info.stats["errors"] == 1 and info.stats["bytes"] == 150
    assert info.finished_at is not None and info.finished_at >= info.started_at
    with pytest.raises(CatalogStateError, match="final"):
        catalog.add_run_stats(run, {"bytes": 1})
    with pytest.raises(CatalogStateError, match="already"):
        catalog.finish_run(run, "succeeded")


@pytest.mark.parametrize(
    "delta",
    [{"items": "many"}, {"bytes": True}, {1: 2}, {"items": {"new": None}}, ["bytes", 1]],
)
def test_bad_stats_are_refused(catalog: Catalog, delta: object) -> None:
    run = catalog.start_run("event")
    with pytest.raises(CatalogInputError):
        catalog.add_run_stats(run, delta)  # type: ignore[arg-type]
    assert catalog.get_run(run).stats == {}  # type: ignore[union-attr]


def test_stats_shape_conflicts_are_refused(catalog: Catalog) -> None:
    run = catalog.start_run("event")
    catalog.add_run_stats(run, {"bytes": 1})
    with pytest.raises(CatalogInputError, match="number"):
        catalog.add_run_stats(run, {"bytes": {"x": 1}})


def test_unknown_run_and_bad_kinds(catalog: Catalog) -> None:
    with pytest.raises(CatalogStateError, match="no run 42"):
        catalog.add_run_stats(42, {"bytes": 1})
    with pytest.raises(CatalogStateError):
        catalog.finish_run(42, "failed")
    with pytest.raises(CatalogInputError):
        catalog.start_run("weekly")
    run = catalog.start_run("full")
    with pytest.raises(CatalogInputError):
        catalog.finish_run(run, "running")
    assert catalog.get_run(999) is None


def test_last_successful_run_per_kind_and_family(catalog: Catalog) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    full_a = catalog.start_run("full", ["approvals"], started_at=t0)
    catalog.finish_run(full_a, "succeeded", finished_at=t0 + timedelta(hours=1))
    full_both = catalog.start_run("full", ["approvals", "files"], started_at=t0 + timedelta(days=1))
    catalog.finish_run(full_both, "succeeded", finished_at=t0 + timedelta(days=1, hours=1))
    failed = catalog.start_run("full", ["approvals"], started_at=t0 + timedelta(days=2))
    catalog.finish_run(failed, "failed", error="token expired", finished_at=t0 + timedelta(days=2, hours=1))
    incr = catalog.start_run("incremental", ["files"], started_at=t0 + timedelta(days=3))
    catalog.finish_run(incr, "succeeded", finished_at=t0 + timedelta(days=3, hours=1))
    still_running = catalog.start_run("incremental", ["files"])

    assert catalog.last_successful_run("full", "approvals").id == full_both  # type: ignore[union-attr]
    assert catalog.last_successful_run("full", "files").id == full_both  # type: ignore[union-attr]
    assert catalog.last_successful_run(family="files").id == incr  # type: ignore[union-attr]
    assert catalog.last_successful_run().id == incr  # type: ignore[union-attr]
    assert catalog.last_successful_run("event") is None
    assert catalog.last_successful_run("full", statuses=("failed",)).id == failed  # type: ignore[union-attr]
    summary = {key: run.id for key, run in catalog.last_successful_runs().items()}
    assert summary == {
        ("full", "approvals"): full_both,
        ("full", "files"): full_both,
        ("incremental", "files"): incr,
    }
    assert [r.id for r in catalog.list_runs()] == [still_running, incr, failed, full_both, full_a]
    assert [r.id for r in catalog.list_runs(status="failed")] == [failed]
    assert [r.id for r in catalog.list_runs(kind="incremental", limit=1)] == [still_running]


def test_run_errors_are_kept_in_order_and_redacted(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    catalog.record_run_error(
        run,
        "ApiError",
        "GET https://oapi.dingtalk.com/topapi/v2/user/get?access_token=abc123SECRET failed: 88",
        kind="user",
        source_id="u1",
    )
    catalog.record_run_errors(
        run,
        [
            RunErrorRecord(
                "HTTPStatusError", 'header x-acs-dingtalk-access-token: tok-999 {"appSecret": "shh"}'
            ),
            RunErrorRecord("Timeout", "x" * 20000),
        ],
    )
    errors = catalog.run_errors(run)
    assert [e.error_class for e in errors] == ["ApiError", "HTTPStatusError", "Timeout"]
    assert "abc123SECRET" not in errors[0].message and "[REDACTED]" in errors[0].message
    assert "tok-999" not in errors[1].message and "shh" not in errors[1].message
    assert len(errors[2].message) <= 8000 and errors[2].message.endswith("[truncated]")
    assert (errors[0].kind, errors[0].source_id) == ("user", "u1")
    assert [e.id for e in catalog.run_errors(run, after_id=errors[0].id, limit=1)] == [errors[1].id]
    with pytest.raises(CatalogStateError):
        catalog.record_run_error(12345, "X", "unknown run")


def test_finish_run_error_text_is_redacted(catalog: Catalog) -> None:
    run = catalog.start_run("full")
    info = catalog.finish_run(run, "failed", error="POST /gettoken?appsecret=topsecret -> 403")
    assert info.error is not None and "topsecret" not in info.error


def test_interrupted_runs_are_closed(catalog: Catalog) -> None:
    old = catalog.start_run("full", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    new = catalog.start_run("event")
    done = catalog.start_run("incremental")
    catalog.finish_run(done, "succeeded")
    assert catalog.mark_interrupted_runs(started_before=datetime(2026, 6, 1, tzinfo=UTC)) == [old]
    assert catalog.get_run(new).status == "running"  # type: ignore[union-attr]
    assert catalog.mark_interrupted_runs() == [new]
    assert catalog.get_run(old).status == "interrupted"  # type: ignore[union-attr]
    assert catalog.get_run(done).status == "succeeded"  # type: ignore[union-attr]


def test_interrupted_runs_of_some_kinds_only(catalog: Catalog) -> None:
    # The scheduler restarts while the event listener's run is live: only scheduler kinds close.
    full = catalog.start_run("full")
    event = catalog.start_run("event")
    assert catalog.mark_interrupted_runs(kinds=["full", "incremental"]) == [full]
    assert catalog.get_run(event).status == "running"  # type: ignore[union-attr]
    with pytest.raises(CatalogInputError):
        catalog.mark_interrupted_runs(kinds=["weekly"])
