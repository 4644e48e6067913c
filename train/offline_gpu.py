"""The offline-GPU recipe: train on a GPU machine that has no package index and no TensorFlow.

The machine this fits (every limit is a parameter): one NVIDIA H200, Python 3.12 with JAX on
CUDA, OpenCV, h5py, matplotlib, tqdm and rich, but no TensorFlow, Keras, namex or optree and no
package index; the repository's working tree travels to it (tracked and untracked-not-ignored
files plus named ignored folders, 64 MiB in all) and at most 8 files of 16 MiB, 64 MB in all,
come back. Three stages, run from the repository root (docs/gpu-offline.md walks through them):

1. ``prepare`` (here): packs the dataset as uint8 48 px faces (grey: one byte a pixel) with the
   seeded hold-out split as ``val``, xz-compresses it into ``.offline/carry/``, downloads wheels
   for what the machine lacks (and builds the kit's own) into ``.offline/carry/wheels/``, checks
   that the travelling tree stays under its limit and prints the command to run there.
2. ``remote`` (there: ``python3 train/offline_gpu.py remote --out DIR``; standard library only
   until its venv exists): a venv with ``--system-site-packages``, the wheels installed with
   ``--no-index``, the data unpacked, ``affectlite train --backend jax`` run for each stage of
   the recipe (the Makefile's ``default-bundle`` by default), and the best model's weights
   written to ``DIR`` in half precision, in chunks that fit the return limits, beside its
   config.json, metrics.json and history.csv.
3. ``finish`` (here, with TensorFlow): checks the returned files, rebuilds ``best.keras`` with
   :func:`affectlite.train.model.build_model`, records that its weights are half-precision
   rounded, redraws the curves, then converts to int8 with a logit adjustment chosen on the
   hold-out faces and scores the test split once, as ``make default-bundle`` does.

``dry-run`` runs all three on this CPU with a tiny synthetic dataset, the "machine" being a
venv that sees only TensorFlow-free packages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Standard library only above: `remote` runs as a plain script before the kit is installed.

MIB = 2**20
REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".offline"
"""Ignored (see .gitignore): the pack, the carried folder, the remote venv and runs."""
MISSING = ("keras", "namex", "optree", "absl-py")
"""Keras and the dependencies of it that the machine lacks (JAX brings ml_dtypes; PyTorch
typing_extensions; matplotlib packaging and pillow; h5py, numpy and rich are there)."""
_RECIPE = (
    "--backbone compact --input-size 48 --weights none --batch-size 256 --weight-decay 0.05 "
    "--label-smoothing 0.05 --mixed-precision off"
)
STAGES = (
    f"{_RECIPE} --epochs 30 --learning-rate 0.0015 --balance none --dropout 0.4",
    f"{_RECIPE} --epochs 22 --learning-rate 0.0008 --balance sqrt --dropout 0.3",
)
"""The Makefile's default-bundle trainings; each stage after the first gets ``--init`` the
previous stage's best.keras."""
RETURNED_EXTRAS = ("weights.json", "config.json", "metrics.json", "history.csv")
ROUNDING_NOTE = (
    "The float model rebuilt from these weights is half-precision-rounded (float16): its "
    "outputs differ slightly from the model the machine trained and scored."
)


@dataclass(frozen=True)
class Limits:
    """What may travel to the machine and come back from it (bytes)."""

    tree: int = 64 * MIB
    files: int = 8
    file: int = 16 * MIB
    total: int = 64 * 10**6

    def check_return(self, sizes: dict[str, int]) -> None:
        """Raises ValueError naming the first limit that ``{name: bytes}`` breaks."""
        if len(sizes) > self.files:
            raise ValueError(f"{len(sizes)} files to return, limit {self.files}: {sorted(sizes)}")
        big = {name: size for name, size in sizes.items() if size > self.file}
        if big:
            raise ValueError(f"files over {self.file:,} bytes: {big}")
        if sum(sizes.values()) > self.total:
            raise ValueError(f"{sum(sizes.values()):,} bytes to return, limit {self.total:,}")


