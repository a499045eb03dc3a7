"""Junk in a run's own files (summary.json, metrics.jsonl) is tolerated and reported, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftstudio.core.config.recipe import Recipe
from ftstudio.core.runs.records import RunSummary, clean_metrics_row
from ftstudio.core.runs.folders import Run, list_runs
from tests.helpers import cli

JUNK_SUMMARIES = {
    "yesterday": '{"name": "a", "created_ts": "yesterday", "status": "completed"}',
    "dict-epochs": '{"name": "b", "epochs": {"a": 1}, "best_val_accuracy": "high", "duration_s": [1]}',
    "a-list": "[1, 2, 3]",
    "not-json": "{{{",
    "huge-int": '{"name": "e", "epochs": ' + "9" * 5000 + "}",
    "nan": '{"name": "f", "val_accuracy": NaN, "created_ts": Infinity}',
    "latin1": b'{"name": "\xe9"}',
}
JUNK_METRICS = "\n".join([
    '{"kind": "epoch", "epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0, "train_loss": 1.0}',
    '{"kind": "epoch", "epoch": "two", "val_accuracy": "x"}',
    '{"kind": "epoch", "epoch": 2, "val_accuracy": "high"}',
    '{"kind": "steps", "steps": [1, 2], "losses": [0.5]}',
    '{"kind": "steps", "steps": [1, "2"], "losses": [0.5, 0.4]}',
    '[1, 2]', "not json", '{"kind": "epoch", "epoch": 3, "val_accuracy": 0.7, "best": true}',
    '{"kind": "epo',
])


def make_junk_runs(parent: Path) -> list[Run]:
    runs = []
    for name, text in JUNK_SUMMARIES.items():
        run = Run(parent / name)
        run.path.mkdir(parents=True)
        run.write_json("recipe.json", Recipe().to_dict())
        (run.summary_path.write_bytes if isinstance(text, bytes) else run.summary_path.write_text)(text)
        run.metrics_path.write_text(JUNK_METRICS)
        runs.append(run)
    dev = Run(parent / "device")  # summary.json is a link to /dev/zero
    dev.path.mkdir()
    dev.write_json("recipe.json", Recipe().to_dict())
    dev.summary_path.symlink_to("/dev/zero")
    dev.metrics_path.symlink_to("/dev/zero")
    return [*runs, dev]


def test_the_reader_keeps_good_fields_and_reports_bad_ones():
    s = RunSummary.parse({"name": "a", "created_ts": "yesterday", "epochs": {"a": 1}, "future_field": [1]})
    assert s.name == "a" and s.created_ts is None and s.epochs is None
    assert any("created_ts: expected a number, got 'yesterday'" in p for p in s.problems)
    assert any(p.startswith("epochs:") for p in s.problems)
    assert s.to_dict() == {"name": "a", "future_field": [1]}  # unknown fields ride along
    assert RunSummary.parse([1]).problems and RunSummary.parse(None).problems


def test_junk_summaries_and_metrics_never_break_listing_or_reading(tmp_path):
    runs = make_junk_runs(tmp_path)
    listed = list_runs(tmp_path)
    assert {r.path for r in listed} == {r.path for r in runs}
    for run in listed:
        s = run.summary()
        assert s.created_ts is None or isinstance(s.created_ts, float)
        assert all(isinstance(v, float) for v in [s.val_accuracy] if v is not None)
    rows, skipped = Run(tmp_path / "yesterday").metrics_with_problems()
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 3] and skipped == 7
    Run(tmp_path / "yesterday").truncate_metrics(epoch=1, step=10)  # resume rewinds through junk too
    assert [r["epoch"] for r in Run(tmp_path / "yesterday").epochs()] == [1]
    bad = Run(tmp_path / "dict-epochs")
    bad.update_summary(status="stopped")  # the writer repairs what the reader dropped
    assert json.loads(bad.summary_path.read_text()) == {"name": "b", "status": "stopped"}


@pytest.mark.parametrize("row", [{"kind": "epoch", "epoch": True}, {"kind": "epoch", "epoch": 0},
                                 {"kind": "epoch", "epoch": 1, "best": "yes"},
                                 {"kind": "steps", "steps": [1], "losses": [True]}, "x", None])
def test_bad_metric_rows_are_skipped(row):
    assert clean_metrics_row(row) is None


def test_ftstudio_runs_lists_every_run_and_warns_about_junk(tmp_path):
    make_junk_runs(tmp_path)
    done = cli("runs", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "created_ts: expected a number" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.count(str(tmp_path)) == len(JUNK_SUMMARIES) + 1
    assert "None" not in done.stdout  # the fields a junk summary lost show as dashes
    as_json = cli("runs", "--dir", str(tmp_path), "--json")
    assert as_json.returncode == 0 and len(json.loads(as_json.stdout)) == len(JUNK_SUMMARIES) + 1


@pytest.mark.timeout(60)
def test_a_pipe_for_metrics_reads_as_no_rows_at_once(tmp_path):
    """Opening a named pipe waits for a writer: a pipe as metrics.jsonl once froze the Runs page."""
    import os

    run = Run(tmp_path / "piped")
    run.path.mkdir()
    os.mkfifo(run.metrics_path)
    assert run.metrics_with_problems() == ([], 0) and run.epochs() == []


def test_an_overlong_metrics_line_is_skipped_whole(tmp_path, monkeypatch):
    from ftstudio.core.runs import folders

    monkeypatch.setattr(folders, "MAX_METRICS_LINE", 64)
    run = Run(tmp_path / "long")
    run.path.mkdir()
    good = '{"kind": "epoch", "epoch": %d, "val_accuracy": 0.5}\n'
    junk = '{"kind": "steps", "steps": [' + ", ".join(map(str, range(100))) + "]}\n"
    run.metrics_path.write_text(good % 1 + junk + good % 2 + "x" * 64 + "\n" + good % 3)
    rows, skipped = run.metrics_with_problems()
    assert [r["epoch"] for r in rows] == [1, 2, 3] and skipped == 2


def test_a_summary_is_parsed_once_per_version_of_its_file(tmp_path, monkeypatch):
    """Listing 3,000 runs parsed every summary twice (2 s on the GUI thread); a changed file is still read anew."""
    import os

    parsed = []
    real_parse = RunSummary.parse.__func__
    counted = classmethod(lambda cls, data: parsed.append(data) or real_parse(cls, data))
    monkeypatch.setattr(RunSummary, "parse", counted)
    run = Run(tmp_path / "r")
    run.path.mkdir()
    run.write_json("recipe.json", Recipe().to_dict())
    run.update_summary(name="a", created_ts=1.0)  # an atomic write: a new file
    parsed.clear()
    assert run.summary().name == "a" and Run(tmp_path / "r").summary().name == "a" and list_runs(tmp_path)
    assert len(parsed) == 1
    run.update_summary(name="b")
    assert Run(run.path).summary().name == "b"
    with open(run.summary_path, "r+") as f:  # edited in place: same file, same size, a later mtime
        text = f.read().replace('"b"', '"c"')
        f.seek(0)
        f.write(text)
    later = os.stat(run.summary_path).st_mtime_ns + 10**9
    os.utime(run.summary_path, ns=(later, later))
    assert run.summary().name == "c"


def test_metrics_are_read_incrementally_and_anew_when_replaced(tmp_path, monkeypatch):
    """The Runs page re-reads a live run's metrics at each epoch: only the appended lines are parsed,
    a torn last line is not kept, and a file replaced or edited is read whole."""
    import os

    from ftstudio.core.runs import folders

    parsed = []
    real = folders.clean_row
    monkeypatch.setattr(folders, "clean_row", lambda line: parsed.append(line) or real(line))
    run = Run(tmp_path / "live")
    run.path.mkdir()
    row = '{"kind": "epoch", "epoch": %d, "val_accuracy": 0.5}\n'
    run.metrics_path.write_text("".join(row % e for e in range(1, 4)))
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3] and len(parsed) == 3
    with open(run.metrics_path, "a") as f:
        f.write(row % 4 + (row % 5)[:20])  # the fifth is being written
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3, 4]
    assert run.metrics_with_problems()[1] == 1  # the torn line, counted but not kept
    with open(run.metrics_path, "a") as f:
        f.write((row % 5)[20:])
    parsed.clear()
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3, 4, 5] and len(parsed) == 1  # the new line only
    assert run.metrics_with_problems()[1] == 0

    edited = run.metrics_path.read_text().replace('"epoch": 5', '"epoch": 9')  # same size, same inode
    with open(run.metrics_path, "r+") as f:
        f.write(edited)
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3, 4, 9]
    run.truncate_metrics(epoch=2, step=0)  # what resume does: a new file
    assert [r["epoch"] for r in run.epochs()] == [1, 2]
    with open(run.metrics_path, "a") as f:
        f.write(row % 3)
    whole = run.metrics_with_problems(fresh=True)[0]
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3] == [r["epoch"] for r in whole]
    os.unlink(run.metrics_path)
    assert run.epochs() == []


def test_epochs_pass_over_the_step_losses_unparsed(tmp_path, monkeypatch):
    """The Runs page plots epochs; it parsed every row of step losses to find them (a 10-million-step run:
    6.8 s and 870 MB at each selection). ftstudio's own step rows are passed over; any other line is read."""
    from ftstudio.core.runs import folders

    run = Run(tmp_path / "long")
    run.path.mkdir()
    for e in range(1, 4):
        for w in range(50):
            run.append_metrics({"kind": "steps", "epoch": e, "steps": [w * 2 + 1, w * 2 + 2], "losses": [0.5, 0.4],
                                "lr": 0.01, "samples_per_s": 10.0})
        run.append_metrics({"kind": "epoch", "epoch": e, "step": 100 * e, "val_accuracy": 0.5})
    with open(run.metrics_path, "a") as f:  # a hand-made step row and junk: read as before
        f.write('{"steps": [1], "kind": "steps", "losses": [0.1]}\nnot json\n')
    lines = run.metrics_path.read_text().splitlines()
    parsed = []
    real = folders.clean_row
    monkeypatch.setattr(folders, "clean_row", lambda line: parsed.append(line) or real(line))
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3]
    assert len(parsed) == 5 and len(lines) == 155  # three epoch rows, the hand-made row, the junk
    rows, problems = run.metrics_with_problems()
    assert len(rows) == 154 and problems == 1  # the whole read is unchanged
