"""A small ComfyUI client: queue a text-to-image workflow, wait for its history entry."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any, Callable


def txt2img_workflow(prompt: str, *, checkpoint: str, width: int, height: int, steps: int, seed: int) -> dict[str, Any]:
    """ComfyUI's default text-to-image graph in API format."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "aistack", "images": ["8", 0]}},
    }


class ComfyError(RuntimeError):
    """ComfyUI refused or failed the prompt, or did not finish in time."""


class ComfyClient:
    """POST /prompt, then poll GET /history/<prompt_id>."""

    def __init__(self, base_url: str, timeout: float = 120.0, poll_interval: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.sleep = sleep

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def run(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """Queue ``workflow``; return {prompt_id, images} once ComfyUI reports it done."""
        queued = self._call("/prompt", {"prompt": workflow, "client_id": str(uuid.uuid4())})
        if queued.get("node_errors"):
            raise ComfyError(f"ComfyUI rejected the workflow: {queued['node_errors']}")
        prompt_id = queued["prompt_id"]
        deadline = time.monotonic() + self.timeout
        while True:
            entry = self._call(f"/history/{prompt_id}").get(prompt_id)
            if entry:
                status = entry.get("status") or {}
                if status.get("status_str") == "error":
                    raise ComfyError(f"ComfyUI failed prompt {prompt_id}: {status.get('messages')}")
                if status.get("completed", True):
                    images = [image["filename"] for output in (entry.get("outputs") or {}).values()
                              for image in output.get("images", [])]
                    return {"prompt_id": prompt_id, "images": images}
            if time.monotonic() > deadline:
                raise ComfyError(f"ComfyUI did not finish prompt {prompt_id} in {self.timeout:.0f}s")
            self.sleep(self.poll_interval)
