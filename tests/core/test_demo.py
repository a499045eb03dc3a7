"""The demo's story on tiny settings: honest held-out data, same steps for scratch, a table, an export."""

from __future__ import annotations

import pytest

from ftstudio.core.workflow import demo


def test_held_out_images_were_never_pretrained_on():
    assert demo.held_out_is_unseen()


def test_scratch_matches_the_finetune_setup():
    ft, scratch = demo.finetune_recipe("somewhere", "full"), demo.scratch_recipe(100)
    assert ft.data == scratch.data and ft.data.per_class == demo.SHOTS
    assert scratch.model == demo.pretrain_recipe().model == "cnn"
    assert ft.finetune.checkpoint == "last"  # no model selection on the held-out images' originals


@pytest.mark.slow
def test_demo_runs_end_to_end_on_tiny_settings(tmp_path):
    lines = []
    result = demo.run_demo(tmp_path, say=lines.append, pretrain_epochs=1, steps=3, export_formats=("onnx",))
    assert [r.label for r in result.rows] == ["fine-tune (full)", "fine-tune (head)", "fine-tune (lora)", "scratch"]
    assert result.export.ok and result.export.files[0].path.is_file()
    assert result.held_out == 359
    text = demo.table(result)
    assert "fine-tune (full)" in text and "scratch" in text and "winner" in text
    assert any("strategy lora" in line for line in lines)
    scratch_epochs = (result.rows[-1].run / "recipe.json").read_text()
    assert '"epochs": 3' in scratch_epochs


@pytest.mark.slow
def test_demo_without_a_folder_leaves_ordinary_runs_in_the_history(tmp_path):
    from ftstudio.core.runs.folders import list_runs

    result = demo.run_demo(say=lambda line: None, pretrain_epochs=1, steps=2, export_formats=("state-dict",))
    names = sorted(r.read_summary()["name"] for r in list_runs())
    assert names == ["demo-finetune-full", "demo-finetune-head", "demo-finetune-lora", "demo-pretrain-digits",
                     "demo-scratch"]
    assert result.export.out_dir == result.winner.run / "export" and result.export.ok
    lineage = (result.rows[0].run / "summary.json").read_text()
    assert str(result.pretrain.resolve()) in lineage
