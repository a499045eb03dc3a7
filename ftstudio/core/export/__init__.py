"""Export a run's model to files other runtimes load — and prove each one works by reloading it.

``export_run(run_dir, formats)`` writes, next to the model files, ``signature.json`` (classes,
input shape, preprocessing as numbers) and ``model_card.md``. Every file is reloaded by its own
runtime and its outputs compared with the PyTorch model on sample inputs (two batch sizes, so a
fixed batch dimension is caught); a mismatch or a format that cannot represent a layer makes the
report not ``ok`` and says why. LoRA adapters are already merged when the checkpoint is loaded.
Importing this package is cheap; torch loads when an export starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.core import messages
from ftstudio.core.errors import InputError, os_error_reason

FORMATS = ("onnx", "pt2", "safetensors", "state-dict")  # "all": each reproduces the float logits
OFFERED = (*FORMATS, "onnx-int8")  # int8 on request: it needs the training images and approximates
SAMPLE_BATCHES = (3, 1)
TOLERANCE = 1e-4  # max |difference| allowed, relative to max(1, max |logit|)


@dataclass(frozen=True)
class ExportedFile:
    format: str
    path: Path
    sha256: str
    verified: bool
    max_abs_diff: float
    message: str
    size_bytes: int = 0
    latency_ms: float = math.nan  # one image, median of a few runs on this machine
    accuracy: float | None = None  # int8: held-out accuracy of the file, and of the float model
    float_accuracy: float | None = None


@dataclass
class ExportReport:
    out_dir: Path
    files: list[ExportedFile] = field(default_factory=list)
    signature_path: Path | None = None
    card_path: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(f.verified for f in self.files)


def check_formats(formats: list[str] | tuple[str, ...] | None) -> list[str]:
    """Validated, de-duplicated format names (InputError for unknown ones and torchscript)."""
    chosen = list(dict.fromkeys(formats or FORMATS))
    for name in chosen:
        if name == "torchscript":
            raise InputError(messages.EXPORT_TORCHSCRIPT)
        if name not in OFFERED:
            raise InputError(messages.EXPORT_UNKNOWN_FORMAT.format(name=name, known=", ".join(OFFERED)))
    return chosen


def default_out_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir).expanduser()
    return path / "export" if path.is_dir() else path.parent / f"{path.stem}-export"


def export_run(run_dir: str | Path, formats: list[str] | tuple[str, ...] | None = None,
               out_dir: str | Path | None = None, checkpoint: str = "best",
               progress: Callable[[str], None] | None = None, quant_loader=None) -> ExportReport:
    """Export a run folder (or checkpoint file) to ``formats``; see the module docstring.

    ``quant_loader(run_dir, checkpoint)`` → `quantize.QuantData` (`engine.quant_data`: the engine
    loads the run's data, a layer above this package) calibrates and measures onnx-int8."""
    from ftstudio.core.runs.folders import Run, model_from_checkpoint, resolve_checkpoint
    from ftstudio.core.training import checkpoint as ckpt_io

    chosen = check_formats(formats)
    ckpt_path = resolve_checkpoint(run_dir, checkpoint)
    ckpt = ckpt_io.load(ckpt_path)
    model = model_from_checkpoint(ckpt, ckpt_path)
    out = Path(out_dir).expanduser() if out_dir else default_out_dir(run_dir)
    ensure_writable(out)
    run_path = Path(run_dir).expanduser()
    summary = Run(run_path).read_summary() if run_path.is_dir() else {}
    which = checkpoint if ckpt_path.stem == checkpoint else ckpt_path.stem
    quant = None
    if "onnx-int8" in chosen and quant_loader is not None:
        if progress:
            progress("loading training images to calibrate int8 and held-out images to measure it")
        quant = quant_loader(run_dir, checkpoint)
    return export_model(model, ckpt, chosen, out, summary=summary, which=which, progress=progress, quant=quant)


def ensure_writable(folder: Path) -> None:
    """Prove a file can be written in ``folder`` (made for the test and removed again if it was not
    there: the export itself arrives by renaming a staging folder), or raise a clear InputError."""
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    finally:
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _unwritable(path: Path, exc: OSError) -> InputError:
    """The export cannot be written at ``path``: why, and for a full disk what to do."""
    return InputError(messages.EXPORT_NOT_WRITABLE.format(path=path, reason=os_error_reason(exc)))


def export_model(model, ckpt: dict[str, Any], formats: list[str], out: Path, *, summary: dict[str, Any] | None = None,
                 which: str = "best", progress: Callable[[str], None] | None = None, quant=None) -> ExportReport:
    """Write, reload and compare each format for an nn.Module in eval mode (``ckpt`` gives its metadata;
    ``quant``: `quantize.QuantData`, needed for onnx-int8)."""
    from ftstudio.core.export.formats import FORMAT_TABLE
    from ftstudio.core.export.staging import check_target, staged

    say = progress or (lambda message: None)
    ensure_writable(out)
    model = model.cpu().eval()
    _check_finite(model)
    check_target(out, {f.filename for f in FORMAT_TABLE.values()})
    with staged(out) as stage:  # the previous export stays whole until this one is complete
        try:
            report = _write_all(model, ckpt, formats, stage, summary, which,
                                lambda text: say(text.replace(str(stage), str(out))), quant)
        except InputError as exc:  # name the file where the user will look for it, not the staging folder
            raise InputError(str(exc).replace(str(stage), str(out))) from None
        except OSError as exc:  # the signature or the model card (a full disk): the same
            if exc.filename is not None:
                exc.filename = str(exc.filename).replace(str(stage), str(out))
            raise
    files = [dataclasses.replace(f, path=out / f.path.name) for f in report.files]
    done = ExportReport(out, files, out / "signature.json", out / "model_card.md")
    say(f"{'all files verified' if done.ok else 'SOME FILES FAILED'}; signature and model card in {out}")
    return done


def _check_finite(model) -> None:
    """NaN weights once made every format "disagree" with the model; say what is really wrong."""
    import torch

    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(messages.EXPORT_NAN.format(name=name))


def _write_all(model, ckpt: dict[str, Any], formats: list[str], out: Path, summary: dict[str, Any] | None,
               which: str, say: Callable[[str], None], quant=None) -> ExportReport:
    import torch

    from ftstudio.core.export import card
    from ftstudio.core.export.formats import FORMAT_TABLE
    from ftstudio.core.fileio import atomic_write_text

    shape = tuple(int(v) for v in ckpt["preprocess"]["input_shape"])
    gen = torch.Generator().manual_seed(0)
    samples = [torch.randn((n, *shape), generator=gen) for n in SAMPLE_BATCHES]
    with torch.no_grad():
        expected = [model(x).numpy() for x in samples]
    report = ExportReport(out)
    for name in formats:
        fmt = FORMAT_TABLE[name]
        say(f"exporting {name} → {out / fmt.filename}")
        if name == "onnx-int8":
            report.files.append(_export_int8(model, samples, out, quant, say))
        else:
            report.files.append(_export_one(fmt, model, ckpt, samples, expected, out, say))
    files = {f.format: f.path.name for f in report.files if f.verified}
    sig = card.signature(ckpt, files)
    report.signature_path = out / "signature.json"
    atomic_write_text(report.signature_path, json.dumps(sig, indent=2) + "\n")
    if any(f.format in ("safetensors", "state-dict") for f in report.files):
        atomic_write_text(out / "architecture.json", json.dumps(ckpt["architecture"], indent=2) + "\n")
    report.card_path = out / "model_card.md"
    atomic_write_text(report.card_path, card.model_card(ckpt, summary or {}, which, sig, report.files,
                                                               sum(p.numel() for p in model.parameters())))
    return report


def _export_one(fmt, model, ckpt, samples, expected, out: Path, say) -> ExportedFile:
    from ftstudio.core.export.formats import blocking_layer, first_line
    from ftstudio.core.fileio import file_sha256
    from ftstudio.core.training.checkpoint import check_model_file

    path = out / fmt.filename
    try:
        fmt.write(model, samples[0], path)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    except Exception as exc:  # noqa: BLE001 — an exporter's failure is reported, not a crash
        found = blocking_layer(model, samples[0], fmt.name)
        if found:
            text = messages.EXPORT_LAYER.format(format=fmt.name, path=found[0], type=found[1], reason=found[2])
        else:
            text = f"{fmt.name}: export failed ({first_line(exc)})"
        return ExportedFile(fmt.name, path, "", False, math.nan, text)
    say(f"verifying {fmt.name} with {fmt.runtime}")
    try:
        check_model_file(path, f"{fmt.name} file", expected_size(model))
        run = fmt.load(path, lambda state: _rebuild(ckpt, state))
        diff = max(float(abs(run(x) - y).max()) for x, y in zip(samples, expected))
    except Exception as exc:  # noqa: BLE001
        return ExportedFile(fmt.name, path, file_sha256(path), False, math.nan,
                            f"{fmt.name}: reloading with {fmt.runtime} failed ({first_line(exc)})")
    tol = TOLERANCE * max(1.0, max(float(abs(y).max()) for y in expected))
    ok = diff <= tol
    text = (f"reloaded with {fmt.runtime}; outputs match" if ok
            else messages.EXPORT_MISMATCH.format(format=fmt.name, diff=diff, tol=tol))
    return ExportedFile(fmt.name, path, file_sha256(path), ok, diff, text, path.stat().st_size,
                        _latency(run, samples[1]))


def expected_size(model) -> int:
    """The most an exported file of ``model`` should hold: twice its weights and buffers, plus 64 MB
    for the graph. Reloading the file to verify it never reads more than that."""
    tensors = [*model.parameters(), *model.buffers()]
    return 2 * sum(t.numel() * t.element_size() for t in tensors) + 64_000_000


def _latency(run, sample) -> float:
    from ftstudio.core.export.quantize import latency_ms

    try:
        return latency_ms(run, sample)
    except Exception:  # noqa: BLE001 — a timing is a nicety, never a failure
        return math.nan


def _export_int8(model, samples, out: Path, quant, say) -> ExportedFile:
    """Quantize, reload with onnxruntime, and compare held-out accuracy with the float model."""
    import torch

    from ftstudio.core.export.formats import FORMAT_TABLE, first_line, load_onnx
    from ftstudio.core.export.quantize import MAX_ACCURACY_DROP, accuracy, write_onnx_int8
    from ftstudio.core.fileio import file_sha256
    from ftstudio.core.training.checkpoint import check_model_file

    fmt = FORMAT_TABLE["onnx-int8"]
    path = out / fmt.filename
    if quant is None:
        return ExportedFile(fmt.name, path, "", False, math.nan, messages.EXPORT_INT8_NO_DATA)
    try:
        write_onnx_int8(model, samples[0], path, quant)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    except Exception as exc:  # noqa: BLE001
        return ExportedFile(fmt.name, path, "", False, math.nan, f"onnx-int8: quantization failed ({first_line(exc)})")
    say(f"verifying onnx-int8 with onnxruntime on {len(quant.y)} held-out images")
    try:
        check_model_file(path, "onnx-int8 file", expected_size(model))
        run = load_onnx(path, None)
        shapes_ok = all(run(x).shape == (len(x), model(x[:1]).shape[1]) for x in samples)
        with torch.no_grad():
            ref = accuracy(lambda a: model(torch.from_numpy(a)).numpy(), quant.x, quant.y)
        acc = accuracy(lambda a: run(torch.from_numpy(a)), quant.x, quant.y)
        diff = max(float(abs(run(x) - model(x).detach().numpy()).max()) for x in samples)
    except Exception as exc:  # noqa: BLE001
        return ExportedFile(fmt.name, path, file_sha256(path), False, math.nan,
                            f"onnx-int8: reloading with onnxruntime failed ({first_line(exc)})")
    drop = ref - acc
    ok = shapes_ok and drop <= MAX_ACCURACY_DROP
    text = messages.EXPORT_INT8.format(acc=acc, ref=ref, drop=100 * drop, n=len(quant.y))
    if not ok:
        text = messages.EXPORT_INT8_DROP.format(drop=100 * drop, limit=100 * MAX_ACCURACY_DROP) + " " + text
    return ExportedFile(fmt.name, path, file_sha256(path), ok, diff, text, path.stat().st_size,
                        _latency(run, samples[1]), acc, ref)


def _rebuild(ckpt: dict[str, Any], state: dict[str, Any]):
    from ftstudio.core.runs.folders import model_from_checkpoint

    return model_from_checkpoint({**ckpt, "model": state, "lora": None}, "export")
