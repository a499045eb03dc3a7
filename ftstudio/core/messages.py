"""User-facing messages in one place, so the front doors and the tests agree on the words."""

import re

# C0 and C1 controls, DEL, bidi overrides and isolates, and the surrogates that stand for bytes that
# are not UTF-8: what a terminal obeys or cannot show, and what splits a line or a column
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with each such character spelt as an escape (``\\x1b``, ``\\u202e``; a byte that was
    not UTF-8 as ``\\xff``), except those in ``keep``."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(ord(m.group())), text)


def _escape(code: int) -> str:
    if 0xDC80 <= code <= 0xDCFF:
        code -= 0xDC00  # the byte it stands for
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# data
FOLDER_MISSING = "{path}: folder not found; check the path, or pick a dataset from `ftstudio datasets`"
FOLDER_NOT_DIR = "{path}: is a file, not a folder; give a folder with one subfolder of images per class"
FOLDER_EMPTY = "{path}: no images found; put images (PNG, JPEG, BMP, WebP) in one subfolder per class"
FOLDER_NO_CLASSES = ("{path}: images must be sorted into one subfolder per class "
                     "(e.g. {path}/cats/*.jpg, {path}/dogs/*.jpg)")
FOLDER_ONE_CLASS = ("{path}: only one class ({name!r}) has images; a classifier needs at least two "
                    "class subfolders")
LINK_INTO_DATASET = ("a link to a folder of this dataset outside its class (another class, another split or a "
                     "folder above them); its images would join this class: not followed")
CLASS_EMPTY = "class folder {name!r} has no readable images and was left out"
SKIPPED_FILES = "{count} path(s) skipped: {examples}"
IMBALANCED = "classes are imbalanced: {big!r} has {most} training images, {small!r} only {least}"
UNKNOWN_DATASET = ("{name!r} is neither a dataset in the catalog ({known}) nor an existing folder; "
                   "run `ftstudio datasets` to see the catalog")
UNKNOWN_CLASSES = "unknown class(es) {names} in --classes; this dataset has: {known}"
TOO_FEW_CLASSES = "--classes must name at least two classes (got {count})"
NOT_ENOUGH_FOR_SPLIT = ("class {name!r} has only {count} image(s): too few to hold out a validation "
                        "split; add images or set --val-split 0")
UNDER_REPRESENTED = ("under-represented class(es) with fewer than {least} training images: {classes}; "
                     "add images to them")
GROUPED_SPLIT = ("{duplicate_groups} group(s) of near-duplicate images ({images_in_groups} images) kept on one "
                 "side of the validation split; see them with `ftstudio data check {folder}`")
CHECK_CONFLICT = ("label conflict: the same picture ({kind} duplicate) is labelled {classes}: {files}; "
                  "keep it in one class")
CHECK_LEAKAGE = ("{count} duplicate group(s) span the train/validation folders (leakage: validation "
                 "scores look better than they are), e.g. {files}")
CHECK_DUPLICATES = ("{groups} duplicate group(s) ({exact} exact, {near} near) in {files} files, e.g. {example}; "
                    "training keeps each group on one side of the validation split")
CHECK_TINY_CLASS = "class {name!r} has only {count} image(s); {least} or more learn and validate better"
CHECK_SIZE_OUTLIERS = "{count} image(s) far from the typical size {typical}: {examples}"
CHECK_MODE_OUTLIERS = "{count} image(s) in a rare colour mode (most are {typical}): {examples}"
CHECK_HEALTHY = "no problems found"
CANCELLED = "cancelled"
DATASET_OFFLINE = ("{name}: not found in {root} and cannot download it (offline or no access). "
                   "Place these files there: {files} — or download them on a connected machine "
                   "with `ftstudio datasets --download {name} --root DIR` and copy DIR over")
DATASET_NOT_LOCAL = ("{name}: not found in {root}. Pass --download to fetch it (~{size}), or place "
                     "these files there: {files}")

# architecture
UNKNOWN_PRESET = "{name!r} is not a preset ({known}) nor an architecture JSON file that exists"

# training
LOSS_NOT_FINITE = ("the loss became {value} at epoch {epoch}, step {step}; training stopped and "
                   "the last good checkpoint was kept. Try a lower learning rate (--lr) or "
                   "gradient clipping")
INTERRUPTED = "interrupted; checkpoint saved — continue with: {command}"
OUT_OF_MEMORY = ("out of memory on {device} at batch size {batch_size}; try --batch-size {smaller}, or "
                 "--batch-size auto to find the largest that fits")
RESUME_DAMAGED = ("{detail}: the run cannot continue from it. Train it again from the start with "
                  "`ftstudio run {recipe} --out NEW_FOLDER`{best}")
FINETUNE_INPUT_MISMATCH = ("the source model was trained on {source} images and cannot take the {data} images "
                           "asked for ({detail}); leave out --channels and --image-size to give it images as it "
                           "was trained on")
RUN_NO_CHECKPOINT = ("{path}: this run has no model to use ({missing}: it stopped before its first epoch was "
                     "saved). Train it again with `ftstudio run {recipe} --out NEW_FOLDER`")
RESUME_NOTHING = ("{path}: no checkpoint to resume from (checkpoints/last.pt is missing: the run stopped before "
                  "its first epoch was saved). Train it again from the start with `ftstudio run {recipe} --out "
                  "NEW_FOLDER`")
RUN_BUSY = ("{path}: another ftstudio process (pid {pid}) is writing this run folder; wait for it to finish "
            "or choose another --out")