@dataclass
class Plan:
    """What ``prepare`` decided, carried to the machine and read back by ``finish``."""

    data: str
    format: str
    ferplus_mode: str
    holdout: float
    seed: int
    test_split: str
    pack_size: int
    stages: list[list[str]]
    wheels: list[str]
    calibration_n: int = 500
    convert_options: list[str] = field(default_factory=list)
    """More ``convert`` options (the dry run's one-epoch model is near chance: ``--allow-weak``)."""

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))


def _run(command: list[str], **options) -> None:
    """Runs ``command``, echoed; a failure stops the stage with one line (its output is above)."""
    shown = shlex.join(str(part) for part in command)
    print(f"$ {shown}", flush=True)
    result = subprocess.run([str(part) for part in command], **options)
    if result.returncode != 0:
        raise SystemExit(f"failed (exit {result.returncode}): {shown}")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def tree_files(repo: Path) -> list[str]:
    """The working tree's files that travel: tracked, and untracked but not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    names = [os.fsdecode(name) for name in listed if name]
    return [name for name in names if (repo / name).is_file() and not (repo / name).is_symlink()]


def travelling_bytes(repo: Path, carried: list[Path]) -> dict[str, int]:
    """Bytes that travel: the git working tree (tracked and untracked-not-ignored files) and
    each carried (ignored) folder."""
    tree = sum((repo / name).stat().st_size for name in tree_files(repo))
    inside = {
        folder: folder.relative_to(repo) if folder.is_relative_to(repo) else folder
        for folder in carried
    }
    folders = {str(name): _folder_bytes(folder) for folder, name in inside.items()}
    return {"working tree": tree, **folders}


def check_travel(repo: Path, carried: list[Path], limits: Limits) -> dict[str, int]:
    """Prints and returns what would travel.

    Raises:
        EnvironmentProblem: when it is over ``limits.tree``.
    """
    from affectlite.errors import EnvironmentProblem

    sizes = travelling_bytes(repo, carried)
    total = sum(sizes.values())
    shown = ", ".join(f"{name} {size / MIB:.1f} MiB" for name, size in sizes.items())
    print(f"travelling: {total / MIB:.1f} MiB ({shown}), limit {limits.tree / MIB:g} MiB")
    if total > limits.tree:
        raise EnvironmentProblem(
            f"{total / MIB:.1f} MiB would travel ({shown}), over the {limits.tree / MIB:g} MiB "
            "limit; pack fewer faces (--limit) or smaller ones (--pack-size)."
        )
    return sizes


# --- prepare (here) ---------------------------------------------------------------------------


def pack_data(plan: Plan, folder: Path, limit: int = 0, workers: int = 4) -> dict:
    """Packs the plan's train split: the seeded hold-out becomes ``val`` (model selection on
    the machine), the test split stays here, unseen until ``finish``."""
    from affectlite.train.datasets import limit_samples, load_dataset, split_holdout
    from affectlite.train.readers.packed import pack

    index = load_dataset(plan.data, plan.format, "train", ferplus_mode=plan.ferplus_mode)
    train, held = split_holdout(index, plan.holdout, plan.seed)
    indices = [limit_samples(part, limit, plan.seed) for part in (train, held)]
    source = {"root": plan.data, "format": plan.format, "ferplus_mode": plan.ferplus_mode}
    return pack(indices, folder, plan.pack_size, source=source, workers=workers)


def archive(folder: Path, path: Path) -> None:
    """``folder`` as ``path`` (``.tar.xz``), written atomically."""
    from affectlite.files import write_with

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:xz", preset=6) as tar:
            tar.add(folder, arcname="pack")

    write_with(path, write)


def download_wheels(folder: Path, python_version: str, platform: str | None) -> list[str]:
    """Wheels of :data:`MISSING` at the versions installed here, and the kit's own; returns
    the requirement names to install there."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in MISSING:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    target = ["--python-version", python_version, "--only-binary=:all:"]
    target += ["--platform", platform] if platform else []
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "download", "--no-deps", *target, "--dest", folder, *pins])
    with tempfile.TemporaryDirectory() as tree:  # the tree as it travels: no build/ leftovers
        for name in tree_files(REPO):
            (Path(tree) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, Path(tree) / name)
        _run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", folder, tree])
    return list(MISSING)


