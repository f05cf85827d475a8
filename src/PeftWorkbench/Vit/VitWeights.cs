using System.Text.Json;
using System.Text.RegularExpressions;
using PeftWorkbench.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>How <see cref="VitWeights.Load"/> treats the differences it is allowed to bridge.</summary>
public sealed record VitLoadOptions
{
    /// <summary>Resample pos_embed (bicubic) when the checkpoint's patch grid differs from the model's.</summary>
    public bool ResamplePosEmbed { get; init; } = true;
    /// <summary>Antialias the resampling, as timm &gt;= 0.9's resample_abs_pos_embed does; off matches
    /// F.interpolate(mode='bicubic', align_corners=False) as in timm's original resize_pos_embed.</summary>
    public bool PosEmbedAntialias { get; init; }
    /// <summary>Leave the model's head as it is when the checkpoint's has another class count (else: a mis-shaped error).</summary>
    public bool SkipMismatchedHead { get; init; } = true;
    /// <summary>For PyTorch checkpoints: the key of the nested state dict (default: the root, else state_dict/model/module).</summary>
    public string? StateDictKey { get; init; }
}

/// <summary>What a load did: tensors written, pos_embed resampled, parts skipped, and why.</summary>
public sealed record VitLoadReport(string Path, string Format, string Model, int Loaded,
    IReadOnlyList<string> Resampled, IReadOnlyList<string> Skipped, IReadOnlyList<string> Notes)
{
    public override string ToString()
    {
        var lines = new List<string> { $"loaded {Loaded} tensors into {Model} from {Path} ({Format})" };
        lines.AddRange(Resampled.Select(r => "  resampled: " + r));
        lines.AddRange(Skipped.Select(s => "  " + s));
        lines.AddRange(Notes.Select(n => "  note: " + n));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>A checkpoint that does not fit the model: every missing, unexpected and mis-shaped key, and the file.</summary>
public sealed class CheckpointMismatchException(string path, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> mismatched)
    : CheckpointException(Describe(path, missing, unexpected, mismatched))
{
    public string Path { get; } = path;
    public IReadOnlyList<string> Missing { get; } = missing;
    public IReadOnlyList<string> Unexpected { get; } = unexpected;
    public IReadOnlyList<string> Mismatched { get; } = mismatched;

    static string Describe(string path, IReadOnlyList<string> missing, IReadOnlyList<string> unexpected, IReadOnlyList<string> mismatched)
    {
        var lines = new List<string>
        {
            $"{path}: checkpoint does not fit the model ({missing.Count} missing, {unexpected.Count} unexpected, {mismatched.Count} mis-shaped); nothing was loaded",
        };
        lines.AddRange(missing.Select(m => "  missing: " + m));
        lines.AddRange(unexpected.Select(u => "  unexpected: " + u));
        lines.AddRange(mismatched.Select(m => "  mis-shaped: " + m));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Loads pre-trained weights into a <see cref="VisionTransformer"/> from safetensors (timm names), Google's ViT
/// .npz (as timm's _load_weights maps it), or PyTorch zip checkpoints (.pth/.bin/.pt) with timm or OpenAI CLIP
/// names. Strict: every missing, unexpected and mis-shaped key is reported in one exception, and nothing is
/// copied unless every check passes. The two bridged differences are said in the report: pos_embed resampled
/// when the patch grid differs, head skipped when the class count differs.
/// </summary>
public static class VitWeights
{
    /// <summary>A tensor of the checkpoint, by its own name: read on request, or written straight into a tensor
    /// of its shape (<see cref="ReadInto"/>), after <see cref="Check"/> confirmed its bytes are in the file.</summary>
    sealed record Source(string Name, long[] Shape, ScalarType DType, Func<Tensor> Read, Action<Tensor> ReadInto, Action Check);

    /// <summary>A model tensor (timm name) and how to make it from the checkpoint: <see cref="Produce"/> a new
    /// tensor, or, for a tensor taken as it is, <see cref="Fill"/> the model's tensor in place (streaming).</summary>
    sealed record Mapped(string Target, string From, long[] Shape, ScalarType DType, Func<Tensor> Produce, Action<Tensor>? Fill = null);

    sealed class Mapping
    {
        public readonly List<Mapped> Items = new();
        public readonly List<string> Unexpected = new(), Mismatched = new(), Notes = new(), Skipped = new();
        /// <summary>Which checkpoint keys a missing model tensor would have come from (for the error).</summary>
        public readonly Dictionary<string, string> MissingHints = new();
        public bool HeadUnusable;
    }

    public static VitLoadReport Load(VisionTransformer model, string path, VitLoadOptions? options = null)
    {
        options ??= new VitLoadOptions();
        string container = DetectContainer(path);
        switch (container)
        {
            case "safetensors":
            {
                var file = SafetensorsFile.Open(path);
                var sources = file.Entries.Values.Select(e => new Source(e.Name, e.Shape, SafetensorsFile.ScalarTypeOf(e.DType),
                    () => file.Read(e.Name), t => file.ReadInto(e.Name, t), () => { })).ToList();  // offsets were checked by Open
                return Apply(model, path, "safetensors", sources, options);
            }
            case "npz":
            {
                using var npz = NpzFile.Open(path);
                var sources = npz.Keys.Select(k => { var h = npz.Header(k); return new Source(k, h.Shape, h.DType, () => npz.Read(k), t => npz.ReadInto(k, t), () => npz.Check(k)); }).ToList();
                return Apply(model, path, "npz", sources, options);
            }
            default:
            {
                using var ckpt = TorchCheckpoint.Open(path);
                var sources = ckpt.StateDict(options.StateDictKey).Select(kv => new Source(kv.Key, kv.Value.Shape, kv.Value.DType,
                    () => ckpt.Read(kv.Value, kv.Key), t => ckpt.ReadInto(kv.Value, t, kv.Key), () => ckpt.Check(kv.Value, kv.Key))).ToList();
                return Apply(model, path, "PyTorch zip", sources, options);
            }
        }
    }

    /// <summary>The container of a checkpoint by its first bytes: "safetensors", "npz" or "torch".</summary>
    public static string DetectContainer(string path)
    {
        RegularFile.RequireForReading(path, "checkpoint"); // a FIFO would block the read below for good
        var head = new byte[9];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.Read(head, 0, head.Length);
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K')
        {
            using var zip = CheckpointZip.Open(path);
            if (zip.Entries.Any(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal))) return "npz";
            if (zip.Entries.Any(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal))) return "torch";
            throw new InvalidDataException($"{path}: a zip archive with neither .npy arrays (npz) nor data.pkl (PyTorch)");
        }
        // safetensors: an 8-byte little-endian header length, then the JSON header's '{'.
        if (n == 9 && head[8] == (byte)'{') return "safetensors";
        if (n >= 2 && head[0] == 0x80 && head[1] <= 5) return "torch";  // legacy torch.save (PROTO): TorchCheckpoint explains
        if (n >= 6 && head[0] == 0x93 && head[1] == (byte)'N') throw new InvalidDataException($"{path}: a single .npy array, not a checkpoint");
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return "safetensors";  // let the reader say what is wrong
        throw new InvalidDataException($"{path}: unknown checkpoint format (expected safetensors, npz, or a PyTorch zip checkpoint)");
    }

    static VitLoadReport Apply(VisionTransformer model, string path, string container, List<Source> sources, VitLoadOptions options)
    {
        var cfg = model.Config;
        Mapping map;
        string names;
        if (sources.Any(s => s.Name.Contains("Transformer/encoderblock_") || s.Name.EndsWith("embedding/kernel")))
            (map, names) = (MapGoogle(sources, cfg), "Google ViT names");
        else if (sources.Any(s => s.Name.StartsWith("visual.")) || sources.Any(s => s.Name == "class_embedding"))
            (map, names) = (MapClip(sources), "OpenAI CLIP names");
        else
            (map, names) = (MapTimm(sources), "timm names");

        var targets = new Dictionary<string, Tensor>();
        foreach (var (name, p) in model.named_parameters()) targets[name] = p;
        foreach (var (name, b) in model.named_buffers()) targets[name] = b;

        var unexpected = new List<string>(map.Unexpected);
        var mismatched = new List<string>(map.Mismatched);
        var skipped = new List<string>(map.Skipped);
        var resampled = new List<string>();
        var notes = new List<string>(map.Notes);
        var skipTargets = new HashSet<string>();

        // The head: skipped (and said) when the model has none, the class count differs, or the checkpoint has none.
        var headItems = map.Items.Where(i => i.Target.StartsWith("head.", StringComparison.Ordinal)).ToList();
        bool modelHasHead = targets.ContainsKey("head.weight");
        long modelClasses = modelHasHead ? targets["head.weight"].shape[0] : 0;
        if (headItems.Count > 0)
        {
            var w = headItems.FirstOrDefault(i => i.Target == "head.weight");
            long ckptClasses = w is { Shape.Length: 2 } ? w.Shape[0] : -1;
            if (!modelHasHead)
                Skip($"head skipped: checkpoint has {ckptClasses} classes, model has no head");
            else if (map.HeadUnusable)
                Skip($"head skipped: checkpoint's head follows a pre-logits layer this model lacks; model head ({modelClasses} classes) kept");
            else if (options.SkipMismatchedHead && w is { Shape.Length: 2 } && w.Shape[1] == cfg.EmbedDim && ckptClasses != modelClasses)
                Skip($"head skipped: checkpoint has {ckptClasses} classes, model {modelClasses}");
        }
        else if (modelHasHead)
        {
            skipped.Add($"head skipped: checkpoint has no head; model head ({modelClasses} classes) kept at its initialisation");
            foreach (var t in targets.Keys.Where(k => k.StartsWith("head.", StringComparison.Ordinal))) skipTargets.Add(t);
        }
        void Skip(string why)
        {
            skipped.Add(why);
            foreach (var i in headItems) skipTargets.Add(i.Target);
            foreach (var t in targets.Keys.Where(k => k.StartsWith("head.", StringComparison.Ordinal))) skipTargets.Add(t);
        }

        var plan = new List<(Mapped Item, Tensor Target)>();
        var covered = new HashSet<string>();
        foreach (var item in map.Items)
        {
            if (skipTargets.Contains(item.Target)) continue;
            string from = item.From == item.Target ? "" : $" (from {item.From})";
            if (!targets.TryGetValue(item.Target, out var target))
            {
                unexpected.Add($"{item.Target}{from} {Shape(item.Shape)}");
                continue;
            }
            if (!covered.Add(item.Target)) { mismatched.Add($"{item.Target}{from}: given twice"); continue; }
            if (!IsFloat(item.DType) && IsFloat(target.dtype))
            {
                mismatched.Add($"{item.Target}{from}: dtype {item.DType} cannot load into a {target.dtype} tensor");
                continue;
            }
            var want = target.shape;
            if (!want.SequenceEqual(item.Shape))
            {
                if (item.Target == "pos_embed" && options.ResamplePosEmbed && ResampleGrid(item.Shape, cfg) is int oldGrid)
                {
                    var src = item;
                    int newGrid = cfg.GridSize;
                    resampled.Add($"pos_embed {Shape(item.Shape)} -> {Shape(want)} (grid {oldGrid}x{oldGrid} -> {newGrid}x{newGrid}, bicubic{(options.PosEmbedAntialias ? ", antialiased" : "")}, class token kept)");
                    plan.Add((src with
                    {
                        Shape = want,
                        Fill = null,
                        Produce = () => { using var raw = src.Produce(); return ResamplePosEmbed(raw, newGrid, 1, options.PosEmbedAntialias); },
                    }, target));
                    continue;
                }
                mismatched.Add($"{item.Target}{from}: expected {Shape(want)}, got {Shape(item.Shape)}");
                continue;
            }
            plan.Add((item, target));
        }
        var missing = targets.Keys.Where(k => !covered.Contains(k) && !skipTargets.Contains(k))
            .Select(k => $"{k} {Shape(targets[k].shape)}" + (map.MissingHints.TryGetValue(k, out var hint) ? $" (needs {hint})" : "")).ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
            throw new CheckpointMismatchException(path, missing, unexpected, mismatched);

        // Every name, shape and dtype fits, and every tensor's bytes are in the file at their size: only now is
        // anything written. Tensors then stream one at a time into the model's own memory (no staged copy of
        // the model). What the checks cannot see is a file changed or damaged while it is read; the error then
        // says the model is partly loaded.
        foreach (var s in sources) s.Check();
        int done = 0;
        try
        {
            using var noGrad = torch.no_grad();
            foreach (var (item, target) in plan)
            {
                if (item.Fill is { } fill) fill(target);
                else
                {
                    using var raw = item.Produce();
                    if (!raw.shape.SequenceEqual(target.shape))
                        throw new InvalidDataException($"{path}: tensor '{item.From}' came out {Shape(raw.shape)}, expected {Shape(target.shape)}");
                    target.copy_(raw);
                }
                done++;
            }
        }
        catch (Exception e) when (done > 0 && e is IOException or InvalidDataException)
        {
            throw new InvalidDataException($"{path}: reading failed after {done} of {plan.Count} tensors were loaded: the model is partly overwritten; load it again from a good file. {e.Message}", e);
        }
        if (sources.Any(s => s.DType != ScalarType.Float32) && targets.Values.Any(t => t.dtype == ScalarType.Float32))
            notes.Add($"converted {string.Join(", ", sources.Select(s => s.DType).Distinct().Where(d => d != ScalarType.Float32))} to the model's Float32");
        return new VitLoadReport(path, $"{container}, {names}", cfg.Name, plan.Count, resampled, skipped, notes);
    }

    /// <summary>The old grid side when <paramref name="shape"/> is a pos_embed [1, 1 + g*g, D] of the model's width.</summary>
    static int? ResampleGrid(long[] shape, VitConfig cfg)
    {
        if (shape.Length != 3 || shape[0] != 1 || shape[2] != cfg.EmbedDim || shape[1] < 2) return null;
        long n = shape[1] - 1;
        int g = (int)Math.Round(Math.Sqrt(n));
        return (long)g * g == n ? g : null;
    }

    /// <summary>
    /// Resamples a position embedding [1, prefix + g*g, D] to a newGrid x newGrid grid: the prefix (class)
    /// tokens are kept as they are; the grid goes through bicubic interpolation with align_corners false.
    /// </summary>
    public static Tensor ResamplePosEmbed(Tensor posEmbed, int newGrid, int prefixTokens = 1, bool antialias = false)
    {
        if (posEmbed.dim() != 3 || posEmbed.shape[0] != 1)
            throw new ArgumentException($"pos_embed must be [1, tokens, dim], got {Shape(posEmbed.shape)}");
        long n = posEmbed.shape[1] - prefixTokens, d = posEmbed.shape[2];
        int g = (int)Math.Round(Math.Sqrt(Math.Max(n, 0)));
        if (n <= 0 || (long)g * g != n)
            throw new ArgumentException($"pos_embed {Shape(posEmbed.shape)} with {prefixTokens} prefix token(s) has no square grid ({n} positions)");
        if (newGrid <= 0) throw new ArgumentOutOfRangeException(nameof(newGrid), newGrid, "grid side must be positive");
        using var scope = torch.NewDisposeScope();
        var prefix = posEmbed.narrow(1, 0, prefixTokens);
        var grid = posEmbed.narrow(1, prefixTokens, n).reshape(1, g, g, d).permute(0, 3, 1, 2).to(ScalarType.Float32);
        grid = nn.functional.interpolate(grid, size: new long[] { newGrid, newGrid }, mode: InterpolationMode.Bicubic, align_corners: false, antialias: antialias);
        grid = grid.permute(0, 2, 3, 1).reshape(1, (long)newGrid * newGrid, d).to(posEmbed.dtype);
        return torch.cat(new[] { prefix, grid }, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Saves the model's weights with timm names, in the format the extension names: .pth/.pt/.bin a PyTorch zip
    /// checkpoint (torch.load(path, weights_only=True), then timm's VisionTransformer.load_state_dict(strict=True)),
    /// anything else safetensors (with the model's config in its metadata). Either is written whole or not at all.
    /// </summary>
    public static void Save(VisionTransformer model, string path)
    {
        var tensors = StateDict(model);
        if (IsPickleName(path)) { TorchExport.Save(path, tensors); return; }
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["peft_workbench.vit_config"] = JsonSerializer.Serialize(model.Config),
        });
    }

    /// <summary>Saves as <paramref name="format"/> ("pth" or "safetensors") whatever the extension.</summary>
    public static void Save(VisionTransformer model, string path, string format)
    {
        switch (format)
        {
            case "pth": TorchExport.Save(path, StateDict(model)); break;
            case "safetensors": if (IsPickleName(path)) throw new ArgumentException($"{path}: a .pth/.pt/.bin name for a safetensors file"); Save(model, path); break;
            default: throw new ArgumentException($"unknown export format '{format}' (pth, safetensors)");
        }
    }

    /// <summary>Loads <paramref name="from"/> (any format <see cref="Load"/> reads) into a <paramref name="config"/>
    /// ViT and saves it to <paramref name="to"/> as <paramref name="format"/> ("pth", "safetensors"; default: by extension).</summary>
    public static VitLoadReport Export(VitConfig config, string from, string to, string? format = null, VitLoadOptions? options = null)
    {
        using var model = new VisionTransformer(config, seed: 0);
        var report = Load(model, from, options);
        if (format is null) Save(model, to); else Save(model, to, format);
        return report;
    }

    static bool IsPickleName(string path) =>
        System.IO.Path.GetExtension(path).ToLowerInvariant() is ".pth" or ".pt" or ".bin";

    /// <summary>The model's parameters and buffers by their timm names (the live tensors, not copies).</summary>
    public static Dictionary<string, Tensor> StateDict(VisionTransformer model)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, p) in model.named_parameters()) tensors[name] = p;
        foreach (var (name, b) in model.named_buffers()) tensors[name] = b;
        return tensors;
    }

    // ---- name mappings ----------------------------------------------------------------------------------

    static Mapping MapTimm(List<Source> sources)
    {
        var map = new Mapping();
        foreach (var s in sources) map.Items.Add(Direct(s.Name, s));
        return map;
    }

    static readonly Regex ClipBlock = new(@"^transformer\.resblocks\.(\d+)\.(.+)$", RegexOptions.Compiled);

    /// <summary>OpenAI CLIP image tower names to timm's (as timm's _convert_openai_clip): the text tower is ignored.</summary>
    static Mapping MapClip(List<Source> sources)
    {
        var map = new Mapping();
        bool prefixed = sources.Any(s => s.Name.StartsWith("visual.", StringComparison.Ordinal));
        int ignored = 0;
        foreach (var s in sources)
        {
            if (prefixed && !s.Name.StartsWith("visual.", StringComparison.Ordinal)) { ignored++; continue; }
            string k = prefixed ? s.Name["visual.".Length..] : s.Name;
            switch (k)
            {
                case "conv1.weight": map.Items.Add(Direct("patch_embed.proj.weight", s)); continue;
                case "conv1.bias": map.Items.Add(Direct("patch_embed.proj.bias", s)); continue;
                case "class_embedding":
                    if (s.Shape.Length != 1) { map.Mismatched.Add($"{s.Name}: expected [D], got {Shape(s.Shape)}"); continue; }
                    map.Items.Add(new Mapped("cls_token", s.Name, new[] { 1L, 1, s.Shape[0] }, s.DType, () => { using var t = s.Read(); return t.reshape(1, 1, -1); }));
                    continue;
                case "positional_embedding":
                    if (s.Shape.Length != 2) { map.Mismatched.Add($"{s.Name}: expected [tokens, D], got {Shape(s.Shape)}"); continue; }
                    map.Items.Add(new Mapped("pos_embed", s.Name, new[] { 1L, s.Shape[0], s.Shape[1] }, s.DType, () => { using var t = s.Read(); return t.unsqueeze(0); }));
                    continue;
                case "proj":
                    if (s.Shape.Length != 2) { map.Mismatched.Add($"{s.Name}: expected [D, E], got {Shape(s.Shape)}"); continue; }
                    map.Items.Add(Transposed("head.weight", s));
                    long e = s.Shape[1];
                    map.Items.Add(new Mapped("head.bias", $"zeros (CLIP's {s.Name} has no bias)", new[] { e }, s.DType, () => torch.zeros(e, s.DType)));
                    map.Notes.Add($"head = {s.Name} transposed ({s.Shape[1]} outputs), with a zero bias");
                    continue;
            }
            string? t = k.StartsWith("ln_pre.") ? "norm_pre." + k[7..]
                : k.StartsWith("ln_post.") ? "norm." + k[8..]
                : null;
            if (t is null && ClipBlock.Match(k) is { Success: true } m)
            {
                string rest = m.Groups[2].Value;
                string? r = rest switch
                {
                    _ when rest.StartsWith("ln_1.") => "norm1." + rest[5..],
                    _ when rest.StartsWith("ln_2.") => "norm2." + rest[5..],
                    "attn.in_proj_weight" => "attn.qkv.weight",
                    "attn.in_proj_bias" => "attn.qkv.bias",
                    _ when rest.StartsWith("attn.out_proj.") => "attn.proj." + rest[14..],
                    _ when rest.StartsWith("mlp.c_fc.") => "mlp.fc1." + rest[9..],
                    _ when rest.StartsWith("mlp.c_proj.") => "mlp.fc2." + rest[11..],
                    _ => null,
                };
                if (r is not null) t = $"blocks.{m.Groups[1].Value}.{r}";
            }
            if (t is null) { map.Unexpected.Add($"{s.Name} {Shape(s.Shape)}"); continue; }
            map.Items.Add(Direct(t, s));
        }
        if (ignored > 0) map.Notes.Add($"ignored {ignored} tensors outside visual. (text tower, logit_scale)");
        return map;
    }

    static readonly Regex GoogleBlock = new(@"^Transformer/encoderblock_(\d+)/(.+)$", RegexOptions.Compiled);

    /// <summary>
    /// Google's ViT .npz names (Flax) to timm's, following timm's _load_weights: kernels transposed ([in, out]
    /// to [out, in]; the HWIO patch kernel to OIHW), query/key/value kernels [D, heads, head_dim] flattened
    /// and concatenated in that order into qkv, the out kernel [heads, head_dim, D] reshaped into proj.
    /// </summary>
    static Mapping MapGoogle(List<Source> sources, VitConfig cfg)
    {
        var map = new Mapping();
        const string opt = "opt/target/";
        bool optPrefixed = sources.Any(s => s.Name.StartsWith(opt, StringComparison.Ordinal));
        var byName = new Dictionary<string, Source>();
        int ignored = 0;
        foreach (var s in sources)
        {
            if (optPrefixed && !s.Name.StartsWith(opt, StringComparison.Ordinal)) { ignored++; continue; }
            byName[optPrefixed ? s.Name[opt.Length..] : s.Name] = s;
        }
        if (ignored > 0) map.Notes.Add($"ignored {ignored} arrays outside {opt} (optimizer state)");

        long d = cfg.EmbedDim, h = cfg.NumHeads, hd = cfg.EmbedDim / cfg.NumHeads;
        var qkvGroups = new SortedDictionary<int, Dictionary<string, Source>>();
        foreach (var (key, s) in byName)
        {
            switch (key)
            {
                case "embedding/kernel":
                    if (s.Shape.Length != 4) { map.Mismatched.Add($"{s.Name}: expected an HWIO kernel [p, p, C, D], got {Shape(s.Shape)}"); continue; }
                    map.Items.Add(new Mapped("patch_embed.proj.weight", s.Name, new[] { s.Shape[3], s.Shape[2], s.Shape[0], s.Shape[1] }, s.DType,
                        () => { using var t = s.Read(); return t.permute(3, 2, 0, 1).contiguous(); }));
                    continue;
                case "embedding/bias": map.Items.Add(Direct("patch_embed.proj.bias", s)); continue;
                case "cls": map.Items.Add(Direct("cls_token", s)); continue;
                case "Transformer/posembed_input/pos_embedding": map.Items.Add(Direct("pos_embed", s)); continue;
                case "Transformer/encoder_norm/scale": map.Items.Add(Direct("norm.weight", s)); continue;
                case "Transformer/encoder_norm/bias": map.Items.Add(Direct("norm.bias", s)); continue;
                case "head/kernel": map.Items.Add(Transposed("head.weight", s)); continue;
                case "head/bias": map.Items.Add(Direct("head.bias", s)); continue;
                case "pre_logits/kernel" or "pre_logits/bias":
                    // ImageNet-21k checkpoints end in a tanh pre-logits layer that timm drops when fine-tuning.
                    map.HeadUnusable = true;
                    if (key.EndsWith("kernel")) map.Skipped.Add("pre_logits skipped: the model has no pre-logits (representation) layer, as timm when fine-tuning");
                    continue;
            }
            if (GoogleBlock.Match(key) is not { Success: true } m) { map.Unexpected.Add($"{s.Name} {Shape(s.Shape)}"); continue; }
            int i = int.Parse(m.Groups[1].Value);
            string rest = m.Groups[2].Value, b = $"blocks.{i}.";
            const string mha = "MultiHeadDotProductAttention_1/";
            switch (rest)
            {
                case "LayerNorm_0/scale": map.Items.Add(Direct(b + "norm1.weight", s)); break;
                case "LayerNorm_0/bias": map.Items.Add(Direct(b + "norm1.bias", s)); break;
                case "LayerNorm_2/scale": map.Items.Add(Direct(b + "norm2.weight", s)); break;
                case "LayerNorm_2/bias": map.Items.Add(Direct(b + "norm2.bias", s)); break;
                case "MlpBlock_3/Dense_0/kernel": map.Items.Add(Transposed(b + "mlp.fc1.weight", s)); break;
                case "MlpBlock_3/Dense_0/bias": map.Items.Add(Direct(b + "mlp.fc1.bias", s)); break;
                case "MlpBlock_3/Dense_1/kernel": map.Items.Add(Transposed(b + "mlp.fc2.weight", s)); break;
                case "MlpBlock_3/Dense_1/bias": map.Items.Add(Direct(b + "mlp.fc2.bias", s)); break;
                case mha + "out/kernel":
                    if (!s.Shape.SequenceEqual(new[] { h, hd, d })) { map.Mismatched.Add($"{s.Name}: expected [heads, head_dim, D] = {Shape(new[] { h, hd, d })}, got {Shape(s.Shape)}"); break; }
                    map.Items.Add(new Mapped(b + "attn.proj.weight", s.Name, new[] { d, h * hd }, s.DType,
                        () => { using var t = s.Read(); return t.permute(2, 0, 1).reshape(d, h * hd); }));
                    break;
                case mha + "out/bias": map.Items.Add(Direct(b + "attn.proj.bias", s)); break;
                case mha + "query/kernel" or mha + "key/kernel" or mha + "value/kernel"
                    or mha + "query/bias" or mha + "key/bias" or mha + "value/bias":
                    if (!qkvGroups.TryGetValue(i, out var g)) qkvGroups[i] = g = new();
                    g[rest[mha.Length..]] = s;
                    break;
                default: map.Unexpected.Add($"{s.Name} {Shape(s.Shape)}"); break;
            }
        }
        // qkv = cat(query, key, value) along the output dimension, each [D, heads, head_dim] -> [heads*head_dim, D].
        foreach (var (i, g) in qkvGroups)
        {
            string prefix = (optPrefixed ? opt : "") + $"Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/";
            foreach (var (part, expect, target) in new[] { ("kernel", new[] { d, h, hd }, $"blocks.{i}.attn.qkv.weight"), ("bias", new[] { h, hd }, $"blocks.{i}.attn.qkv.bias") })
            {
                var names = new[] { "query", "key", "value" }.Select(n => $"{n}/{part}").ToArray();
                var present = names.Where(g.ContainsKey).ToArray();
                if (present.Length == 0) continue;
                if (present.Length < 3)
                {
                    map.MissingHints[target] = string.Join(", ", names.Where(n => !g.ContainsKey(n)).Select(n => prefix + n));
                    continue;
                }
                var parts = names.Select(n => g[n]).ToArray();
                bool ok = true;
                foreach (var p in parts)
                    if (!p.Shape.SequenceEqual(expect)) { map.Mismatched.Add($"{p.Name}: expected {Shape(expect)}, got {Shape(p.Shape)}"); ok = false; }
                if (!ok) continue;
                long rows = 3 * h * hd;
                map.Items.Add(new Mapped(target, prefix + $"{{query,key,value}}/{part}", part == "kernel" ? new[] { rows, d } : new[] { rows }, parts[0].DType, () =>
                {
                    using var scope = torch.NewDisposeScope();
                    var pieces = parts.Select(p => part == "kernel" ? p.Read().reshape(d, h * hd).t() : p.Read().reshape(-1)).ToArray();
                    return torch.cat(pieces, 0).contiguous().MoveToOuterDisposeScope();
                }));
            }
        }
        return map;
    }

    static Mapped Direct(string target, Source s) => new(target, s.Name, s.Shape, s.DType, s.Read, s.ReadInto);

    /// <summary>A 2-D kernel stored [in, out] (Flax, CLIP's proj) as a [out, in] weight; other ranks keep their shape and fail the shape check.</summary>
    static Mapped Transposed(string target, Source s) =>
        s.Shape.Length == 2
            ? new(target, s.Name, new[] { s.Shape[1], s.Shape[0] }, s.DType, () => { using var t = s.Read(); return t.t().contiguous(); })
            : Direct(target, s);

    static bool IsFloat(ScalarType t) => t is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;

    static string Shape(IEnumerable<long> s) => "[" + string.Join(", ", s) + "]";
}
