"""TEST DOUBLE of ComfyUI's server (aistack test kit) -- NOT ComfyUI.

No registry package carries ComfyUI (nor PyTorch with it), so the kit's
`yanwk/comfyui-boot` image runs this Python standard-library stand-in as
ComfyUI/main.py. It speaks the subset of ComfyUI's HTTP API the collection's
roles, the sample FastAPI/Celery app and the tests use, with the real paths
and answer shapes (every route also answers under /api, as ComfyUI does):

  GET  /system_stats        {"system": {...,"argv": [...]}, "devices": [...]}
  GET  /object_info[/NODE]  a few core nodes; CheckpointLoaderSimple lists the
                            checkpoint files found in the model folders
  GET  /models[/FOLDER]     model folder names / files (models/ and extra_model_paths)
  GET  /queue               {"queue_running": [], "queue_pending": []}
  POST /prompt              {"prompt": {...}} -> {"prompt_id", "number", "node_errors"}
  GET  /history[/ID]        finished prompts with outputs and status
  GET  /view?filename=      a file from output/ (or input/, temp/)
  GET  /                    a page saying this is a test double

A prompt "runs" at once: every SaveImage node writes a 1x1 PNG to output/
as <filename_prefix>_00001_.png and so on; any other node is accepted when
its class_type is known. Command line as ComfyUI: --listen [IP[,IP]]
(no value: 0.0.0.0,::), --port, --cpu (reported in argv and as the device),
--extra-model-paths-config PATH (repeatable), --output-directory,
--input-directory; other ComfyUI options are accepted and ignored. The
answers carry "aistack_test_double" in /system_stats and the header
X-Aistack-Test-Double.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

VERSION = "@COMFYUI_VERSION@"
BANNER = "aistack test double of ComfyUI (not ComfyUI; no inference)"
BASE_DIR = Path(__file__).resolve().parent
FOLDERS = ("checkpoints", "clip", "clip_vision", "configs", "controlnet", "diffusion_models", "embeddings",
           "loras", "text_encoders", "unet", "upscale_models", "vae", "vae_approx")
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", ".gguf")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=BANNER)
    parser.add_argument("--listen", type=str, default="127.0.0.1", nargs="?", const="0.0.0.0,::")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--extra-model-paths-config", type=str, nargs="+", action="append", default=None)
    parser.add_argument("--output-directory", type=str, default=None)
    parser.add_argument("--input-directory", type=str, default=None)
    args, _unknown = parser.parse_known_args(argv)
    return args


class State:
    """Folders, prompt history and counters of one server."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.output = Path(args.output_directory or BASE_DIR / "output")
        self.input = Path(args.input_directory or BASE_DIR / "input")
        self.temp = BASE_DIR / "temp"
        self.folders: dict[str, list[Path]] = {name: [BASE_DIR / "models" / name] for name in FOLDERS}
        self.lock = threading.Lock()
        self.history: dict[str, dict[str, Any]] = {}
        self.number = 0
        config_files = [BASE_DIR / "extra_model_paths.yaml"] if (BASE_DIR / "extra_model_paths.yaml").is_file() else []
        config_files += [Path(p) for group in args.extra_model_paths_config or [] for p in group]
        for path in config_files:
            self.load_extra_paths(path)

    def load_extra_paths(self, path: Path) -> None:
        """ComfyUI's extra_model_paths.yaml: {name: {base_path, is_default, <folder>: sub|multi-line}}."""
        config = yaml.safe_load(path.read_text()) or {}
        print(f"Adding extra search paths from {path}", flush=True)
        for section in config.values():
            if not isinstance(section, dict):
                continue
            base = Path(os.path.expanduser(str(section.get("base_path", ""))))
            first = bool(section.get("is_default"))
            for folder, value in section.items():
                if folder in ("base_path", "is_default"):
                    continue
                for sub in str(value).split("\n"):
                    if sub.strip():
                        target = base / sub.strip()
                        entries = self.folders.setdefault(folder, [])
                        entries.insert(0, target) if first else entries.append(target)
                        print(f"Adding extra search path {folder} {target}", flush=True)

    def files(self, folder: str) -> list[str]:
        names = set()
        for root in self.folders.get(folder, []):
            if root.is_dir():
                for path in root.rglob("*"):
                    if path.is_file() and path.suffix in MODEL_EXTENSIONS:
                        names.add(path.relative_to(root).as_posix())
        return sorted(names)


