from __future__ import annotations

from pathlib import Path

import pytest

from curation_sync.errors import MappingError
from curation_sync.mapping import (
    MappingRule,
    WorkbookMapping,
    is_workbook_path,
    resolve_mapping,
    safe_name,
    workbook_names,
)
from curation_sync.tasks import TaskInfo, TaskKind

PROJECT = "syn1000"


def task(task_id: int, name: str, project: str = PROJECT) -> TaskInfo:
    return TaskInfo(task_id, project, name, TaskKind.RECORD, record_set_id="syn2001")


def resolve(
    path: Path,
    folder: Path,
    tasks: list[TaskInfo],
    *,
    rules: tuple[MappingRule, ...] = (),
    identity: int | None = None,
) -> WorkbookMapping | None:
    return resolve_mapping(
        path,
        folder=folder,
        rules=rules,
        tasks=tasks,
        project_id=PROJECT,
        identity_task_id=identity,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AnimalMetadata", "AnimalMetadata"),
        ("mice/rats\\voles", "mice_rats_voles"),
        ("../../etc/passwd", "_._etc_passwd"),
        ("..", "task"),
        ("CON", "CON_"),
        ("nul.txt", "nul_.txt"),  # NUL.txt_.xlsx would still be the device NUL
        ("com1", "com1_"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("  trailing dots... ", "trailing dots"),
        ("tab\tand\nnewline", "tab_and_newline"),
        ("", "task"),
    ],
)
def test_safe_name_makes_any_task_name_safe_on_every_file_system(
    name: str, expected: str
) -> None:
    assert safe_name(name) == expected


def test_safe_name_never_exceeds_the_length_limit_or_contains_separators() -> None:
    produced = safe_name("x/" * 200, max_length=120)

    assert len(produced) <= 120
    assert "/" not in produced
    assert ".." not in safe_name("a" * 119 + "..b")


def test_workbook_names_disambiguate_tasks_whose_names_clash() -> None:
    names = workbook_names([task(7, "Mice"), task(3, "mice"), task(9, "Rats")])

    assert names == {3: "mice (task 3).xlsx", 7: "Mice (task 7).xlsx", 9: "Rats.xlsx"}


def test_is_workbook_path_skips_office_lock_and_hidden_files() -> None:
    assert is_workbook_path(Path("a/Mice.xlsx"))
    assert is_workbook_path(Path("Mice.CSV"))
    assert not is_workbook_path(Path("~$Mice.xlsx"))
    assert not is_workbook_path(Path(".~lock.Mice.xlsx#"))
    assert not is_workbook_path(Path("Mice.validation.txt"))


def test_an_explicit_rule_wins_over_identity_and_name(tmp_path: Path) -> None:
    tasks = [task(1, "Mice"), task(2, "Rats")]
    rules = (MappingRule("lab/*.xlsx", task_name="Rats"),)
    path = tmp_path / "lab" / "Mice.xlsx"

    found = resolve(path, tmp_path, tasks, rules=rules, identity=1)

    assert found is not None
    assert (found.task_id, found.source) == (2, "rule")


def test_a_workbook_with_an_identity_maps_to_its_task_wherever_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep" / "renamed.csv"

    found = resolve(path, tmp_path, [task(1, "Mice")], identity=1)

    assert found is not None
    assert (found.task_id, found.source) == (1, "identity")


def test_a_workbook_named_after_a_task_maps_to_it_only_at_the_top(
    tmp_path: Path,
) -> None:
    tasks = [task(1, "Mice: cohort 2")]

    top = resolve(tmp_path / "mice_ cohort 2.XLSX", tmp_path, tasks)
    nested = resolve(tmp_path / "sub" / "Mice_ cohort 2.xlsx", tmp_path, tasks)

    assert top is not None
    assert top.task_id == 1
    assert nested is None


def test_a_workbook_outside_the_folder_or_unnamed_maps_to_nothing(
    tmp_path: Path,
) -> None:
    tasks = [task(1, "Mice")]

    assert resolve(tmp_path.parent / "Mice.xlsx", tmp_path, tasks) is None
    assert resolve(tmp_path / "notes.xlsx", tmp_path, tasks) is None


def test_a_rule_naming_an_unknown_or_ambiguous_task_raises_a_clear_error(
    tmp_path: Path,
) -> None:
    tasks = [task(1, "Mice"), task(2, "Mice")]
    for name, words in (("Voles", "has no task"), ("Mice", "several tasks")):
        rules = (MappingRule("x.xlsx", task_name=name),)
        with pytest.raises(MappingError, match=words):
            resolve(tmp_path / "x.xlsx", tmp_path, tasks, rules=rules)
