#!/usr/bin/python3
"""PyTorch's side of TorchInteropTests: reads what the workbench writes, writes what it reads.

The ViT is environment/reference/bench.py's (timm's structure and names, plain PyTorch, no timm).
  check --weights W --io IO : torch.load(W, weights_only=True) (or a .safetensors file), load_state_dict(strict=True),
                              logits on IO's "x" against IO's "logits" (both written by the workbench); prints JSON
  make --weights W [--io IO]: a seeded model, torch.save(state_dict, W); with --io also {"x", "logits"} to IO
  dump --file F             : torch.load(F, weights_only=True) as JSON: dtype, shape, values of every tensor
"""
import argparse
import importlib.util
import json
import struct
import sys

import torch


def vit_class(bench):
    spec = importlib.util.spec_from_file_location("bench", bench)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.VisionTransformer


def load_weights(path):
    if not path.endswith(".safetensors"):
        return torch.load(path, weights_only=True)
    # A minimal safetensors reader (Debian ships no safetensors package): header, then raw little-endian bytes.
    dtypes = {"F32": torch.float32, "F16": torch.float16, "F64": torch.float64, "BF16": torch.bfloat16, "I64": torch.int64}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[b:e]), dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["check", "make", "dump"])
    ap.add_argument("--bench")
    ap.add_argument("--config")
    ap.add_argument("--weights")
    ap.add_argument("--io")
    ap.add_argument("--file")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "dump":
        sd = torch.load(a.file, weights_only=True)
        print(json.dumps({k: {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                              "values": t.float().flatten().tolist()} for k, t in sd.items()}))
        return
    c = {"ln_eps": 1e-6, "qkv_bias": True, "in_chans": 3, **json.loads(a.config)}
    torch.manual_seed(a.seed)
    model = vit_class(a.bench)(c).eval()
    if a.cmd == "check":
        missing, unexpected = model.load_state_dict(load_weights(a.weights), strict=True)
        io = torch.load(a.io, weights_only=True)
        with torch.no_grad():
            logits = model(io["x"])
        print(json.dumps({"max_abs_diff": (logits - io["logits"]).abs().max().item(), "shape": list(logits.shape)}))
    else:
        with torch.no_grad():  # non-zero biases and head, so every tensor shows in the logits
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        torch.save(model.state_dict(), a.weights)
        if a.io:
            x = torch.randn(2, c["in_chans"], c["image_size"], c["image_size"])
            with torch.no_grad():
                torch.save({"x": x, "logits": model(x)}, a.io)


if __name__ == "__main__":
    main()