def png_1x1() -> bytes:
    """A valid 1x1 grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def object_info(state: State) -> dict[str, Any]:
    def node(name: str, required: dict, outputs: list[str], category: str, output_node: bool = False) -> dict:
        return {"input": {"required": required}, "input_order": {"required": list(required)},
                "output": outputs, "output_is_list": [False] * len(outputs), "output_name": outputs,
                "name": name, "display_name": name, "description": "", "python_module": "nodes",
                "category": category, "output_node": output_node}
    return {
        "CheckpointLoaderSimple": node("CheckpointLoaderSimple", {"ckpt_name": [state.files("checkpoints")]},
                                       ["MODEL", "CLIP", "VAE"], "loaders"),
        "LoraLoader": node("LoraLoader", {"model": ["MODEL"], "clip": ["CLIP"], "lora_name": [state.files("loras")],
                                          "strength_model": ["FLOAT", {"default": 1.0}],
                                          "strength_clip": ["FLOAT", {"default": 1.0}]}, ["MODEL", "CLIP"], "loaders"),
        "CLIPTextEncode": node("CLIPTextEncode", {"text": ["STRING", {"multiline": True}], "clip": ["CLIP"]},
                               ["CONDITIONING"], "conditioning"),
        "EmptyLatentImage": node("EmptyLatentImage", {"width": ["INT", {"default": 512}],
                                                      "height": ["INT", {"default": 512}],
                                                      "batch_size": ["INT", {"default": 1}]}, ["LATENT"], "latent"),
        "KSampler": node("KSampler", {"model": ["MODEL"], "seed": ["INT", {"default": 0}], "steps": ["INT", {"default": 20}],
                                      "cfg": ["FLOAT", {"default": 8.0}], "sampler_name": [["euler"]],
                                      "scheduler": [["normal"]], "positive": ["CONDITIONING"],
                                      "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
                                      "denoise": ["FLOAT", {"default": 1.0}]}, ["LATENT"], "sampling"),
        "VAEDecode": node("VAEDecode", {"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"], "latent"),
        "SaveImage": node("SaveImage", {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                          [], "image", output_node=True),
    }


def run_prompt(state: State, prompt_id: str, number: int, prompt: dict, extra: dict) -> None:
    """Execute at once: SaveImage nodes write PNGs, the rest is accepted."""
    started = int(time.time() * 1000)
    outputs: dict[str, Any] = {}
    for node_id, node in sorted(prompt.items()):
        if node.get("class_type") == "SaveImage":
            prefix = str((node.get("inputs") or {}).get("filename_prefix") or "ComfyUI")
            subfolder, _, stem = prefix.rpartition("/")
            folder = state.output / subfolder
            folder.mkdir(parents=True, exist_ok=True)
            with state.lock:
                counter = len(list(folder.glob(f"{stem}_*_.png"))) + 1
                filename = f"{stem}_{counter:05d}_.png"
                (folder / filename).write_bytes(png_1x1())
            outputs[node_id] = {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}
    finished = int(time.time() * 1000)
    with state.lock:
        state.history[prompt_id] = {
            "prompt": [number, prompt_id, prompt, extra, sorted(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": [
                ["execution_start", {"prompt_id": prompt_id, "timestamp": started}],
                ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": started}],
                ["execution_success", {"prompt_id": prompt_id, "timestamp": finished}]]},
            "meta": {node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None,
                               "real_node_id": node_id} for node_id in outputs},
        }


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ComfyUI-test-double"

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Aistack-Test-Double", "comfyui")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, code: int, payload: Any) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json; charset=utf-8")

        def _route(self) -> tuple[str, dict[str, list[str]]]:
            parsed = urllib.parse.urlparse(self.path)
            path = parsed.path
            if path == "/api" or path.startswith("/api/"):
                path = path[4:] or "/"
            return path.rstrip("/") or "/", urllib.parse.parse_qs(parsed.query)

        def do_GET(self) -> None:
            path, query = self._route()
            if path == "/":
                self._send(200, f"<!doctype html><title>ComfyUI</title><p>{BANNER}</p>".encode(), "text/html")
            elif path == "/system_stats":
                self._json(200, system_stats(state))
            elif path == "/object_info":
                self._json(200, object_info(state))
            elif path.startswith("/object_info/"):
                name = path.split("/", 2)[2]
                info = object_info(state)
                self._json(200, {name: info[name]} if name in info else {})
            elif path == "/models":
                self._json(200, sorted(state.folders))
            elif path.startswith("/models/"):
                folder = path.split("/", 2)[2]
                if folder not in state.folders:
                    self._send(404, b"404: Not Found", "text/plain")
                else:
                    self._json(200, state.files(folder))
            elif path == "/queue":
                self._json(200, {"queue_running": [], "queue_pending": []})
            elif path == "/prompt":
                self._json(200, {"exec_info": {"queue_remaining": 0}})
            elif path == "/history":
                with state.lock:
                    self._json(200, dict(state.history))
            elif path.startswith("/history/"):
                prompt_id = path.split("/", 2)[2]
                with state.lock:
                    entry = state.history.get(prompt_id)
                self._json(200, {prompt_id: entry} if entry else {})
            elif path == "/view":
                self.view(query)
            else:
                self._send(404, b"404: Not Found", "text/plain")

        def view(self, query: dict[str, list[str]]) -> None:
            roots = {"output": state.output, "input": state.input, "temp": state.temp}
            root = roots.get(query.get("type", ["output"])[0], state.output)
            name = query.get("filename", [""])[0]
            target = (root / query.get("subfolder", [""])[0] / name).resolve()
            if not name or not str(target).startswith(str(root.resolve())) or not target.is_file():
                self._send(404, b"404: Not Found", "text/plain")
                return
            self._send(200, target.read_bytes(), "image/png" if target.suffix == ".png" else "application/octet-stream")

        def do_POST(self) -> None:
            path, _ = self._route()
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json(400, {"error": {"type": "invalid_prompt", "message": "invalid JSON", "details": "",
                                           "extra_info": {}}, "node_errors": {}})
                return
            if path == "/prompt":
                self.queue_prompt(body)
            elif path in ("/queue", "/history", "/interrupt", "/free"):
                self._json(200, {})
            else:
                self._send(404, b"404: Not Found", "text/plain")

        def queue_prompt(self, body: Any) -> None:
            prompt = body.get("prompt") if isinstance(body, dict) else None
            known = object_info(state)
            if not isinstance(prompt, dict) or not prompt:
                self._json(400, {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                                           "extra_info": {}}, "node_errors": {}})
                return
            unknown = {node_id: node for node_id, node in prompt.items()
                       if not isinstance(node, dict) or node.get("class_type") not in known}
            if unknown:
                node_id = next(iter(unknown))
                class_type = unknown[node_id].get("class_type") if isinstance(unknown[node_id], dict) else None
                self._json(400, {"error": {"type": "invalid_prompt",
                                           "message": f"Cannot execute because node {class_type} does not exist.",
                                           "details": f"Node ID '#{node_id}'", "extra_info": {}},
                                 "node_errors": {}})
                return
            if not any(node.get("class_type") == "SaveImage" for node in prompt.values()):
                self._json(400, {"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                                           "details": "", "extra_info": {}}, "node_errors": {}})
                return
            prompt_id = str(body.get("prompt_id") or uuid.uuid4())
            with state.lock:
                number = state.number
                state.number += 1
            extra = dict(body.get("extra_data") or {})
            if body.get("client_id"):
                extra["client_id"] = body["client_id"]
            threading.Thread(target=run_prompt, args=(state, prompt_id, number, prompt, extra), daemon=True).start()
            self._json(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})

    return Handler


def memory() -> tuple[int, int]:
    """(total, available) bytes from /proc/meminfo."""
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def system_stats(state: State) -> dict[str, Any]:
    total, free = memory()
    return {
        "system": {"os": os.name, "ram_total": total, "ram_free": free, "comfyui_version": VERSION,
                   "required_frontend_version": "", "installed_templates_version": "",
                   "required_templates_version": "", "python_version": sys.version,
                   "pytorch_version": "none (test double)", "embedded_python": False, "argv": sys.argv,
                   "aistack_test_double": BANNER},
        "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
                     "torch_vram_total": total, "torch_vram_free": free}],
    }


def main() -> int:
    args = parse_args(sys.argv[1:])
    state = State(args)
    for directory in (state.output, state.input, state.temp, BASE_DIR / "custom_nodes", BASE_DIR / "user"):
        directory.mkdir(parents=True, exist_ok=True)
    print(f"WARNING: {BANNER}", flush=True)
    print(f"Python version: {sys.version}\nComfyUI version: {VERSION} on {platform.machine()}", flush=True)
    print("Device: cpu" if args.cpu else "Device: cpu (no GPU in the test double)", flush=True)
    servers = []
    for address in [a.strip() for a in args.listen.split(",") if a.strip()]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        try:
            servers.append(server_class((address, args.port), make_handler(state)))
        except OSError as exc:
            print(f"Cannot listen on {address}:{args.port}: {exc}", flush=True)
            continue
        print(f"To see the GUI go to: http://{address}:{args.port}", flush=True)
    if not servers:
        return 1
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