def remote_command(work: Path, out: str = '"$OUT"') -> str:
    script = (REPO / "train" / "offline_gpu.py").relative_to(REPO)
    return f"python3 {script} remote --work {os.path.relpath(work, REPO)} --out {out}"


def prepare(
    plan: Plan,
    work: Path,
    limits: Limits,
    *,
    limit: int,
    python_version: str,
    platform: str | None,
    workers: int,
) -> dict[str, int]:
    """Pack, archive, wheels, plan; returns the travelling bytes (checked against ``limits``)."""
    from affectlite.files import write_json

    check_stages(plan.stages)
    carry = work / "carry"
    manifest = pack_data(plan, work / "pack", limit, workers)
    archive(work / "pack", carry / "data.tar.xz")
    plan.wheels = download_wheels(carry / "wheels", python_version, platform)
    write_json(carry / "plan.json", asdict(plan))
    counts = {split: entry["count"] for split, entry in manifest["splits"].items()}
    print(f"packed {counts} at {plan.pack_size} px")
    return check_travel(REPO, [carry], limits)


SET_THERE = ("--data", "--format", "--split", "--out", "--backend", "--resume", "--init")
"""Options that ``remote`` gives every stage itself (``--init``: the previous stage's model)."""


def check_stages(stages: list[list[str]]) -> None:
    """Parses each stage and builds its training config as ``remote`` will run it, so that a
    refused option stops ``prepare`` here, before anything is packed or sent.

    Raises:
        SystemExit: one line naming the stage, after argparse's own message for a bad option.
    """
    import importlib
    from dataclasses import fields

    from affectlite.cli import COMMANDS, build_parser
    from affectlite.errors import InputError
    from affectlite.options import finish as finish_options
    from affectlite.train.config import TrainConfig

    parser = build_parser("train", importlib.import_module(COMMANDS["train"][0]))
    for number, stage in enumerate(stages, 1):
        shown = f"--stage {number} ({shlex.join(stage)})"
        given = [word.split("=", 1)[0] for word in stage]
        if clash := [option for option in SET_THERE if option in given]:
            raise SystemExit(f"{shown}: {', '.join(clash)} is set by `remote` itself; drop it.")
        there = ["--backend", "jax", "--data", "pack", "--format", "packed", *stage]
        try:
            args = parser.parse_args(there)
            finish_options(parser, args)
            config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
        except SystemExit:
            raise SystemExit(f"{shown}: refused by `affectlite train` (above).") from None
        except InputError as error:
            raise SystemExit(f"{shown}: {error}") from None
        if config.weights.lower() == "imagenet":
            raise SystemExit(
                f"{shown}: --weights imagenet cannot be fetched on a machine with no network; "
                "use --weights none (from scratch)."
            )


# --- remote (there; standard library until the venv exists) -----------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install(carry: Path, venv: Path, python: str, wheels: list[str]) -> Path:
    """A venv over the system's packages with the carried wheels installed offline."""
    if not venv.exists():
        _run([python, "-m", "venv", "--system-site-packages", venv])
    venv_python = _venv_python(venv)
    pip = [venv_python, "-m", "pip", "--disable-pip-version-check", "install", "--no-index"]
    found = ["--find-links", carry / "wheels"]
    kit = sorted((carry / "wheels").glob("affectlite-*.whl"))
    if not kit:
        raise SystemExit(f"{carry / 'wheels'}: no affectlite wheel; run `prepare` again.")
    _run([*pip, *found, "--no-deps", "--force-reinstall", kit[-1]])
    _run([*pip, *found, *wheels])
    return venv_python


