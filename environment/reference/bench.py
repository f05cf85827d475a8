#!/usr/bin/python3
"""The PyTorch side of `peft bench`: the same ViT, methods and workload as the TorchSharp side, timed the same way.

Plain PyTorch (Debian's python3-torch 1.13 with OpenBLAS), no timm. The ViT has timm's structure and names;
its shape, the methods' options, batch, steps and rounds come from the command line (`peft bench` passes
them), so both sides time the same work. One training step is what the C# MethodRun does: zero_grad (in
place, as TorchSharp's does and PyTorch 1.13's default), forward, cross-entropy, backward, AdamW step
(lr 1e-3, wd 1e-4; PyTorch's multi-tensor foreach implementation, its fastest here).
Workload order, also as on the C# side: inference model, then each method (build, 2 warm-up steps), then
rounds that alternate over all of them, best round kept. Prints one JSON object (stdout or --out).
`peft bench` runs it with --serve: after the warm-ups it times one workload whenever the C# side asks, right
after timing the same one itself, so that other load on a shared machine hits both sides of a ratio alike.

bf16: a workload named NAME:bf16 is NAME under torch.autocast("cpu", torch.bfloat16) (forward and loss; the
weights, gradients and AdamW state stay float32): PyTorch's strongest CPU mode, beside our whole-model bf16 with
float32 masters (`peft bench --bf16`).

Threads: with OpenBLAS (pthreads) the matmuls run on OpenBLAS's own threads whatever torch's count is, and
torch's count (default 1 in Debian's build) drives only its own kernels; which is faster depends on the
work, so `--threads auto` times 1 and 2 torch threads first and uses the faster one, separately for
training and for inference, and reports what it measured.
"""
import argparse
import json
import math
import os
import platform
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the C# side reads this and says how to install the reference
    print(json.dumps({"error": f"PyTorch is not importable by {sys.executable}: {e}",
                      "install": "bash environment/reference/setup.sh"}))
    sys.exit(3)


# ------------------------------------------------------------------ the ViT (timm's structure and names)