RUNS_DIR_UNWRITABLE = ("{path}: cannot create run folders there ({detail}); set FTSTUDIO_HOME to a folder you "
                       "can write to, or pass --out")
RUN_UNWRITABLE = "{path}: cannot write this run folder ({detail}); choose another --out or fix its permissions"
RESUME_RECIPE = ("{path}: recipe.json no longer matches the run's checkpoint ({detail}); undo the edit to "
                 "recipe.json, or start a new run from it with `ftstudio run {path} --out NEW_FOLDER`")
TERMINATED = "terminated (SIGTERM); checkpoint saved — continue with: {command}"
RUN_OUT_NOT_EMPTY = ("{path}: holds files that are not a run's ({names}); a run writes recipe.json, "
                     "summary.json, checkpoints/… there, so choose a new or empty folder with --out")
RUN_DELETE_BUSY = "{path}: a process is training into it; stop that run first, then delete it"
RUN_EXISTS = "{path}: already holds a run; pass --resume to continue it, or choose another --out"

# checkpoints
CHECKPOINT_UNSAFE = ("{path}: refused — not a plain weights file (it would need to run code to "
                     "load: {detail}). Only load checkpoints from people you trust")
CHECKPOINT_INVALID = "{path}: not an ftstudio checkpoint ({detail})"
MODEL_FILE_MISSING = "{path}: {what} not found"
MODEL_FILE_BAD = "{path}: cannot load this {what} ({detail})"
MODEL_FILE_TOO_BIG = ("{path}: the {what} is {size}, over the {limit} limit for model files — not loaded; if it "
                      "really is a model that large, raise the limit with {env}=GB")
MODEL_FILE_LIMIT_BAD = "{env}={value!r}: expected a size in GB greater than 0 (e.g. {env}=16)"

# fine-tuning
SOURCE_MISSING = ("{path}: not found; --from takes a run folder, a checkpoint file (.pt) or "
                  "torchvision:NAME for ImageNet weights")
PRETRAINED_MISSING = ("ImageNet weights for {name} are not on this machine. Add --download-weights to fetch "
                      "{url} (checked, into torch's cache at {path}), or pick a local .pth/.safetensors file "
                      "with --weights FILE — or pass --weights none to start from random initialisation")
PRETRAINED_MISSING_TIMM = ("pretrained weights for timm:{name} are not on this machine. Add --download-weights to "
                           "fetch them from {url} (checked, into the Hugging Face cache), or pass --weights "
                           "FILE.safetensors|FOLDER — or --weights none to start from random initialisation")
UNKNOWN_LAYER = ("fine-tune plan: no layer {layer!r}; name a layer by its index path (as the composer shows it, "
                 "e.g. 3 or 5.1) or by its name. Layers: {known}")
NO_LORA_TARGET = ("lora: the model has no Linear or Conv2d layer outside its head to adapt; "
                  "use --strategy full or head")

# export
EXPORT_NOT_WRITABLE = "{path}: cannot write the export there ({reason}); choose a folder you can write to with --out"
EXPORT_FOREIGN = ("{path}: holds files that are not an export ({name}…); an export replaces its whole folder, "
                  "so choose a new or empty folder with --out")
EXPORT_NAN = ("the model's weights contain NaN or infinity (first in {name}): the run diverged; export an earlier "
              "checkpoint (--checkpoint best) or train again with a lower learning rate")
EXPORT_UNKNOWN_FORMAT = "--format {name}: unknown format; choose from {known}"
EXPORT_TORCHSCRIPT = ("--format torchscript: torch.jit is deprecated in this PyTorch and its warnings would reach "
                      "whoever loads the file; export pt2 instead (torch.export, loads with torch.export.load)")
EXPORT_LAYER = "{format}: cannot represent layer {path} ({type}): {reason}"
EXPORT_MISMATCH = ("{format}: the reloaded file disagrees with the PyTorch model (max difference {diff:.3g} > "
                   "tolerance {tol:.1g}); the file is kept for inspection but should not be used")

# predict / try
PREDICT_SOURCE_MISSING = ("{path}: not found; give a run folder, a checkpoint file (.pt) or an export folder "
                          "(with signature.json)")
PREDICT_CLASSES_MISMATCH = ("{path}: the model gives {scores} scores per image but names {classes} classes; "
                            "re-export the run with `ftstudio export`")
EXPORT_SIGNATURE_MISMATCH = ("{path}: the model takes {model_in} images and gives {model_out} scores, but "
                             "signature.json says {sig_in} and {classes} classes; re-export the run with "
                             "`ftstudio export`")
EXPORT_REFUSES_INPUT = ("{path}: the model refused a batch of {shape} images ({detail}); re-export the run "
                        "with `ftstudio export`")
PREDICT_NO_IMAGES = "no image files found in {paths} (looked for {suffixes})"
PREDICT_NONE_READABLE = "none of the {count} file(s) could be read as an image"
EXPLAIN_NOT_WRITABLE = "--explain {path}: cannot write heat maps there ({reason}); choose a folder you can write to"
EXPORT_INT8 = ("int8, reloaded with onnxruntime: held-out accuracy {acc:.4f} vs {ref:.4f} for the float model "
               "(drop {drop:.2f} points, {n} images)")
EXPORT_INT8_DROP = ("onnx-int8: accuracy drops {drop:.2f} points, over the {limit:.0f}-point limit; "
                    "use the float ONNX file.")
EXPORT_INT8_NO_DATA = ("onnx-int8: needs the run's training images to calibrate; export from a run folder or "
                       "checkpoint whose data is available")
