"""``make pi-check``: the Raspberry Pi install and run, checked on emulated arm64 Debian.

No Raspberry Pi is needed. For each release (Bookworm, Trixie) this builds, once, an arm64
Debian root file system with debootstrap and qemu-user-static (cached in
``~/.cache/affectlite/pi-rootfs/<release>``), copies the checkout into it and, inside it (chroot,
run by qemu):

1. runs the install recipe of that release **as written in docs/raspberry-pi.md** (the fenced
   ``pi-recipe=<release>`` block), with two changes: no ``sudo`` (the check is root), and no
   ``python3-picamera2``, which only the Raspberry Pi archive has (unreachable here);
2. imports every device module and checks the stack: aarch64, apt's NumPy, LiteRT, no TensorFlow;
3. runs the picamera2 tests of tests/test_sources.py, whose recording double stands in for the
   camera (picamera2 and libcamera are not installed: the camera itself is not checked);
4. ``affectlite run`` on real photos (scikit-image's astronaut and coffee, matplotlib's Grace
   Hopper) and compares it with the same run on this x86 machine: every face must get the same
   label (this decides the exit status); the largest probability difference is reported;
5. ``affectlite bench --runs 3`` (it must complete; its timings are emulated, so not reported);
6. the Kivy app under Xvfb, with a screenshot.

Emulated timings are not device latency: this check reports correctness only. The summary
(``summary.json``, ``summary.md``, the screenshots) goes to
``benchmarks/results/pi-check-<date>/``. Needs root, debootstrap, qemu-user-static and network
access to deb.debian.org and PyPI. Exit status 0 only when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectlite.edge_app.bundle import resolve_bundle
from affectlite.files import atomic_dir, write_json, write_text

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "raspberry-pi.md"
CACHE = Path.home() / ".cache" / "affectlite"
RELEASES = ("bookworm", "trixie")
MIRROR = "http://deb.debian.org/debian"
# Besides the recipe's apt packages: what Raspberry Pi OS has anyway, plus Xvfb and Mesa's
# software renderer for the app's window.
BASE_PACKAGES = ("ca-certificates", "python3", "xvfb", "xauth", "libgl1-mesa-dri")
PI_ARCHIVE_ONLY = ("python3-picamera2",)
GUEST_HOME = "/root"
GUEST_WORK = f"{GUEST_HOME}/pi-check"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PROBABILITY_GOAL = 0.02
RUN_OPTIONS = ("--smoothing", "0", "--threads", "2")
EMULATION_NOTE = (
    "Run under qemu-user emulation on an x86 VM: timings are not Raspberry Pi latency and are "
    "not reported; this check covers installation and correctness only."
)


class CheckFailed(RuntimeError):
    """A step of the check failed; the message says which and why, ``data`` what it found."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


@dataclass
class Step:
    """One timed step of the check on one release."""

    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# --- the recipe in the docs -----------------------------------------------------------------
def recipe(release: str, doc: Path = DOC) -> str:
    """The ``pi-recipe=<release>`` bash block of docs/raspberry-pi.md."""
    pattern = rf"```bash pi-recipe={re.escape(release)}\n(.*?)```"
    found = re.search(pattern, doc.read_text(encoding="utf-8"), re.DOTALL)
    if not found:
        raise CheckFailed(f"{doc}: no ```bash pi-recipe={release} block; add the recipe there.")
    return found.group(1)


def guest_recipe(text: str) -> str:
    """The recipe as the check runs it: as root (no ``sudo``), without Pi-archive packages."""
    text = re.sub(r"\bsudo ", "", text)
    for package in PI_ARCHIVE_ONLY:
        text = re.sub(rf" {re.escape(package)}\b", "", text)
    return text


def apt_packages(text: str) -> list[str]:
    """The packages of the recipe's ``apt install`` command (continuation lines joined)."""
    joined = text.replace("\\\n", " ")
    found = re.search(r"apt install -y ([^\n]+)", joined)
    if not found:
        raise CheckFailed("the recipe has no `apt install -y …` line.")
    return found.group(1).split()


