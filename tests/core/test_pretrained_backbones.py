"""Pretrained backbones: the catalogue, weights from files and downloads (a server on 127.0.0.1), native
input size, timm models and LoRA on a ViT. Stand-in weight files are made here; nothing is downloaded."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
import torch

from ftstudio.cli import main
from tests.local_hub import serving_hub

TINY_DATA = ["--data", "digits", "--classes", "0,1", "--per-class", "3", "--epochs", "1", "--batch-size", "4",
             "--device", "cpu", "--strategy", "head"]


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _last_checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_torchvision_resnet18_from_a_pth_trains_at_224_and_keeps_frozen_weights(tmp_path, capsys):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    net = resnet18()
    file = tmp_path / "resnet18-standin.pth"
    torch.save(net.state_dict(), file)
    out = tmp_path / "run"
    # --bn keep: the frozen BatchNorm statistics stay the file's too (the default re-estimates them, #12)
    code, err = _run(capsys, "finetune", "--from", "torchvision:resnet18", "--weights", str(file), *TINY_DATA,
                     "--bn", "keep", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_shape"] == [3, 224, 224], summary.get("input_shape")
    assert any("224" in note and "native" in note for note in summary["notes"]), summary["notes"]
    state = _last_checkpoint(out)["model"]
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_mean"):
        assert torch.equal(state[f"0.net.{key}"], net.state_dict()[key]), key
    assert summary["lineage"]["weights_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()


@pytest.mark.slow
def test_timm_resnet18_from_safetensors_trains_at_native_size(tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(4)
    net = timm.create_model("resnet18", pretrained=False)
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(file))
    out = tmp_path / "run"
    code, err = _run(capsys, "finetune", "--from", "timm:resnet18", "--weights", str(file), *TINY_DATA,
                     "--bn", "keep", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_shape"] == [3, 224, 224]
    state = _last_checkpoint(out)["model"]
    for key in ("conv1.weight", "layer3.0.downsample.0.weight", "layer4.1.bn2.running_var"):
        assert torch.equal(state[f"0.net.{key}"], net.state_dict()[key]), key
    # a Hugging Face model folder works the same way
    from ftstudio.core.architecture.backbones import load_weights_file

    assert torch.equal(load_weights_file(tmp_path)["conv1.weight"], net.state_dict()["conv1.weight"])


@pytest.mark.slow  # timm's first import and a name search over its ~1,400 models
def test_unknown_timm_model_and_missing_weights_are_clear(capsys):
    code, err = _run(capsys, "finetune", "--from", "timm:resnet1800", *TINY_DATA)
    assert code == 2 and "not a timm model" in err and "resnet18" in err
    code, err = _run(capsys, "finetune", "--from", "timm:resnet18", *TINY_DATA)
    assert code == 2 and "--download-weights" in err and "--weights none" in err


# ------------------------------------------------------------------------------------------- downloads
class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    short: set[str] = set()  # paths that announce more bytes than they send

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if self.path in self.short else 0)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    _Files.files, _Files.short = {}, set()


def test_download_is_checked_and_atomic(server, tmp_path):
    from ftstudio.core.errors import InputError
    from ftstudio.core.architecture.weights import WeightsCheckFailed, WeightsSource, download

    _, base = server
    good = b"pretend weights " * 1000
    prefix = hashlib.sha256(good).hexdigest()[:8]
    _Files.files = {"/good.pth": good, "/bad.pth": good[:-1] + b"!", "/short.pth": good}
    _Files.short = {"/short.pth"}
    seen = []
    dest = tmp_path / "cache" / f"net-{prefix}.pth"
    path = download(WeightsSource("test", f"{base}/good.pth", dest, len(good), prefix), lambda d, t: seen.append(d))
    assert Path(path).read_bytes() == good and seen[-1] == len(good)
    for bad in ("bad", "short"):
        target = tmp_path / bad / f"net-{prefix}.pth"
        with pytest.raises(WeightsCheckFailed, match="the check failed"):
            download(WeightsSource("test", f"{base}/{bad}.pth", target, None, prefix))
        assert not target.parent.exists() or not any(target.parent.iterdir())  # nothing half-written kept
    with pytest.raises(InputError, match="404"):
        download(WeightsSource("test", f"{base}/missing.pth", tmp_path / "m" / "x.pth", None, ""))


def test_a_full_disk_during_a_download_is_named_and_leaves_no_part_file(server, tmp_path, monkeypatch):
    """A write that fails mid-download (ENOSPC) escaped as a bare OSError naming the hidden .part file."""
    import builtins
    import errno

    from ftstudio.core.architecture import weights
    from ftstudio.core.errors import InputError

    _, base = server
    _Files.files = {"/big.pth": b"w" * 300_000}
    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, block):
            self.written += len(block)
            if self.written > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(block)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(weights, "open", lambda *a, **k: Full(real_open(*a, **k)), raising=False)
    dest = tmp_path / "cache" / "net.pth"
    refusal = r"cache: cannot save the download \(the disk is full: free some space"
    with pytest.raises(InputError, match=refusal) as caught:
        weights.download(weights.WeightsSource("test", f"{base}/big.pth", dest, None, ""))
    assert "TORCH_HOME" in str(caught.value) and ".part" not in str(caught.value)
    assert list(dest.parent.iterdir()) == []  # neither the weights nor the part file


def test_corrupted_mirror_download_is_refused_and_nothing_stays_in_the_cache(server, monkeypatch, capsys):
    from ftstudio.core.paths import torch_hub_dir

    _, base = server
    _Files.files = {"/models/resnet18-f37072fd.pth": b"not the real resnet18" * 100}
    monkeypatch.setenv("FTSTUDIO_WEIGHTS_MIRROR", base)
    code, err = _run(capsys, "finetune", "--from", "torchvision:resnet18", "--download-weights", *TINY_DATA)
    assert code == 2 and "the check failed" in err and base in err, err
    cache = torch_hub_dir() / "checkpoints"
    assert not cache.exists() or not any(cache.iterdir())


def test_offline_download_fails_fast_and_says_what_to_do(monkeypatch, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("FTSTUDIO_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    code, err = _run(capsys, "backbones", "--download", "torchvision:resnet18")
    assert code == 2 and "could not reach" in err and "--weights FILE" in err


@pytest.fixture
def hub(monkeypatch):
    with serving_hub() as (handler, endpoint):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        yield handler


def test_a_corrupted_hub_download_is_refused_and_a_good_one_lands_in_the_hf_cache(hub, capsys, tmp_path):
    from safetensors.torch import save_file

    from ftstudio.core.architecture.backbones import load_weights_file
    from ftstudio.core.architecture.weights import locate
    from ftstudio.core.paths import hf_hub_cache_dir

    save_file({"conv1.weight": torch.arange(12.0).reshape(2, 6)}, str(tmp_path / "w.safetensors"))
    good = (tmp_path / "w.safetensors").read_bytes()
    resolve = "/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
    hub.published = {resolve: good}
    hub.served = {resolve: good[:-4] + b"\0\0\0\0"}  # same size, different bytes
    code = main(["backbones", "--download", "timm:resnet18"])
    err = capsys.readouterr().err
    assert code == 2 and "the check failed" in err and "sha256" in err, err
    files = [p for p in hf_hub_cache_dir().rglob("*") if not p.is_dir()]
    assert files == [] and locate("timm:resnet18").local_file() == ""  # nothing stays in the cache

    hub.served = {resolve: good[:100]}  # cut short: the published size is the check
    assert main(["backbones", "--download", "timm:resnet18"]) == 2
    assert "the check failed" in capsys.readouterr().err
    assert not [p for p in hf_hub_cache_dir().rglob("*") if not p.is_dir()]

    hub.served = {resolve: good}
    code = main(["backbones", "--download", "timm:resnet18"])
    out = capsys.readouterr().out.strip()
    assert code == 0 and out == locate("timm:resnet18").local_file()  # where timm / huggingface_hub look, too
    snapshot = Path(out)
    assert snapshot.is_symlink() and snapshot.resolve().name == hashlib.sha256(good).hexdigest()
    assert torch.equal(load_weights_file(snapshot)["conv1.weight"], torch.arange(12.0).reshape(2, 6))
    assert main(["backbones", "--download", "timm:resnet18"]) == 0  # already here: nothing fetched again


# ------------------------------------------------------------------------------------------- catalogue
def test_catalogue_lists_torchvision_and_timm_with_native_input(capsys, tmp_path):
    from torchvision.models import list_models
    import torchvision.models as tvm

    from ftstudio.core.architecture.torchvision_names import TORCHVISION_BACKBONES

    assert set(TORCHVISION_BACKBONES) <= set(list_models(module=tvm))
    code = main(["backbones", "--search", "vit_tiny_patch16_2", "--json"])
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert code == 0
    vit = entries["timm:vit_tiny_patch16_224"]
    assert vit["input_size"] == [3, 224, 224] and vit["licence"] == "apache-2.0" and vit["weights_here"] is False
    assert 5_000_000 < vit["params"] < 6_500_000  # counted on the meta device, then cached
    main(["backbones", "--search", "resnet18", "--json"])
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    tv = entries["torchvision:resnet18"]
    assert tv["params"] == 11_689_512 and tv["mean"] == [0.485, 0.456, 0.406]
    assert tv["weights_url"].endswith("resnet18-f37072fd.pth") and "timm:resnet18" in entries


def test_every_catalogued_torchvision_backbone_cuts_its_head():
    from ftstudio.core.architecture.backbones import build_on_meta

    for name in ("vit_b_16", "convnext_tiny", "regnet_x_400mf", "mobilenet_v3_small", "vgg11"):
        backbone = build_on_meta(name, 3)
        assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 1000 for m in backbone.modules()), name


# ------------------------------------------------------------------------------------------------ LoRA
def test_vit_lora_targets_attention_and_mlp_and_merges_to_the_same_outputs():
    import timm

    from ftstudio.core.architecture.modules import Backbone
    from ftstudio.core.architecture.lora import LoRALinear, add_lora, merge_lora, merge_state_dict

    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=0)
    model = torch.nn.Sequential(Backbone("timm:vit", net), torch.nn.Linear(192, 3)).eval()
    names = add_lora(model, rank=4, alpha=8, skip=(model[1],))
    assert set(names) == {f"0.net.blocks.{b}.{layer}" for b in range(2)
                          for layer in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    for m in model.modules():
        if isinstance(m, LoRALinear):
            torch.nn.init.normal_(m.lora_b, std=0.2)  # trained adapters are not zero
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        adapted = model(x)
        plain_state = merge_state_dict(model.state_dict(), {"rank": 4, "alpha": 8})
        merged = merge_lora(model)(x)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)
    assert set(plain_state) == set(model.state_dict())