class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        # Explicit attention, as timm without fused attention and as the C# Attention (1.13 has no SDPA).
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        attn = self.attn_drop(attn)
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact GELU
        self.drop1 = nn.Dropout(0.0)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["embed_dim"]
        self.norm1 = nn.LayerNorm(d, eps=c["ln_eps"])
        self.attn = Attention(d, c["num_heads"], c["qkv_bias"])
        self.ls1 = nn.Identity()
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=c["ln_eps"])
        self.mlp = Mlp(d, c["mlp_hidden"])
        self.ls2 = nn.Identity()
        self.drop_path2 = nn.Identity()

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, tokens = c["embed_dim"], (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.patch_embed = PatchEmbed(c["patch_size"], c["in_chans"], d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, d))
        self.pos_drop = nn.Dropout(0.0)
        self.norm_pre = nn.Identity()
        self.blocks = nn.Sequential(*[Block(c) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(d, eps=c["ln_eps"])
        self.head = nn.Linear(d, c["num_classes"]) if c["num_classes"] > 0 else nn.Identity()
        # timm's init; it does not change the timing, but keeps the numbers in the same range as ours.
        with torch.no_grad():
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.normal_(self.cls_token, std=1e-6)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(self.norm_pre(self.pos_drop(x))))
        return self.head(x[:, 0])


# ------------------------------------------------------------------ the methods (our defaults; see Peft/Methods/*.cs)

class LoraLinear(nn.Module):
    """LoRA on the fused qkv: linear(x) + B(A(dropout(x))) * scaling (1, the study's, unless alpha: alpha / r);
    weight and bias keep their names."""
    def __init__(self, linear, rank, dropout, alpha=None):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.lora_A = nn.Linear(linear.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, linear.out_features, bias=False)
        self.lora_dropout = nn.Dropout(dropout)
        self.scaling = 1.0 if alpha is None else alpha / rank
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        delta = self.lora_B(self.lora_A(self.lora_dropout(x)))
        return F.linear(x, self.weight, self.bias) + (delta if self.scaling == 1 else delta * self.scaling)


class SequentialAdapter(nn.Module):
    """Houlsby in an ls slot: y + s * up(dropout(relu(down(y)))), Xavier init, biases N(0, 1e-6)."""
    def __init__(self, dim, bottleneck, scale, dropout):
        super().__init__()
        self.down_proj = nn.Linear(dim, bottleneck)
        self.up_proj = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        for lin in (self.down_proj, self.up_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.normal_(lin.bias, std=1e-6)

    def forward(self, x):
        return x + self.up_proj(self.dropout(F.relu(self.down_proj(x)))) * self.scale


class PromptedBlock(nn.Module):
    """VPT-Deep: n prompts inserted after the class token before the block, removed after it."""
    def __init__(self, block, prompts, dropout):
        super().__init__()
        self.block = block
        self.prompt_embeddings = nn.Parameter(prompts)
        self.prompt_dropout = nn.Dropout(dropout)

    def forward(self, x):
        n = self.prompt_embeddings.shape[0]
        p = self.prompt_dropout(self.prompt_embeddings).unsqueeze(0).expand(x.shape[0], -1, -1)
        y = self.block(torch.cat((x[:, :1], p, x[:, 1:]), dim=1))
        return torch.cat((y[:, :1], y[:, 1 + n:]), dim=1)


def attach(vit, c, method, hp):
    """Adds the method and sets what trains: the method's tensors, the backbone tensors it selects, the head."""
    d = c["embed_dim"]
    backbone = {id(p) for p in vit.parameters()}  # by identity: wrappers keep the backbone's tensors
    selected = set()
    if method == "full":
        selected = backbone
    elif method == "lora":
        for b in vit.blocks:
            b.attn.qkv = LoraLinear(b.attn.qkv, int(hp.get("lora_bottleneck", 8)), float(hp.get("lora_dropout", 0.1)), hp.get("lora_alpha"))
    elif method == "rand_h_adapter":
        args = (int(hp.get("adapter_bottleneck", 64)), float(hp.get("adapter_scaler", 0.1)), float(hp.get("adapter_dropout", 0.1)))
        for b in vit.blocks:
            b.ls1, b.ls2 = SequentialAdapter(d, *args), SequentialAdapter(d, *args)
    elif method == "vpt_deep":
        n, v = int(hp.get("vpt_num", 10)), math.sqrt(6.0 / (c["in_chans"] * c["patch_size"] ** 2 + d))
        vit.blocks = nn.Sequential(*[PromptedBlock(b, torch.empty(n, d).uniform_(-v, v), float(hp.get("vpt_dropout", 0.1)))
                                     for b in vit.blocks])
    elif method == "bitfit":
        selected = {id(p) for name, p in vit.named_parameters() if name.endswith(".bias")}
    else:
        raise SystemExit(f"bench.py: unknown method {method!r} (known: full, lora, rand_h_adapter, vpt_deep, bitfit)")
    for name, p in vit.named_parameters():
        p.requires_grad = name.startswith("head.") or id(p) in selected or id(p) not in backbone
    return vit


def build(c, method, hp):
    torch.manual_seed(0)
    vit = VisionTransformer(c)
    return vit if method == "inference" else attach(vit, c, method, hp)


def trainable_excl_head(model):
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head."))


# ------------------------------------------------------------------ timing

class Run:
    def __init__(self, c, name, hp, batch):
        self.name, self.batch, self.best = name, batch, 0.0
        base, _, mode = name.partition(":")
        if mode not in ("", "bf16"):
            raise SystemExit(f"bench.py: workload {name!r}: the only mode is ':bf16'")
        self.bf16 = mode == "bf16"
        self.model = build(c, base, hp)
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(batch, c["in_chans"], c["image_size"], c["image_size"], generator=g)
        self.y = torch.randint(0, max(1, c["num_classes"]), (batch,), generator=g)
        self.threads = None
        if base == "inference":
            self.model.eval()
            self.opt = None
            self.trainable = None
        else:
            self.model.train()
            self.trainable = trainable_excl_head(self.model)
            params = [p for p in self.model.parameters() if p.requires_grad]
            # foreach: the same AdamW update in multi-tensor kernels; about 10 % faster full-FT steps here (mini preset).
            self.opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4, foreach=True)

    def step(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            if self.opt is None:
                with torch.no_grad():
                    self.model(self.x)
                return
            self.opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def time(self, steps):
        if self.threads:
            torch.set_num_threads(self.threads)
        t = time.perf_counter()
        for _ in range(steps):
            self.step()
        ips = steps * self.batch / (time.perf_counter() - t)
        self.best = max(self.best, ips)
        return ips


def calibrate(c, batch, log):
    """Times 1 and 2 torch threads on a full-FT step and on inference; returns the faster count for each."""
    runs = {kind: Run(c, kind, {}, batch) for kind in ("full", "inference")}
    seen = {kind: {1: 0.0, 2: 0.0} for kind in runs}
    for r in runs.values():
        r.step()
    for _ in range(2):
        for t in (1, 2):
            torch.set_num_threads(t)
            for kind, r in runs.items():
                seen[kind][t] = max(seen[kind][t], r.time(2 if kind == "full" else 4))
    del runs
    chosen = {kind: max(v, key=v.get) for kind, v in seen.items()}
    log(f"threads: full-FT step {seen['full'][1]:.0f} img/s on 1, {seen['full'][2]:.0f} on 2 -> {chosen['full']}; "
        f"inference {seen['inference'][1]:.0f} on 1, {seen['inference'][2]:.0f} on 2 -> {chosen['inference']}")
    return chosen, seen


def blas_info():
    """Which BLAS library the process really loaded (Debian's libblas.so.3 is an alternative) and its threads."""
    torch.ones(8, 8) @ torch.ones(8, 8)
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "blas" in os.path.basename(path).lower():
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    info = {"libraries": sorted(libs)}
    try:
        import ctypes
        for lib in sorted(libs):
            h = ctypes.CDLL(lib)
            if hasattr(h, "openblas_get_config"):
                h.openblas_get_config.restype = ctypes.c_char_p
                h.openblas_get_corename.restype = ctypes.c_char_p
                info["openblas"] = h.openblas_get_config().decode().strip()
                info["openblas_core"] = h.openblas_get_corename().decode()
                info["openblas_threads"] = h.openblas_get_num_threads()
                break
    except (OSError, AttributeError):
        pass
    return info


def peak_rss():
    """Peak resident memory of this process: VmHWM, as the C# side reads it. Not getrusage's ru_maxrss: Linux
    carries that over from the parent across exec, so a child of `peft bench` would report the .NET process's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="ViT shape as JSON: image_size, patch_size, in_chans, embed_dim, depth, "
                    "num_heads, mlp_hidden, num_classes, qkv_bias, ln_eps")
    ap.add_argument("--methods", default="full,lora,rand_h_adapter,vpt_deep,bitfit")
    ap.add_argument("--hp", default="{}", help='method options as JSON: {"lora": {"lora_bottleneck": 8, ...}, ...}')
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="auto", help="torch threads: auto (time 1 and 2, keep the faster) or a number")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("--serve", action="store_true", help="paired with the C# side: build and warm up, print "
                    '{"ready": true}, then time one workload per stdin line "time NAME" (answering one JSON line '
                    'each) until "finish", which prints the result; --rounds is then the caller\'s')
    a = ap.parse_args()
    c = {"ln_eps": 1e-6, "qkv_bias": True, "in_chans": 3, **json.loads(a.config)}
    hp = json.loads(a.hp)
    log = lambda s: print(f"[reference] {s}", file=sys.stderr, flush=True)
    if min(a.batch, a.steps, a.rounds) < 1:
        raise SystemExit("bench.py: --batch, --steps and --rounds must be at least 1")

    seen = None
    if a.threads == "auto":
        chosen, seen = calibrate(c, a.batch, log)
    else:
        chosen = {"full": int(a.threads), "inference": int(a.threads)}

    names = ["inference"] + [m for m in a.methods.split(",") if m and m != "inference"]
    runs = []
    for name in names:
        base = name.partition(":")[0]
        r = Run(c, name, hp.get(base, {}), a.batch)
        r.threads = chosen["inference" if base == "inference" else "full"]
        torch.set_num_threads(r.threads)
        r.step(); r.step()  # warm-up
        runs.append(r)
        log(f"{name}: built, warmed up")
    if a.serve:
        serve(runs, a.steps)
    else:
        for i in range(a.rounds):
            for r in runs:
                r.time(a.steps)
            log(f"round {i + 1}/{a.rounds}: " + ", ".join(f"{r.name} {r.best:.0f}" for r in runs))

    result = {
        "side": "pytorch",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": {"train": chosen["full"], "inference": chosen["inference"]},
        "threads_measured": seen,
        "blas": blas_info(),
        "config": c, "batch": a.batch, "steps": a.steps, "rounds": a.rounds,
        "rows": [{"name": r.name, "images_per_second": r.best, "trainable_excl_head": r.trainable} for r in runs],
        "peak_rss_bytes": peak_rss(),
    }
    text = json.dumps(result, indent=None if a.serve else 1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text, flush=True)


def serve(runs, steps):
    """Times workloads when the caller asks, so that each of ours and the same one here run seconds apart:
    on a machine shared with other work, load that changes between the two sides then hits both alike."""
    by_name = {r.name: r for r in runs}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words == ["finish"]:
            return
        if len(words) != 2 or words[0] != "time" or words[1] not in by_name:
            raise SystemExit(f"bench.py --serve: expected 'time NAME' (NAME one of {', '.join(by_name)}) or 'finish', got {line.strip()!r}")
        print(json.dumps({"name": words[1], "images_per_second": by_name[words[1]].time(steps)}), flush=True)
    raise SystemExit("bench.py --serve: stdin closed before 'finish'")


if __name__ == "__main__":
    main()
