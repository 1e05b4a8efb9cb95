"""The paddlehub_cls benchmark suite: ``python -m bench`` or ``python bench/run.py``.

Every figure is a ratio against a baseline measured in the same run (``list`` time is the one
absolute figure), each sample in a fresh process, the median of ``--repeats`` samples. Weights
are random but written in the real formats (paddle.vision's ``paddle.save``), served by a
127.0.0.1 server started here, and pinned by md5 in a private registry file, so the library
verifies them as it would the release files. Nothing touches the internet or the user's cache.

Results: one table on stdout and ``bench/results.json``. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Figure, median  # noqa: E402
from bench._server import LoopbackServer  # noqa: E402
from bench._zoo import ZOO, ZooGroup  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "_worker.py"
RESULTS = Path(__file__).resolve().parent / "results.json"
GROUPS = ("cli", "load", "cold8", "download", "inference", "zoo")
# The release URLs the registry names; the mirror serves our random files at HOST/PATH of these.
RELEASE = {
    "ResNet50": ("resnet50", "https://paddle-hapi.bj.bcebos.com/models/resnet50.pdparams"),
    "VGG16": ("vgg16", "https://paddle-hapi.bj.bcebos.com/models/vgg16.pdparams"),
}


class BenchError(RuntimeError):
    """A worker failed; the message holds its stderr."""


def machine() -> Dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(int(mem) / 2**20, 1)
    except (OSError, StopIteration):
        mem_gib = None
    try:
        from importlib.metadata import version

        paddle_version = version("paddlepaddle")
    except Exception:  # noqa: BLE001 - a missing distribution only blanks the field
        paddle_version = None
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except OSError:
        commit = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paddlepaddle": paddle_version,
        "commit": commit,
        "loadavg_start": os.getloadavg(),
    }


class Bench(ZooGroup):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repeats = args.repeats
        self.threads = args.threads or (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )
        self.work = Path(tempfile.mkdtemp(prefix="paddlehub_cls-bench-", dir=args.workdir))
        self.serve = self.work / "serve"
        self.serve.mkdir()
        self.figures: List[Figure] = []
        self.server = LoopbackServer(self.serve)
        self.weights: Dict[str, Dict[str, Any]] = {}
        self.registry: Optional[Path] = None  # the private registry that pins the random files

    # ------------------------------------------------------------------ processes
    def env(self, **extra: str) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PADDLEHUB_CLS_")}
        path = self.args.pythonpath or str(REPO)
        env.update(
            PYTHONPATH=os.pathsep.join([path, str(REPO)]),
            OMP_NUM_THREADS="1",
            HOME=str(self.work / "home"),  # paddle.vision's WEIGHTS_HOME lives under ~/.cache
            XDG_CACHE_HOME=str(self.work / "home" / ".cache"),
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PADDLEHUB_CLS_DISABLE_PROGRESS="1",
            PYTHONWARNINGS="ignore",
        )
        env.update(extra)
        return env

    def worker(
        self, *argv: str, env: Optional[Dict[str, str]] = None, timeout: float = 1800
    ) -> Dict[str, Any]:
        res = subprocess.run(
            [sys.executable, str(WORKER), *argv],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if res.returncode != 0 or not lines:
            raise BenchError(f"worker {' '.join(argv)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
        return json.loads(lines[-1])

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def add(self, fig: Figure) -> None:
        self.figures.append(fig)
        mark = "n/a" if fig.ok is None else ("PASS" if fig.ok else "FAIL")
        self.log(f"{fig.name}: {fig.value:.3g} {fig.unit} (target {fig.target}) {mark}")

    # ------------------------------------------------------------------ setup
    def setup_weights(self) -> None:
        if self.weights:
            return
        self.log("writing random resnet50/vgg16 weights with paddle.vision + paddle.save")
        made = self.worker("make-weights", str(self.work / "weights"))
        overrides: Dict[str, Any] = {}
        vision_home = self.work / "home" / ".cache" / "paddle" / "hapi" / "weights"
        vision_home.mkdir(parents=True, exist_ok=True)
        for name, (arch, url) in RELEASE.items():
            src = self.work / "weights" / f"{arch}.pdparams"
            host_path = url.split("://", 1)[1]
            served = self.serve / host_path
            served.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, served)
            os.link(src, vision_home / f"{arch}.pdparams")  # "already downloaded" for paddle.vision
            info = made[arch]
            overrides[name] = {
                "weights": {"paddle_vision": {"checksum": f"md5:{info['md5']}", "size": info["size"]}}
            }
            self.weights[name] = dict(info, arch=arch, file=str(src), url=url, path="/" + host_path)
        self.registry = self.work / "registry.json"
        self.registry.write_text(json.dumps({"schema_version": 1, "models": overrides}, indent=1))

    def lib_env(self, cache: Path, **extra: str) -> Dict[str, str]:
        return self.env(
            PADDLEHUB_CLS_HOME=str(cache),
            PADDLEHUB_CLS_REGISTRY=str(self.registry),
            PADDLEHUB_CLS_MIRROR=self.server.base_url,
            **extra,
        )

    # ------------------------------------------------------------------ groups
    def group_cli(self) -> None:
        cpu: List[float] = []

        def wall(argv: List[str]) -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, env=self.env(), capture_output=True, check=True, timeout=120)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            return seconds

        wall([sys.executable, "-m", "paddlehub_cls", "list"])  # writes any stale .pyc files first
        base, ours, ours_cpu = [], [], []
        for _ in range(self.repeats):
            base.append(wall([sys.executable, "-c", "pass"]))
            ours.append(wall([sys.executable, "-m", "paddlehub_cls", "list"]))
            ours_cpu.append(cpu[-1])
        value = median(ours)
        self.add(
            Figure(
                "cli",
                "`paddlehub-cls list` wall time",
                value,
                "s",
                "< 0.5 s",
                value < 0.5,
                median(base),
                {"samples": ours, "cpu_s": ours_cpu, "python_startup_samples": base},
            )
        )
        self.add(
            Figure("cli", "  same, CPU time (user+sys; info)", median(ours_cpu), "s", "info", None, None, {})
        )

    def group_load(self) -> None:
        self.setup_weights()
        cache = self.work / "cache-load"
        for name in RELEASE:
            cold = self.worker("ours-load", name, env=self.lib_env(cache))
            self.log(f"{name}: first (cold) load incl. download and conversion {cold['seconds']:.2f}s")
        for name, w in self.weights.items():
            ours, vision, floor = [], [], []
            for i in range(self.repeats):
                ours.append(self.worker("ours-load", name, env=self.lib_env(cache)))
                vision.append(
                    self.worker("vision-load", w["arch"], self.server.base_url + w["path"], w["md5"])
                )
                floor.append(self.worker("floor", w["arch"], w["file"]))
                self.log(
                    f"{name} load {i + 1}/{self.repeats}: ours {ours[-1]['seconds']:.3f}s, "
                    f"paddle.vision {vision[-1]['seconds']:.3f}s, floor {floor[-1]['seconds']:.3f}s"
                )
            t_ours, t_vis, t_floor = (median([s["seconds"] for s in xs]) for xs in (ours, vision, floor))
            m_ours, m_vis = (median([s["peak_added_kb"] / 1024 for s in xs]) for xs in (ours, vision))
            detail = {
                "ours_s": t_ours,
                "vision_s": t_vis,
                "floor_s": t_floor,
                "ours_peak_mib": m_ours,
                "vision_peak_mib": m_vis,
                "weights_mib": w["size"] / 2**20,
                "samples": {"ours": ours, "vision": vision, "floor": floor},
            }
            self.add(
                Figure(
                    "load",
                    f"{name} warm load vs paddle.vision (time)",
                    t_ours / t_vis,
                    "x",
                    "<= 0.35",
                    t_ours / t_vis <= 0.35,
                    t_vis,
                    detail,
                )
            )
            self.add(
                Figure(
                    "load",
                    f"{name} warm load vs floor (time)",
                    t_ours / t_floor,
                    "x",
                    "<= 1.3",
                    t_ours / t_floor <= 1.3,
                    t_floor,
                    {"ours_s": t_ours, "floor_s": t_floor},
                )
            )
            self.add(
                Figure(
                    "load",
                    f"{name} peak RSS added vs paddle.vision",
                    m_ours / m_vis,
                    "x",
                    "<= 0.7",
                    m_ours / m_vis <= 0.7,
                    m_vis,
                    {"ours_mib": m_ours, "vision_mib": m_vis},
                )
            )
            f_ours, f_vis = (median([s["forward_added_kb"] / 1024 for s in xs]) for xs in (ours, vision))
            self.add(
                Figure(
                    "load",
                    f"  {name} RSS added after load + 1 forward (info)",
                    f_ours / f_vis,
                    "x",
                    "info",
                    None,
                    f_vis,
                    {"ours_mib": f_ours, "vision_mib": f_vis},
                )
            )

    def _cold_run(self, n: int, cache: Path) -> float:
        go = self.work / f"go-{n}-{time.monotonic_ns()}"
        env = self.lib_env(cache)
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), "cold-wait", "ResNet50", str(go)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        for p in procs:  # every process has imported paddle and paddlehub_cls
            if p.stdout.readline().strip() != "ready":
                raise BenchError(f"cold-start worker died before the start: {p.communicate()[1][-3000:]}")
        start = time.time()
        go.touch()
        ends = []
        for p in procs:
            out, err = p.communicate(timeout=1800)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if p.returncode != 0 or not lines:
                raise BenchError(f"cold-start worker failed:\n{err[-3000:]}")
            ends.append(json.loads(lines[-1])["end"])
        return max(ends) - start

    def group_cold8(self) -> None:
        self.setup_weights()
        path = self.weights["ResNet50"]["path"]
        one, eight, bodies = [], [], []
        for i in range(self.repeats):
            one.append(self._cold_run(1, self.work / f"cache-cold1-{i}"))
            self.server.reset()
            eight.append(self._cold_run(8, self.work / f"cache-cold8-{i}"))
            bodies.append(self.server.bodies(path))
            self.log(
                f"cold start {i + 1}/{self.repeats}: 1 process {one[-1]:.2f}s, 8 processes {eight[-1]:.2f}s, "
                f"{bodies[-1]} bodies served"
            )
            for d in (self.work / f"cache-cold1-{i}", self.work / f"cache-cold8-{i}"):
                shutil.rmtree(d, ignore_errors=True)
        self.add(
            Figure(
                "cold8",
                "8 concurrent cold starts: bodies served",
                max(bodies),
                "bodies",
                "== 1",
                max(bodies) == 1,
                None,
                {"per_repeat": bodies},
            )
        )
        ratio = median(eight) / median(one)
        self.add(
            Figure(
                "cold8",
                "8 concurrent cold starts vs 1 (wall)",
                ratio,
                "x",
                "<= 1.5",
                ratio <= 1.5,
                median(one),
                {"one_s": one, "eight_s": eight},
            )
        )

    def group_download(self) -> None:
        size = self.args.download_mb << 20
        big = self.serve / "downloads" / "big.bin"
        big.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"writing a {self.args.download_mb} MiB random file")
        sha = hashlib.sha256()
        with open(big, "wb") as f:
            for _ in range(size >> 24):
                chunk = os.urandom(1 << 24)
                f.write(chunk)
                sha.update(chunk)
        digest = sha.hexdigest()
        url = self.server.base_url + "/downloads/big.bin"
        out = self.work / "curl.bin"
        curl, curl_sum, ours = [], [], []
        try:
            for i in range(self.repeats):
                start = time.perf_counter()
                subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True, timeout=600)
                curl.append(time.perf_counter() - start)
                subprocess.run(["sha256sum", str(out)], check=True, capture_output=True, timeout=600)
                curl_sum.append(time.perf_counter() - start)
                out.unlink()
                cache = self.work / f"cache-dl-{i}"
                res = self.worker("fetch", url, digest, str(cache), env=self.env())
                ours.append(res["seconds"])
                shutil.rmtree(cache, ignore_errors=True)
                self.log(
                    f"download {i + 1}/{self.repeats}: curl {curl[-1]:.2f}s, curl+sha256sum "
                    f"{curl_sum[-1]:.2f}s, paddlehub_cls {ours[-1]:.2f}s"
                )
        finally:
            big.unlink()
            if out.exists():
                out.unlink()
        mb = size / 2**20
        ratio = median(curl) / median(ours)
        detail = {
            "mib": mb,
            "curl_mib_s": mb / median(curl),
            "ours_mib_s": mb / median(ours),
            "curl_sha256sum_mib_s": mb / median(curl_sum),
            "curl_s": curl,
            "curl_sha256sum_s": curl_sum,
            "ours_s": ours,
        }
        self.add(
            Figure(
                "download",
                f"cold download {self.args.download_mb} MiB vs curl (throughput)",
                ratio,
                "x",
                ">= 0.8",
                ratio >= 0.8,
                mb / median(curl),
                detail,
            )
        )
        ratio2 = median(curl_sum) / median(ours)
        self.add(
            Figure(
                "download",
                "  same vs curl + sha256sum (info)",
                ratio2,
                "x",
                "info",
                None,
                mb / median(curl_sum),
                {},
            )
        )

    def group_inference(self) -> None:
        env = self.env(OMP_NUM_THREADS=str(self.threads))
        for name in ("ResNet50", "MobileNetV1"):
            out = self.work / "export" / name
            self.worker("export", name, str(out), env=env)
            for batch in (1, 8):
                dy, pr = [], []
                for i in range(self.repeats):
                    secs = str(self.args.infer_seconds)
                    dy.append(
                        self.worker("infer-dygraph", name, str(batch), secs, env=env)["images_per_second"]
                    )
                    pr.append(
                        self.worker("infer-predictor", str(out), str(batch), secs, env=env)[
                            "images_per_second"
                        ]
                    )
                    self.log(
                        f"{name} batch {batch} {i + 1}/{self.repeats}: dygraph {dy[-1]:.1f} img/s, "
                        f"Predictor {pr[-1]:.1f} img/s"
                    )
                ratio = median(pr) / median(dy)
                self.add(
                    Figure(
                        "inference",
                        f"{name} batch {batch}: Predictor vs dygraph (img/s)",
                        ratio,
                        "x",
                        ">= 4",
                        ratio >= 4,
                        median(dy),
                        {"threads": self.threads, "dygraph_img_s": dy, "predictor_img_s": pr},
                    )
                )

    # ------------------------------------------------------------------ output
    def table(self) -> str:
        rows = [("figure", "value", "baseline", "target", "result")]
        for f in self.figures:
            base = "" if f.baseline is None else f"{f.baseline:.3g}"
            rows.append(
                (
                    f.name,
                    f"{f.value:.3g} {f.unit}",
                    base,
                    f.target,
                    "info" if f.ok is None else ("pass" if f.ok else "FAIL"),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups to run (default all: {','.join(GROUPS)})",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="fresh-process samples per figure (median; >= 1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="inference threads, the same on both sides (default 1: stable on a shared machine; 0: all CPUs)",
    )
    parser.add_argument("--download-mb", type=int, default=500, help="size of the download test file (MiB)")
    parser.add_argument("--infer-seconds", type=float, default=3.0, help="timed seconds per inference sample")
    parser.add_argument(
        "--zoo",
        default=",".join(ZOO),
        help=f"comma-separated models of the zoo group (default: {','.join(ZOO)})",
    )
    parser.add_argument("--workdir", default=None, help="where temporary files go (default: system temp)")
    parser.add_argument(
        "--pythonpath", default=None, help="import paddlehub_cls from here (default: this checkout)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary files")
    parser.add_argument("--json", default=str(RESULTS), help="results file (default bench/results.json)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or args.repeats < 1:
        parser.error(
            f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}"
            if unknown
            else "--repeats must be >= 1"
        )
    info = machine()
    bench = Bench(args)
    runners: Dict[str, Callable[[], None]] = {g: getattr(bench, f"group_{g}") for g in GROUPS}
    started = time.time()
    try:
        with bench.server:
            for g in groups:
                bench.log(f"group {g}")
                runners[g]()
    finally:
        if not args.keep:
            shutil.rmtree(bench.work, ignore_errors=True)
    info["loadavg_end"] = os.getloadavg()
    info["seconds"] = round(time.time() - started, 1)
    info["repeats"] = args.repeats
    info["threads"] = bench.threads
    table = bench.table()
    print(table)
    Path(args.json).write_text(
        json.dumps(
            {"machine": info, "figures": [asdict(f) for f in bench.figures], "table": table},
            indent=1,
            default=str,
        )
    )
    print(
        f"\nmachine: {info['cpu']}, {info['cpus_usable']} CPUs, {info['memory_gib']} GiB; load average "
        f"{info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}; results in {args.json}"
    )
    return 0 if all(f.ok is not False for f in bench.figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