def unpack(carry: Path, folder: Path) -> Path:
    """The carried pack, extracted under ``folder``; returns the pack folder."""
    shutil.rmtree(folder, ignore_errors=True)
    with tarfile.open(carry / "data.tar.xz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # Python < 3.11.4 (the archive is our own)
            tar.extractall(folder)
    return folder / "pack"


def train_stages(venv_python: Path, plan: Plan, data: Path, runs: Path) -> Path:
    """Runs each stage with ``affectlite train --backend jax``; returns the last run folder."""
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    previous = None
    for number, stage in enumerate(plan.stages, 1):
        run = runs / f"stage-{number}"
        shutil.rmtree(run, ignore_errors=True)
        command = [venv_python, "-m", "affectlite", "train", "--backend", "jax"]
        command += ["--data", data, "--format", "packed", "--split", "val", *stage]
        command += ["--out", run] + (["--init", previous / "best.keras"] if previous else [])
        _run(command, env=env, cwd=runs)  # not the repository root: its affectlite/ would shadow
        previous = run
    return previous


def remote(work: Path, out: Path, python: str, limits: Limits, precision: str) -> None:
    carry = work / "carry"
    plan = Plan.load(carry / "plan.json")
    venv_python = install(carry, work / "venv", python, plan.wheels)
    data = unpack(carry, work / "data")
    run = train_stages(venv_python, plan, data, work / "runs")
    command = [venv_python, "-m", "affectlite.train.offline_gpu", "export", run, out]
    command += _limit_flags(limits) + ["--precision", precision]
    _run(command, env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=work)


# --- the weights' round trip ------------------------------------------------------------------


def export_weights(run: Path, out: Path, limits: Limits, precision: str = "auto") -> dict:
    """Writes ``run``'s best model's weights into ``out`` as chunks that fit ``limits``.

    Floating-point variables are stored as float16 (``precision="auto"`` keeps float32 when it
    fits); the index ``weights.json`` lists each variable's path, shape, dtype and offset and
    each chunk's SHA-256. config.json, metrics.json and history.csv are copied beside them.
    """
    import keras
    import numpy as np

    import affectlite.train.model  # noqa: F401  registers the kit's layers for loading

    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty; the weights go into an empty folder.")
    model = keras.models.load_model(run / "best.keras", compile=False)
    arrays = [(v.path, np.asarray(keras.ops.convert_to_numpy(v.value))) for v in model.weights]
    extras = {name: (run / name).stat().st_size for name in RETURNED_EXTRAS[1:]}
    for stored in ("float32", "float16") if precision == "auto" else (precision,):
        blob, variables = _serialise(arrays, stored)
        sizes = _chunk_sizes(len(blob), limits.file)
        names = [f"weights-{i:02d}.bin" for i in range(len(sizes))]
        planned = {**dict(zip(names, sizes)), **extras, "weights.json": 64 * len(variables)}
        try:
            limits.check_return(planned)
            break
        except ValueError as error:
            problem = error
    else:
        raise SystemExit(f"{run}: the weights cannot come back within the limits: {problem}")
    out.mkdir(parents=True, exist_ok=True)
    chunks, start = [], 0
    for name, size in zip(names, sizes):
        piece = blob[start : start + size]
        (out / name).write_bytes(piece)
        chunks.append({"file": name, "bytes": size, "sha256": hashlib.sha256(piece).hexdigest()})
        start += size
    index = {
        "format_version": 1,
        "stored_precision": stored,
        "half_precision_rounded": stored == "float16",
        "note": ROUNDING_NOTE if stored == "float16" else "float32: the trained weights exactly",
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "chunks": chunks,
        "variables": variables,
    }
    (out / "weights.json").write_text(json.dumps(index, indent=1) + "\n")
    for name in RETURNED_EXTRAS[1:]:
        shutil.copyfile(run / name, out / name)
    limits.check_return({p.name: p.stat().st_size for p in out.iterdir()})
    print(f"returned {len(chunks)} weight chunk(s) ({stored}) and {len(extras) + 1} files: {out}")
    return index


def _serialise(arrays, stored: str) -> tuple[bytes, list[dict]]:
    import numpy as np

    parts, variables, offset = [], [], 0
    for path, value in arrays:
        keep = np.dtype(stored) if np.issubdtype(value.dtype, np.floating) else value.dtype
        data = np.ascontiguousarray(value.astype(keep)).tobytes()
        variables.append(
            {"path": path, "shape": list(value.shape), "dtype": keep.str, "offset": offset}
        )
        parts.append(data)
        offset += len(data)
    return b"".join(parts), variables


def _chunk_sizes(total: int, most: int) -> list[int]:
    count = max(1, -(-total // most))
    return [min(most, total - i * most) for i in range(count)]


def read_returned(folder: Path, limits: Limits) -> tuple[dict, bytes]:
    """The index and the weight bytes of a returned folder, every file checked.

    Raises:
        InputError: a file is missing, over a limit or does not match its SHA-256.
    """
    from affectlite.errors import InputError

    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    missing = [name for name in RETURNED_EXTRAS if name not in sizes]
    if missing:
        raise InputError(f"{folder}: returned files missing: {', '.join(missing)}.")
    try:
        limits.check_return(sizes)
    except ValueError as error:
        raise InputError(f"{folder}: {error}.") from None
    index = json.loads((folder / "weights.json").read_text())
    blob = bytearray()
    for chunk in index["chunks"]:
        data = (folder / chunk["file"]).read_bytes() if chunk["file"] in sizes else b""
        if hashlib.sha256(data).hexdigest() != chunk["sha256"]:
            raise InputError(f"{folder / chunk['file']}: missing or damaged (SHA-256 differs).")
        blob += data
    return index, bytes(blob)


def rebuild(returned: Path, run: Path, limits: Limits) -> Path:
    """``run/best.keras`` rebuilt from ``returned`` with ``build_model``; the run's files and
    curves beside it, and ``rebuilt.json`` saying how the weights came back."""
    import keras
    import numpy as np

    from affectlite.errors import InputError
    from affectlite.files import write_json, write_with
    from affectlite.train import plots
    from affectlite.train.config import TrainConfig
    from affectlite.train.model import build_model

    index, blob = read_returned(returned, limits)
    config = TrainConfig.load(returned / "config.json")
    model = build_model(config.backbone, config.input_size, None, config.dropout)
    variables = {v.path: v for v in model.weights}
    stored = {entry["path"]: entry for entry in index["variables"]}
    if stored.keys() != variables.keys():
        differ = sorted(stored.keys() ^ variables.keys())[:5]
        raise InputError(f"{returned}: weights do not match the {config.backbone} model: {differ}")
    for path, entry in stored.items():
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        count = int(np.prod(shape))
        value = np.frombuffer(blob, dtype, count, entry["offset"]).reshape(shape)
        if tuple(variables[path].shape) != shape:
            raise InputError(
                f"{returned}: {path} has shape {shape}, the model {variables[path].shape}."
            )
        variables[path].assign(value.astype(variables[path].dtype))
    run.mkdir(parents=True, exist_ok=True)
    for name in RETURNED_EXTRAS[1:]:
        shutil.copyfile(returned / name, run / name)
    write_with(run / "best.keras", model.save)
    plots.curves_png(
        run / "history.csv", run / "curves.png", f"{config.backbone} {config.input_size}px"
    )
    note = {key: index[key] for key in ("stored_precision", "half_precision_rounded", "note")}
    write_json(run / "rebuilt.json", {**note, "from": str(returned), "keras": keras.__version__})
    print(f"rebuilt {run / 'best.keras'}: {index['note']}")
    return run / "best.keras"


# --- finish (here) ----------------------------------------------------------------------------


def finish(returned: Path, run: Path, plan: Plan, limits: Limits) -> None:
    """Rebuilds the model, then converts and evaluates it as ``make default-bundle`` does."""
    from affectlite.cli import main
    from affectlite.errors import InputError

    model = rebuild(returned, run, limits)
    data = ["--data", plan.data, "--format", plan.format, "--ferplus-mode", plan.ferplus_mode]
    steps = [
        [
            "convert",
            "--model",
            model,
            "--mode",
            "int8",
            *data,
            "--holdout",
            plan.holdout,
            "--seed",
            plan.seed,
            "--n",
            plan.calibration_n,
            "--logit-adjust",
            *plan.convert_options,
            "--out",
            run / "int8",
        ],
        [
            "evaluate",
            "--model",
            run / "int8",
            *data,
            "--split",
            plan.test_split,
            "--json",
            run / f"{plan.test_split}-int8.json",
        ],
    ]
    for step in steps:
        argv = [str(part) for part in step]
        print("$ affectlite " + shlex.join(argv), flush=True)
        if main(argv) != 0:
            raise InputError(f"`affectlite {argv[0]}` failed; see above.")


# --- dry run (this CPU, tiny synthetic data) -------------------------------------------------

MACHINE = (
    "numpy",
    "opencv-python-headless",
    "jax",
    "jaxlib",
    "h5py",
    "matplotlib",
    "tqdm",
    "rich",
    "pillow",
    "typing_extensions",
)
"""What the GPU machine has (PyTorch's typing_extensions included); the dry run's "machine"
sees these and their dependencies, linked from this environment, and nothing else of it."""
DRY_STAGE = (
    "--backbone compact --input-size 48 --weights none --batch-size 32 --epochs 1 "
    "--mixed-precision off --balance none"
)
DRY_LIMITS = Limits(files=8, file=384 * 1024, total=2 * 10**6)
"""Scaled to the compact model (1.3 MB in float16, 2.5 MB in float32) as the defaults are to
ResNet50 (47 MB / 94 MB): float32 does not fit, float16 comes back in 4 chunks."""


def machine_site(folder: Path) -> list[str]:
    """Links :data:`MACHINE` and its dependencies into ``folder``; returns their names.

    Raises:
        RuntimeError: when that set would hold TensorFlow or Keras.
    """
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo, found = list(MACHINE), {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = dist = distribution(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    if found.keys() & {"tensorflow", "keras", "tf-keras"}:
        raise RuntimeError(f"the machine's packages would include TensorFlow: {sorted(found)}")
    folder.mkdir(parents=True, exist_ok=True)
    for dist in found.values():
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            if not (folder / top).exists():
                (folder / top).symlink_to(dist.locate_file(top))
    return sorted(found)


def _no_tensorflow(python: Path | str, env: dict) -> None:
    probe = subprocess.run([str(python), "-c", "import tensorflow"], env=env, capture_output=True)
    if probe.returncode == 0:
        raise RuntimeError(f"{python} can import TensorFlow: not a machine without it")


def write_faces(root: Path, train: int, test: int) -> Path:
    """Synthetic faces as class folders (``train/``, ``val/``), 48 px PNG."""
    import cv2

    from affectlite.edge_app.labels import LABELS
    from affectlite.train import synthetic

    for split, count, seed in (("train", train, 1), ("val", test, 2)):
        images, labels = synthetic.make_dataset(count, 48, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            path = root / split / LABELS[label] / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


def dry_run(work: Path, limits: Limits = DRY_LIMITS) -> Path:
    """prepare → remote (a venv over TensorFlow-free packages) → finish, on tiny data;
    returns the finished run folder."""
    plan = Plan(
        data=str(write_faces(work / "faces", 96, 32)),
        format="folder",
        ferplus_mode="majority",
        holdout=0.25,
        seed=0,
        test_split="val",
        pack_size=48,
        stages=[DRY_STAGE.split()],
        wheels=[],
        calibration_n=16,
        convert_options=["--allow-weak"],  # it proves the flow; one epoch is near chance
    )
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prepare(plan, work, limits, limit=0, python_version=version, platform=None, workers=2)
    python = getattr(sys, "_base_executable", sys.executable)
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(work / "machine"), PYTHONNOUSERSITE="1")
    machine_site(work / "machine")
    _no_tensorflow(python, env)
    returned = work / "returned"
    command = [python, REPO / "train" / "offline_gpu.py", "remote", "--work", work]
    _run(command + ["--out", returned, "--python", python, *_limit_flags(limits)], env=env)
    _no_tensorflow(_venv_python(work / "venv"), env)
    finish(returned, work / "run", plan, limits)
    return work / "run"


# --- command line ------------------------------------------------------------------------------


def _limit_flags(limits: Limits) -> list[str]:
    return [
        "--max-tree-mib",
        str(limits.tree / MIB),
        "--max-files",
        str(limits.files),
        "--max-file-mib",
        str(limits.file / MIB),
        "--max-total-mb",
        str(limits.total / 10**6),
    ]


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        tree=int(args.max_tree_mib * MIB),
        files=args.max_files,
        file=int(args.max_file_mib * MIB),
        total=int(args.max_total_mb * 10**6),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m affectlite.train.offline_gpu",
        description="Train on a GPU machine without a package index or TensorFlow "
        "(docs/gpu-offline.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    stages = parser.add_subparsers(dest="command", required=True)
    prep = stages.add_parser("prepare", help="pack the data, fetch wheels, check the tree (here)")
    far = stages.add_parser("remote", help="install, train, return the weights (there)")
    export = stages.add_parser("export", help="write a run's weights in chunks (run by remote)")
    fin = stages.add_parser("finish", help="rebuild best.keras, convert, evaluate (here)")
    dry = stages.add_parser("dry-run", help="all three on this CPU with tiny synthetic data")
    for sub in (prep, far, export, fin):
        sub.formatter_class = argparse.ArgumentDefaultsHelpFormatter
        sub.add_argument("--max-tree-mib", type=float, default=64.0, help="what may travel")
        sub.add_argument("--max-files", type=int, default=8, help="files that may come back")
        sub.add_argument("--max-file-mib", type=float, default=16.0, help="per file back")
        sub.add_argument("--max-total-mb", type=float, default=64.0, help="all files back")
    for sub in (prep, far, fin, dry):
        sub.add_argument("--work", type=Path, default=WORK, help="working folder (ignored)")
    prep.add_argument("--data", required=True, help="dataset root (e.g. FER+)")
    prep.add_argument("--format", default="ferplus", help="dataset layout")
    prep.add_argument("--ferplus-mode", default="probability", help="FER+ labels")
    prep.add_argument("--holdout", type=float, default=0.1, help="validation share of train")
    prep.add_argument("--seed", type=int, default=0, help="hold-out seed")
    prep.add_argument("--test-split", default="val", help="scored once by finish")
    prep.add_argument("--pack-size", type=int, default=48, help="packed face side, px")
    prep.add_argument("--limit", type=int, default=0, help="faces per packed split (0: all)")
    prep.add_argument(
        "--stage",
        action="append",
        help="`affectlite train` options of one "
        "stage (repeatable; default: the Makefile's default-bundle stages)",
    )
    prep.add_argument("--n", type=int, default=500, help="representative images for int8")
    prep.add_argument("--python-version", default="3.12", help="the machine's Python")
    prep.add_argument("--platform", help="the machine's wheel platform (default: this one's)")
    prep.add_argument("--workers", type=int, default=4, help="decoding threads")
    far.add_argument("--out", type=Path, required=True, help="folder that comes back")
    far.add_argument("--python", default=sys.executable, help="the machine's Python")
    for sub in (far, export):
        sub.add_argument("--precision", default="auto", choices=("auto", "float16", "float32"))
    export.add_argument("run", type=Path)
    export.add_argument("out", type=Path)
    fin.add_argument("returned", type=Path, help="the folder that came back")
    fin.add_argument("--run", type=Path, help="run folder to write (default runs/gpu-<time>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "remote":
        remote(args.work, args.out, args.python, _limits(args), args.precision)
    elif args.command == "export":
        export_weights(args.run, args.out, _limits(args), args.precision)
    elif args.command == "prepare":
        plan = Plan(
            args.data,
            args.format,
            args.ferplus_mode,
            args.holdout,
            args.seed,
            args.test_split,
            args.pack_size,
            [shlex.split(stage) for stage in args.stage or STAGES],
            [],
            args.n,
        )
        prepare(
            plan,
            args.work,
            _limits(args),
            limit=args.limit,
            python_version=args.python_version,
            platform=args.platform,
            workers=args.workers,
        )
        carry = os.path.relpath(args.work / "carry", REPO)
        print(
            f"\nOn the GPU machine, from the repository root (carry {carry}):\n"
            f"  {remote_command(args.work)}\nThen here:\n"
            f"  python -m affectlite.train.offline_gpu finish RETURNED_FOLDER"
        )
    elif args.command == "finish":
        import time

        run = args.run or Path("runs") / f"gpu-{time.strftime('%Y%m%d-%H%M%S')}"
        finish(args.returned, run, Plan.load(args.work / "carry" / "plan.json"), _limits(args))
    else:
        work = args.work if args.work != WORK else Path(tempfile.mkdtemp(prefix="offline-gpu-"))
        print(f"dry run finished: {dry_run(work)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
