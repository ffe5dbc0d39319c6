"""record_versions against a tiny model: any sequence of observations, in any batching."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dingvault.catalog import Catalog, VersionRecord

_kinds = itertools.count()

observations = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from("abc")),  # (item, content)
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obs=observations, batch_size=st.integers(1, 8))
def test_outcomes_and_history_match_the_model(
    catalog: Catalog, obs: list[tuple[int, str]], batch_size: int
) -> None:
    kind = f"model{next(_kinds)}"  # each example gets its own kind: the catalog is shared
    history: dict[str, list[str]] = {}
    expected = []
    for item, content in obs:
        sid = f"i{item}"
        versions = history.setdefault(sid, [])
        if versions and versions[-1] == content:
            expected.append("unchanged")
        else:
            expected.append("changed" if versions else "new")
            versions.append(content)

    records = [VersionRecord(kind, f"i{item}", content) for item, content in obs]
    assert catalog.record_versions(records, batch_size=batch_size) == expected
    for sid, versions in history.items():
        stored = catalog.item_versions(kind, sid)
        assert [v.content_hash for v in stored] == versions
        assert [v.seq for v in stored] == list(range(1, len(versions) + 1))
        item = catalog.get_item(kind, sid)
        assert item is not None and item.latest_version_id == stored[-1].id
    # Replaying everything is a no-op.
    assert set(catalog.record_versions(records[-1:])) == {"unchanged"}