# --- the arm64 root file system --------------------------------------------------------------
def _tool(name: str, package: str) -> None:
    if shutil.which(name) is None:
        raise CheckFailed(f"{name} is missing: apt-get install -y {package}")


def enable_binfmt() -> None:
    """Makes the kernel run aarch64 binaries through qemu (mounting binfmt_misc if needed)."""
    _tool("debootstrap", "debootstrap")
    _tool("qemu-aarch64-static", "qemu-user-static binfmt-support")
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)


def build_rootfs(release: str, root: Path, packages: list[str], log: Path) -> None:
    """debootstrap (arm64, minbase) into ``root`` unless it is there already."""
    if root.is_dir():
        return
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = ["nice", "-n", "19", "debootstrap", "--arch=arm64", "--variant=minbase"]
    command += [f"--include={','.join(packages)}", release, str(partial), MIRROR]
    with open(log, "w") as stream:
        done = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise CheckFailed(f"debootstrap {release} failed ({done.returncode}); see {log}")
    partial.rename(root)


@contextmanager
def mounted(root: Path):
    """/proc, /dev and /dev/pts inside ``root`` while the block runs. Not /sys: the host's CPU
    list there (x86) crashes the ARM build of cpuinfo that LiteRT's XNNPACK uses (SIGSEGV); without
    it cpuinfo falls back to defaults."""
    mounts = [
        (["-t", "proc", "proc"], root / "proc"),
        (["--bind", "/dev"], root / "dev"),
        (["--bind", "/dev/pts"], root / "dev" / "pts"),
    ]
    done: list[Path] = []
    try:
        for options, target in mounts:
            subprocess.run(["mount", *options, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def guest(root: Path, script: str, log: Path, timeout: float) -> str:
    """Runs a bash script inside ``root`` as root with a clean environment; returns its output.

    Raises:
        CheckFailed: on a non-zero exit or a timeout, with the output's tail.
    """
    env = [
        f"HOME={GUEST_HOME}",
        f"PATH={GUEST_PATH}",
        "LANG=C.UTF-8",
        "DEBIAN_FRONTEND=noninteractive",
        "PIP_CERT=/etc/ssl/certs/host-ca.crt",
        "PIP_DEFAULT_TIMEOUT=180",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "PIP_ROOT_USER_ACTION=ignore",
        "KIVY_NO_ARGS=1",
        "KIVY_NO_CONSOLELOG=1",
    ]
    command = ["nice", "-n", "19", "chroot", str(root), "/usr/bin/env", "-i", *env]
    command += ["bash", "-euo", "pipefail", "-c", script]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        output = error.stdout or ""
        log.write_text(output.decode(errors="replace") if isinstance(output, bytes) else output)
        raise CheckFailed(f"timed out after {timeout:.0f} s; see {log}") from error
    output = done.stdout + done.stderr
    log.write_text(f"$ {script}\n{output}")
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise CheckFailed(f"exit {done.returncode}; see {log}:\n{tail}")
    return done.stdout


def stage(root: Path, bundle: Path, photos: Path) -> None:
    """Copies the checkout (tracked and untracked-but-not-ignored files, as a clone would have
    them), the bundle, the photos and the host's CA certificates into the guest."""
    source = root / GUEST_HOME.lstrip("/") / "affectlite" / "src"
    work = root / GUEST_WORK.lstrip("/")
    for folder in (source, work):
        shutil.rmtree(folder, ignore_errors=True)
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(bundle, work / "bundle")
    shutil.copytree(photos, work / "photos")
    shutil.copy(HOST_CA, root / "etc" / "ssl" / "certs" / "host-ca.crt")


# --- photos and runs -------------------------------------------------------------------------
def write_photos(folder: Path) -> Path:
    """Real photos as files: scikit-image's astronaut (PNG) and coffee (no face, PNG), and
    matplotlib's Grace Hopper (its own JPEG)."""
    import cv2
    from matplotlib import cbook
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name, image in (("astronaut", data.astronaut()), ("coffee", data.coffee())):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder)
    return folder


def read_run(path: Path) -> dict[str, list[dict[str, Any]]]:
    """``affectlite run`` JSON lines as {photo file name: faces}."""
    runs = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("error"):
            raise CheckFailed(f"{path}: frame {record['frame']}: {record['error']}")
        runs[Path(record["file"]).name] = record["faces"]
    return runs


def top_label(face: dict[str, Any]) -> str:
    """The most probable emotion (the runner's ``label`` may say "uncertain" instead)."""
    probabilities = face["probabilities"]
    return max(probabilities, key=probabilities.get)


def compare(x86: dict, arm: dict) -> list[dict[str, Any]]:
    """One row per photo: top labels on both sides, the largest probability difference, and
    whether every face got the same top label (faces in the runner's order)."""
    rows = []
    for photo in sorted(set(x86) | set(arm)):
        ours, theirs = x86.get(photo, []), arm.get(photo)
        diff = 0.0
        same = theirs is not None and len(ours) == len(theirs)
        for a, b in zip(ours, theirs or []):
            same = same and top_label(a) == top_label(b)
            pa, pb = a["probabilities"], b["probabilities"]
            diff = max([diff] + [abs(pa[k] - pb[k]) for k in pa])
        rows.append(
            {
                "photo": photo,
                "x86": [top_label(f) for f in ours],
                "arm64": None if theirs is None else [top_label(f) for f in theirs],
                "max_probability_diff": round(diff, 5),
                "same_labels": same,
            }
        )
    return rows


def x86_run(bundle: Path, photos: Path, out: Path) -> dict:
    """The reference: ``affectlite run`` on this machine, same photos and options."""
    jsonl = out / "run-x86.jsonl"
    command = [sys.executable, "-m", "affectlite.cli", "run", "--source", str(photos)]
    command += ["--bundle", str(bundle), "--jsonl", str(jsonl), *RUN_OPTIONS]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckFailed(f"x86 run failed: {done.stderr.strip()[-500:]}")
    return read_run(jsonl)


# --- one release -----------------------------------------------------------------------------
VENV = f"cd {GUEST_HOME}/affectlite && . .venv/bin/activate"


def release_steps() -> list[tuple[str, str, float]]:
    """(name, guest script, timeout in seconds) for each step after the install."""
    work, src = GUEST_WORK, f"{GUEST_HOME}/affectlite/src"
    run = f"affectlite run --source {work}/photos --bundle {work}/bundle "
    run += f"--jsonl {work}/run.jsonl {' '.join(RUN_OPTIONS)}"
    bench = f"affectlite bench --bundle {work}/bundle --runs 3 --warmup 1 --no-plots --no-probe "
    bench += f"--out {work}/bench"
    app = (
        "Xvfb :99 -screen 0 800x600x24 -nolisten tcp & xvfb=$!; sleep 3; "
        "DISPLAY=:99 SDL_VIDEODRIVER=x11 python -m affectlite.benchmarks.pi_guest app "
        f"--bundle {work}/bundle --source {work}/photos --out {work}/app; "
        "status=$?; kill $xvfb; exit $status"
    )
    camera = (
        "pip install -q pytest && "
        f"python -m pytest -q -p no:cacheprovider {src}/tests/test_sources.py -k picamera"
    )
    return [
        ("imports", "python -m affectlite.benchmarks.pi_guest imports", 900),
        ("camera double", camera, 1200),
        ("run", run, 1200),
        ("bench", bench, 1800),
        ("app", f"set +e; {app}", 1200),
    ]


def check_release(release: str, bundle: Path, photos: Path, x86: dict, out: Path) -> list[Step]:
    """Builds, installs and checks one release. A failed build or install ends it; the checks
    after the install are independent and all run."""
    root = CACHE / "pi-rootfs" / release
    logs = out / "logs" / release
    logs.mkdir(parents=True, exist_ok=True)
    text = recipe(release)
    packages = sorted(set(BASE_PACKAGES) | set(apt_packages(text)) - set(PI_ARCHIVE_ONLY))
    steps: list[Step] = []

    def timed(name: str, action: Callable[[], Any]) -> bool:
        step = Step(name)
        steps.append(step)
        started = time.monotonic()
        print(f"[{release}] {name} …", flush=True)
        try:
            step.data = action() or {}
            step.ok = True
        except (CheckFailed, subprocess.CalledProcessError, OSError, ValueError, KeyError) as error:
            step.detail = f"{type(error).__name__}: {error}"
            step.data = getattr(error, "data", {})
        step.seconds = round(time.monotonic() - started, 1)
        print(f"[{release}] {name}: {'ok' if step.ok else 'FAILED ' + step.detail}", end="")
        print(f" ({step.seconds} s)", flush=True)
        return step.ok

    def check(name: str, script: str, timeout: float) -> dict[str, Any]:
        log = logs / f"{name.replace(' ', '-')}.log"
        output = guest(root, f"{VENV}\n{script}", log, timeout)
        return judge(name, output, root, x86, out, release)

    if not (
        timed("rootfs", lambda: build_rootfs(release, root, packages, logs / "debootstrap.log"))
        and timed("stage", lambda: stage(root, bundle, photos))
    ):
        return steps
    with mounted(root):
        install = f"rm -rf {GUEST_HOME}/affectlite/.venv\n" + guest_recipe(text)
        if timed(
            "install", lambda: {"log": guest(root, install, logs / "install.log", 3600)[-800:]}
        ):
            for name, script, timeout in release_steps():
                timed(name, lambda n=name, s=script, t=timeout: check(n, s, t))
    return steps


def judge(name: str, output: str, root: Path, x86: dict, out: Path, release: str) -> dict:
    """Checks a step's output; raises CheckFailed when it is wrong. Returns what to report."""
    work = root / GUEST_WORK.lstrip("/")
    if name == "imports":
        stack = json.loads(output.strip().splitlines()[-1])
        problems = []
        if stack["machine"] != "aarch64":
            problems.append(f"machine is {stack['machine']}")
        if not stack["numpy_path"].startswith("/usr/lib/python3/dist-packages"):
            problems.append(f"NumPy is not apt's: {stack['numpy_path']}")
        if stack["runtime"]["name"] != "ai-edge-litert":
            problems.append(f"runtime is {stack['runtime']['name']}")
        if stack["tensorflow_installed"] or stack["tensorflow_loaded"]:
            problems.append("TensorFlow is installed or imported")
        if problems:
            raise CheckFailed("; ".join(problems))
        return stack
    if name == "run":
        shutil.copy(work / "run.jsonl", out / f"run-{release}.jsonl")
        rows = compare(x86, read_run(work / "run.jsonl"))
        if not all(row["same_labels"] for row in rows):
            differ = [row["photo"] for row in rows if not row["same_labels"]]
            raise CheckFailed(f"top labels differ from x86 on {differ}", {"rows": rows})
        return {"rows": rows}
    if name == "bench":
        bench = json.loads((work / "bench" / "bench.json").read_text())
        return {"files": sorted(p.name for p in (work / "bench").iterdir()), "keys": sorted(bench)}
    if name == "app":
        report = json.loads((work / "app" / "app.json").read_text())
        if not report.get("screenshot") or report.get("timed_out"):
            raise CheckFailed(f"no screenshot: {report}")
        shutil.copy(root / report["screenshot"].lstrip("/"), out / f"app-{release}.png")
        return report
    return {"output_tail": output.strip().splitlines()[-1:] if output.strip() else []}


# --- the summary -----------------------------------------------------------------------------
def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: steps and times per release, then the comparison table."""
    lines = [f"# pi-check {summary['date']}", "", summary["note"], ""]
    lines += [f"Bundle: `{summary['bundle']}`. Wall time: {summary['wall_s']:.0f} s. "]
    lines += ["", "| release | step | result | seconds |", "|---|---|---|---|"]
    for release, steps in summary["releases"].items():
        for step in steps:
            lines.append(
                f"| {release} | {step['name']} | {'ok' if step['ok'] else 'FAILED'} "
                f"| {step['seconds']} |"
            )
    lines.append("")
    for release, steps in summary["releases"].items():
        stack = next((s["data"] for s in steps if s["name"] == "imports" and s["ok"]), None)
        if stack:
            lines.append(
                f"* {release}: {stack['machine']}, Python {stack['python']}, NumPy "
                f"{stack['numpy']} ({stack['numpy_path']}), OpenCV {stack['opencv']}, "
                f"{stack['runtime']['name']} {stack['runtime']['version']}, no TensorFlow"
            )
    lines += ["", "| release | photo | x86 label | arm64 label | max abs. prob. diff |"]
    lines += ["|---|---|---|---|---|"]
    for release, steps in summary["releases"].items():
        for step in steps:
            for row in step["data"].get("rows", []):
                arm = (
                    "(missing)" if row["arm64"] is None else ", ".join(row["arm64"]) or "(no face)"
                )
                lines.append(
                    f"| {release} | {row['photo']} | {', '.join(row['x86']) or '(no face)'} "
                    f"| {arm} | {row['max_probability_diff']:.4f} |"
                )
    lines += ["", f"Goal for the probability difference: ≤ {PROBABILITY_GOAL} (reported only)."]
    lines += ["", f"Result: **{'PASS' if summary['passed'] else 'FAIL'}**", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pi_check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle", default="default", help="bundle folder (default: the shipped one)"
    )
    parser.add_argument("--release", action="append", choices=RELEASES, help="(default: both)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/pi-check-<date>")
    args = parser.parse_args(argv)
    bundle = resolve_bundle(args.bundle).resolve()
    if not (bundle / "bundle.json").is_file():
        print(f"pi-check: no bundle at {bundle}; pass --bundle PATH.", file=sys.stderr)
        return 2
    if platform.machine() != "x86_64" or os.geteuid() != 0:
        print("pi-check: runs on an x86_64 Linux machine as root (chroot).", file=sys.stderr)
        return 2
    date = time.strftime("%Y-%m-%d")
    out = args.out or REPO / "benchmarks" / "results" / f"pi-check-{date}"
    started = time.monotonic()
    print(EMULATION_NOTE, flush=True)
    try:
        enable_binfmt()
    except (CheckFailed, subprocess.CalledProcessError) as error:
        print(f"pi-check: {error}", file=sys.stderr)
        return 2
    work = CACHE / "pi-check"
    photos = write_photos(work / "photos")
    shutil.rmtree(work / "out", ignore_errors=True)
    (work / "out").mkdir(parents=True)
    x86 = x86_run(bundle, photos, work / "out")
    releases = {
        r: check_release(r, bundle, photos, x86, work / "out") for r in args.release or RELEASES
    }
    expected = ["rootfs", "stage", "install"] + [name for name, _, _ in release_steps()]
    passed = all(
        [s.name for s in steps] == expected and all(s.ok for s in steps)
        for steps in releases.values()
    )
    summary = {
        "date": date,
        "note": EMULATION_NOTE,
        "bundle": str(bundle),
        "wall_s": round(time.monotonic() - started, 1),
        "passed": passed,
        "releases": {r: [vars(s) for s in steps] for r, steps in releases.items()},
    }
    with atomic_dir(out, replace=True) as folder:
        write_json(folder / "summary.json", summary)
        write_text(folder / "summary.md", markdown(summary))
        for path in (work / "out").glob("*"):
            if path.is_file():
                shutil.copy(path, folder / path.name)
    print(markdown(summary))
    print(f"Written to {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
