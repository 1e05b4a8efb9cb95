"""The ``zoo`` group of ``python -m bench``: issue 11's models, loaded and run as the seed models are.

For each name: random weights of its default variant, written under its layout's PaddleClas
names with ``paddle.save``, served at the release URL (mirror layout) and pinned by md5 in the
private registry; then warm ``load_model`` against the floor and batch-1 ``Predictor`` against
dygraph. A name the checkout's registry lacks is skipped with a printed line.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from bench._common import Figure, median

# Issue 11's zoo models: warm load vs the floor and Predictor vs dygraph at batch 1. They arrive on
# main with their families; a name this checkout's registry lacks is skipped with a printed line.
ZOO = ("SwinTransformer_base_patch4_window7_224", "PPHGNetV2_B4", "ViT_base_patch16_224", "EfficientNetB4")


class ZooGroup:
    """Mixin of :class:`bench.run.Bench` (its ``worker``, ``env``, ``lib_env``, ``add``, ``log``)."""

    def _zoo_weights(self, name: str) -> Optional[Dict[str, Any]]:
        """Random weights of ``name``'s default variant served at its release URL, or None when absent."""
        info = self.worker("registry-info", name)
        if not info["present"]:
            print(f"zoo: {name} is not in this checkout's registry (or has no weights); skipped", flush=True)
            return None
        if info["container"] != "pdparams":
            print(f"zoo: {name}'s default weights are a {info['container']} archive; skipped", flush=True)
            return None
        src = self.work / "zoo" / f"{name}.pdparams"
        src.parent.mkdir(parents=True, exist_ok=True)
        made = self.worker("make-variant", name, str(src))
        host_path = info["url"].split("://", 1)[1]
        served = self.serve / host_path
        served.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, served)
        # The registry override pins our random file, as setup_weights does for the seed models.
        overrides = json.loads(self.registry.read_text())["models"] if self.registry else {}
        overrides[name] = {"weights": {info["tag"]: {"checksum": f"md5:{made['md5']}", "size": made["size"]}}}
        self.registry = self.work / "registry.json"
        self.registry.write_text(json.dumps({"schema_version": 1, "models": overrides}, indent=1))
        return dict(info, file=str(src), size=made["size"])

    def group_zoo(self) -> None:
        cache = self.work / "cache-zoo"
        env = self.env(OMP_NUM_THREADS=str(self.threads))
        for name in self.args.zoo.split(","):
            w = self._zoo_weights(name.strip())
            if w is None:
                continue
            cold = self.worker("ours-load", name, env=self.lib_env(cache))
            self.log(f"{name}: first (cold) load incl. download and conversion {cold['seconds']:.2f}s")
            ours, floor = [], []
            for i in range(self.repeats):
                ours.append(self.worker("ours-load", name, env=self.lib_env(cache))["seconds"])
                floor.append(
                    self.worker("floor", w["architecture"], w["file"], json.dumps(w["kwargs"]))["seconds"]
                )
                self.log(f"{name} load {i + 1}/{self.repeats}: ours {ours[-1]:.3f}s, floor {floor[-1]:.3f}s")
            ratio = median(ours) / median(floor)
            self.add(
                Figure(
                    "zoo",
                    f"{name} warm load vs floor (time)",
                    ratio,
                    "x",
                    "<= 1.3",
                    ratio <= 1.3,
                    median(floor),
                    {"ours_s": ours, "floor_s": floor, "weights_mib": w["size"] / 2**20},
                )
            )
            out = self.work / "export" / name
            self.worker("export", name, str(out), env=env)
            dy, pr = [], []
            for i in range(self.repeats):
                secs = str(self.args.infer_seconds)
                dy.append(self.worker("infer-dygraph", name, "1", secs, env=env)["images_per_second"])
                pr.append(self.worker("infer-predictor", str(out), "1", secs, env=env)["images_per_second"])
                self.log(
                    f"{name} batch 1 {i + 1}/{self.repeats}: dygraph {dy[-1]:.1f} img/s, Predictor {pr[-1]:.1f} img/s"
                )
            ratio = median(pr) / median(dy)
            self.add(
                Figure(
                    "zoo",
                    f"{name} batch 1: Predictor vs dygraph (img/s)",
                    ratio,
                    "x",
                    ">= 2",
                    ratio >= 2,
                    median(dy),
                    {"threads": self.threads, "dygraph_img_s": dy, "predictor_img_s": pr},
                )
            )
