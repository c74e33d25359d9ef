from __future__ import annotations

from curation_sync.merge import (
    cells_equal,
    change_share,
    diff_rows,
    key_rows,
    merge_rows,
    next_base,
)

COLUMNS = ("animal_id", "sex", "weight_g")


def rows(*items: tuple[str, str, str]) -> dict[tuple[str, ...], dict[str, str]]:
    return {(a,): dict(zip(COLUMNS, (a, s, w), strict=True)) for a, s, w in items}


def test_key_rows_holds_back_blank_and_repeated_keys_with_their_sheet_rows() -> None:
    keyed = key_rows(
        COLUMNS,
        [("A1", "male", "3"), ("", "female", "4"), ("A2", "x", "1"), ("A2", "y", "2")],
        ["animal_id"],
        sheet_rows=[2, 3, 4, 5],
    )

    assert list(keyed.rows) == [("A1",)]
    assert keyed.sheet_rows == {("A1",): 2}
    assert [(h.sheet_row, h.key) for h in keyed.held_back] == [
        (3, ("",)),
        (4, ("A2",)),
        (5, ("A2",)),
    ]
    assert "blank" in keyed.held_back[0].reason
    assert "more than one row" in keyed.held_back[1].reason


def test_cells_equal_treats_number_spellings_and_json_lists_as_the_same_value() -> None:
    assert cells_equal("20", "20.0")
    assert cells_equal("1e3", "1000")
    assert cells_equal('["a","b"]', '["a", "b"]')
    assert cells_equal("TRUE", "true")
    assert not cells_equal("007", "7")
    assert not cells_equal("20", "21")
    assert not cells_equal("", "0")


def test_diff_rows_finds_changed_added_and_removed_keys() -> None:
    base = rows(("A1", "male", "3"), ("A2", "female", "4"), ("A3", "male", "5"))
    local = rows(("A1", "male", "3.0"), ("A2", "unknown", "4"), ("A4", "male", "1"))

    diff = diff_rows(base, local, COLUMNS)

    assert diff.changed == (("A2",),)
    assert diff.added == (("A4",),)
    assert diff.removed == (("A3",),)
    assert change_share(diff, len(base)) == 2 / 3


def test_diff_rows_ignores_columns_the_workbook_does_not_have() -> None:
    base = rows(("A1", "male", "3"))
    local = {("A1",): {"animal_id": "A1", "sex": "male"}}

    assert diff_rows(base, local, ("animal_id", "sex")).is_empty


def test_merge_pushes_local_changes_and_leaves_remote_only_changes_for_a_pull() -> None:
    base = rows(("A1", "male", "3"), ("A2", "female", "4"))
    local = rows(("A1", "female", "3"), ("A2", "female", "4"))
    remote = rows(("A1", "male", "3"), ("A2", "female", "9"), ("A5", "male", "2"))

    merged = merge_rows(base, local, remote, COLUMNS)

    assert merged.to_push == (("A1",),)
    assert merged.conflicts == ()
    assert set(merged.remote_only) == {("A2",), ("A5",)}


def test_merge_reports_a_row_changed_on_both_sides_as_a_conflict_with_both_values() -> (
    None
):
    base = rows(("A1", "male", "3"))
    local = rows(("A1", "female", "3"))
    remote = rows(("A1", "male", "8"))

    merged = merge_rows(base, local, remote, COLUMNS)

    assert merged.to_push == ()
    [conflict] = merged.conflicts
    assert conflict.key == ("A1",)
    assert conflict.local["sex"] == "female"
    assert conflict.remote is not None
    assert conflict.remote["weight_g"] == "8"
    assert conflict.columns == ("sex", "weight_g")


def test_merge_treats_the_same_change_on_both_sides_as_converged() -> None:
    base = rows(("A1", "male", "3"))
    both = rows(("A1", "female", "3"))

    merged = merge_rows(base, both, both, COLUMNS)

    assert merged.to_push == ()
    assert merged.conflicts == ()
    assert merged.converged == (("A1",),)


def test_merge_reports_a_local_edit_of_a_row_removed_remotely_as_a_conflict() -> None:
    base = rows(("A1", "male", "3"), ("A2", "male", "3"))
    local = rows(("A1", "female", "3"), ("A2", "male", "3"))
    remote = rows(("A2", "male", "3"))

    [conflict] = merge_rows(base, local, remote, COLUMNS).conflicts

    assert conflict.key == ("A1",)
    assert conflict.remote is None


def test_merge_lists_rows_removed_locally_which_an_import_cannot_remove() -> None:
    base = rows(("A1", "male", "3"), ("A2", "male", "3"))
    local = rows(("A2", "male", "3"))

    merged = merge_rows(base, local, base, COLUMNS)

    assert merged.removed_locally == (("A1",),)
    assert merged.to_push == ()


def test_next_base_keeps_the_old_base_row_of_an_open_conflict() -> None:
    base = rows(("A1", "male", "3"), ("A2", "male", "3"))
    local = rows(("A1", "female", "3"), ("A2", "male", "3"), ("A9", "male", "1"))
    remote = rows(("A1", "unknown", "3"), ("A2", "male", "3"), ("A9", "female", "1"))

    kept, settled = next_base(remote, local, base, COLUMNS)

    assert not settled
    assert kept[("A1",)] == base[("A1",)]
    assert kept[("A2",)] == remote[("A2",)]
    assert ("A9",) not in kept
    assert diff_rows(kept, local, COLUMNS).changed == (("A1",),)


def test_next_base_does_not_let_a_stale_sheet_row_revert_a_remote_change() -> None:
    base = rows(("A1", "male", "3"), ("A2", "male", "3"))
    local = rows(("A1", "female", "3"), ("A2", "male", "3"))
    remote_after = rows(("A1", "female", "3"), ("A2", "male", "4"), ("A7", "male", "1"))

    kept, settled = next_base(remote_after, local, base, COLUMNS)

    assert not settled
    assert diff_rows(kept, local, COLUMNS).is_empty
    assert kept[("A1",)] == remote_after[("A1",)]


def test_next_base_is_settled_when_the_sheet_matches_synapse() -> None:
    base = rows(("A1", "male", "3"))
    local = rows(("A1", "female", "3.0"))
    remote_after = rows(("A1", "female", "3"))

    kept, settled = next_base(remote_after, local, base, COLUMNS)

    assert settled
    assert kept == remote_after


def test_next_base_takes_the_sent_values_of_a_row_synapse_spelled_differently() -> None:
    base = rows(("A1", "male", "3"))
    local = rows(("A1", "male", "3.50"))
    remote_after = rows(("A1", "male ", "3.5x"))

    kept, settled = next_base(remote_after, local, base, COLUMNS, pushed={("A1",)})
    later = merge_rows(kept, local, remote_after, COLUMNS)

    assert not settled
    assert diff_rows(kept, local, COLUMNS).is_empty
    assert later.conflicts == ()
    assert later.remote_only == (("A1",),)
