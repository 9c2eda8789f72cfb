"""Run folders are created exclusively: two runs never write into one folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cli_runs import invoke_run

from loadgen import runfolder
from loadgen.runfolder import RunFolderTaken, claim_run_folder


def test_two_runs_in_the_same_second_get_two_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runfolder, "_stamp", lambda: "20261204-150102")
    first = claim_run_folder(None, "quick", root=tmp_path)
    second = claim_run_folder(None, "quick", root=tmp_path)
    assert first != second
    assert first.name.startswith("20261204-150102-quick-")
    for folder in (first, second):
        assert sorted(p.name for p in folder.iterdir()) == ["logs", "parts"]


def test_a_taken_name_draws_a_new_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suffixes = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(runfolder.secrets, "token_hex", lambda n: next(suffixes))
    monkeypatch.setattr(runfolder, "_stamp", lambda: "20261204-150102")
    first = claim_run_folder(None, "quick", root=tmp_path)
    (first / "parts" / "keep.json").write_text("{}")
    second = claim_run_folder(None, "quick", root=tmp_path)
    assert (first.name, second.name) == (
        "20261204-150102-quick-aaaaaa",
        "20261204-150102-quick-bbbbbb",
    )
    assert (first / "parts" / "keep.json").read_text() == "{}"


def test_a_named_folder_is_claimed_once(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    assert claim_run_folder(out, "quick") == out
    with pytest.raises(RunFolderTaken, match="not empty"):
        claim_run_folder(out, "quick")


def test_an_empty_named_folder_goes_to_one_of_two_racing_runs(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    results: list[object] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        try:
            results.append(claim_run_folder(out, "quick"))
        except RunFolderTaken as exc:
            results.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r == out for r in results) == 1
    assert all(isinstance(r, RunFolderTaken) for r in results if r != out)


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.write_text("not a folder")
    with pytest.raises(RunFolderTaken, match="not a folder"):
        claim_run_folder(out, "quick")


def test_run_refuses_a_folder_taken_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's early look at --out cannot be the only guard: the claim itself refuses."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[scenario]\nname = "s"\nrepeats = 1\nduration_s = 0.2\nwarmup_s = 0\n'
        '[[cells]]\ntransport = "http"\nclient = "aiohttp"\n'
    )
    out = tmp_path / "out"
    real_claim = runfolder.claim_run_folder

    def claimed_by_another(folder: Path | None, name: str, root: Path = Path("r")) -> Path:
        real_claim(folder, name)  # the other run wins the race
        (folder / "parts" / "other.json").write_text("{}")  # type: ignore[operator]
        return real_claim(folder, name)

    monkeypatch.setattr("loadgen.orchestrator.claim_run_folder", claimed_by_another)
    result = invoke_run(scenario, out)
    assert result.exit_code == 2, result.output
    assert "not empty" in " ".join(result.output.split())
    assert (out / "parts" / "other.json").read_text() == "{}"
