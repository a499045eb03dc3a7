"""The README's promises: its test command is what CI runs, and its main command works."""

import re

from tests.helpers import ROOT, cli


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    blocks = commands()
    assert len(blocks) >= 2
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci


def test_readme_main_command_trains_on_the_bundled_data(tmp_path):
    main_command = commands()[0]
    match = re.search(r"ftstudio (train .+)$", main_command.strip())
    assert match, main_command
    args = match.group(1).split() + ["--out", str(tmp_path / "run")]
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout and (tmp_path / "run" / "checkpoints" / "best.pt").exists()
