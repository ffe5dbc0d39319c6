"""Scope selectors: departments follow the tree learned during the run, kinds, files, CLI narrowing."""

import pytest

from dingvault.backup.scope import Scope, ScopeError, parse_size


def _tree(scope: Scope) -> Scope:
    # 1 ─┬─ 10 ─── 11 ─── 12
    #    └─ 20
    scope.learn_department(1, None)
    scope.learn_department(10, 1)
    scope.learn_department(11, 10)
    scope.learn_department(12, 11)
    scope.learn_department(20, 1)
    scope.learn_user("alice", [12])
    scope.learn_user("bob", [20])
    scope.learn_user("carol", [10, 20])
    return scope


def test_empty_scope_includes_everything():
    scope = Scope.from_config({})
    assert scope.is_everything
    assert scope.includes_user("anyone") and scope.includes_dept(999) and scope.includes_kind("approval")
    assert scope.includes_file("a.mp4", 10**12)
    assert scope.includes_space is None  # a collector may then treat its space listing as complete
    only = Scope.from_config({"spaces": ["s1"]})
    assert only.includes_space("s1") and not only.includes_space("s2")


def test_subtree_follows_the_learned_tree():
    scope = _tree(Scope.from_config({"departments": [{"id": 10, "subtree": True}]}))
    assert scope.needs_tree
    assert scope.includes_dept(12) and scope.includes_dept("11") and scope.includes_dept(10)
    assert not scope.includes_dept(20) and not scope.includes_dept(1)
    assert scope.includes_user("alice") and scope.includes_user("carol")
    assert not scope.includes_user("bob")
    # bob moves into the subtree during the next run: membership follows the tree
    scope.learn_user("bob", [11])
    assert scope.includes_user("bob")
    # a department re-parented out of the subtree is no longer included
    scope.learn_department(12, 20)
    assert not scope.includes_dept(12) and not scope.includes_user("alice")


def test_department_without_subtree_and_explicit_users():
    scope = _tree(Scope.from_config({"departments": [{"id": 10, "subtree": False}], "users": ["bob"]}))
    assert scope.includes_dept(10) and not scope.includes_dept(11)
    assert scope.includes_user("carol") and scope.includes_user("bob") and not scope.includes_user("alice")


def test_cyclic_tree_does_not_hang():
    scope = Scope.from_config({"departments": [5]})
    scope.learn_department(1, 2)
    scope.learn_department(2, 1)
    assert not scope.includes_dept(1)


def test_file_exclusions_and_sizes():
    scope = Scope.from_config({"exclude_extensions": ["mp4", ".ISO"], "max_file_size": "5MB"})
    assert not scope.includes_file("holiday.MP4", 10)
    assert not scope.includes_file("disk.iso", 10)
    assert scope.includes_file("合同.pdf", 5_000_000)
    assert not scope.includes_file("合同.pdf", 5_000_001)
    assert parse_size("1GiB") == 1024**3 and parse_size("500kb") == 500_000 and parse_size(0) is None


def test_cli_narrowing_never_widens():
    scope = _tree(Scope.from_config({"kinds": ["approval", "file"], "departments": [1]}))
    narrowed = scope.narrowed(kinds=["file"], depts=["10"])
    for d, p in scope._parents.items():
        narrowed.learn_department(d, p)
    narrowed._user_depts.update(scope._user_depts)
    assert narrowed.kinds == {"file"}
    assert narrowed.includes_dept(12) and not narrowed.includes_dept(20)
    with pytest.raises(ScopeError, match="selects nothing"):
        scope.narrowed(kinds=["user"])


@pytest.mark.parametrize(
    "table, message",
    [
        ({"kinds": ["approvals"]}, "unknown kind"),
        ({"colour": "red"}, "unknown \\[scope\\] keys"),
        ({"max_file_size": "lots"}, "not a size"),
        ({"departments": [{"subtree": True}]}, "has no id"),
    ],
)
def test_bad_scope_config_is_a_clear_error(table, message):
    with pytest.raises(ScopeError, match=message):
        Scope.from_config(table)


def test_round_trip_through_config():
    table = {
        "departments": [{"id": "10", "subtree": False}],
        "users": ["u1"],
        "kinds": ["todo"],
        "exclude_extensions": [".mp4"],
        "max_file_size": 1000,
    }
    assert (
        Scope.from_config(Scope.from_config(table).to_config()).to_config()
        == Scope.from_config(table).to_config()
    )
