using System.Globalization;
using PeftWorkbench.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Vit;

/// <summary>The checkpoints that ship inside the library (embedded resources made by `peft pretrain`).</summary>
public sealed partial class VisionTransformer
{
    /// <summary>Names of the shipped pre-trained checkpoints: every Pretrained/&lt;name&gt;.safetensors embedded at build time.
    /// "mini" (rendered characters, 10 minutes) is the weak backbone of the regime plot; "mini-hand" (the broad upstream,
    /// Data/Upstream, with handwriting-like characters) the stronger one, shipped once it passed the rule in Pretrained/README.md.</summary>
    public static IReadOnlyList<string> PretrainedNames { get; } = typeof(VisionTransformer).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".safetensors", StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..^".safetensors".Length]).OrderBy(n => n, StringComparer.Ordinal).ToArray();

    const string ResourcePrefix = "PeftWorkbench.Pretrained.";

    /// <summary><paramref name="name"/> when it is a shipped checkpoint; else an error naming it and the shipped ones.</summary>
    internal static string RequireShipped(string name) => PretrainedNames.Contains(name) ? name
        : throw new ArgumentException($"No shipped checkpoint named '{name}'. Shipped: {string.Join(", ", PretrainedNames)}.", nameof(name));

    /// <summary>
    /// A shipped pre-trained ViT by name (<see cref="PretrainedNames"/>; default <see cref="Workbench.DefaultBackbone"/>):
    /// "mini" is the mini preset trained on rendered characters (see Data/Pretraining.cs and Pretrained/mini.recipe.json),
    /// its head 62 outputs, one per character of <c>GlyphRenderer.Characters</c>; "mini-hand" the same shape trained further
    /// on the broad upstream (Data/Upstream, Pretrained/mini-hand.recipe.json), its 188-way head starting with the same 62
    /// characters. Outputs 0..9 are the digits, so <see cref="KeepHeadRows"/>(10) gives a zero-shot digit classifier. The
    /// load is strict: every parameter must be in the file with its exact shape, and no extra keys.
    /// </summary>
    public static VisionTransformer Pretrained(string name = Workbench.DefaultBackbone)
    {
        RequireShipped(name);
        var tmp = Path.Combine(Path.GetTempPath(), $"peft-pretrained-{name}-{Environment.ProcessId}-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var res = OpenResource($"{name}.safetensors"))
            using (var fs = File.Create(tmp)) res.CopyTo(fs);
            return LoadStrict(tmp);
        }
        finally { File.Delete(tmp); }
    }

    /// <summary>The JSON recipe that produced a shipped checkpoint (data, seed, epochs, wall time, accuracy, command).</summary>
    public static string PretrainedRecipe(string name = "mini")
    {
        using var res = OpenResource($"{name}.recipe.json");
        using var reader = new StreamReader(res);
        return reader.ReadToEnd();
    }

    /// <summary>The bytes of a shipped checkpoint (its digest is part of a trial's identity).</summary>
    internal static Stream OpenPretrained(string name) => OpenResource($"{name}.safetensors");

    static Stream OpenResource(string file) =>
        typeof(VisionTransformer).Assembly.GetManifestResourceStream(ResourcePrefix + file)
        ?? throw new FileNotFoundException($"The PeftWorkbench assembly has no embedded Pretrained/{file}; rebuild after `peft pretrain --recipe mini --out src/PeftWorkbench/Pretrained`.");

    /// <summary>Metadata keys a workbench checkpoint stores so its shape can be rebuilt without a preset.</summary>
    public static Dictionary<string, string> ConfigMetadata(VitConfig c) => new()
    {
        ["preset"] = c.Name, ["image_size"] = c.ImageSize.ToString(CultureInfo.InvariantCulture),
        ["patch_size"] = c.PatchSize.ToString(CultureInfo.InvariantCulture), ["embed_dim"] = c.EmbedDim.ToString(CultureInfo.InvariantCulture),
        ["depth"] = c.Depth.ToString(CultureInfo.InvariantCulture), ["num_heads"] = c.NumHeads.ToString(CultureInfo.InvariantCulture),
        ["mlp_ratio"] = c.MlpRatio.ToString(CultureInfo.InvariantCulture), ["num_classes"] = c.NumClasses.ToString(CultureInfo.InvariantCulture),
    };

    static VitConfig ConfigFrom(SafetensorsFile f)
    {
        string Get(string k) => f.Metadata.TryGetValue(k, out var v) ? v
            : throw new InvalidDataException($"{f.Path}: metadata has no '{k}' (not a workbench checkpoint?)");
        int I(string k) => int.TryParse(Get(k), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new InvalidDataException($"{f.Path}: metadata '{k}' = '{Get(k)}' is not an integer");
        var baseConfig = VitConfig.Presets.TryGetValue(Get("preset"), out var p) ? p : new VitConfig();
        return baseConfig with
        {
            Name = Get("preset"), ImageSize = I("image_size"), PatchSize = I("patch_size"), EmbedDim = I("embed_dim"),
            Depth = I("depth"), NumHeads = I("num_heads"), NumClasses = I("num_classes"),
            MlpRatio = double.Parse(Get("mlp_ratio"), CultureInfo.InvariantCulture),
        };
    }

    /// <summary>Loads a checkpoint written by <see cref="SaveWorkbenchCheckpoint"/>: shape from its metadata, weights strictly.</summary>
    public static VisionTransformer LoadStrict(string path)
    {
        var file = SafetensorsFile.Open(path);
        var model = new VisionTransformer(ConfigFrom(file));
        try
        {
            var wanted = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var missing = wanted.Keys.Where(k => !file.Entries.ContainsKey(k)).ToList();
            var extra = file.Keys.Where(k => !wanted.ContainsKey(k)).ToList();
            if (missing.Count > 0 || extra.Count > 0)
                throw new InvalidDataException($"{path}: keys do not match the ViT: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}]");
            using var _ = torch.no_grad();
            foreach (var (name, param) in wanted)
            {
                var e = file.Entries[name];
                if (!e.Shape.SequenceEqual(param.shape))
                    throw new InvalidDataException($"{path}: '{name}' has shape [{string.Join(", ", e.Shape)}], the ViT needs [{string.Join(", ", param.shape)}]");
                using var t = file.Read(name);
                param.copy_(t.to(param.dtype));
            }
            model.eval();
            return model;
        }
        catch { model.Dispose(); throw; }
    }

    /// <summary>Writes every parameter plus the shape metadata <see cref="LoadStrict"/> needs (atomic).</summary>
    public void SaveWorkbenchCheckpoint(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var meta = ConfigMetadata(Config);
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) meta[k] = v;
        var tensors = named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        SafetensorsFile.Write(path, tensors, meta);
    }

    /// <summary>
    /// Keeps the first <paramref name="count"/> outputs of the head (for "mini": 10 = the digits), so the
    /// pre-trained head classifies a subset of its classes zero-shot.
    /// </summary>
    public void KeepHeadRows(int count)
    {
        if (head is not Linear lin) throw new InvalidOperationException("KeepHeadRows needs a linear head");
        if (count <= 0 || count > lin.weight!.shape[0])
            throw new ArgumentOutOfRangeException(nameof(count), count, $"must be in 1..{lin.weight!.shape[0]}");
        var fresh = nn.Linear(Config.EmbedDim, count).to(cls_token.device);
        using (torch.no_grad())
        {
            fresh.weight!.copy_(lin.weight.narrow(0, 0, count));
            fresh.bias!.copy_(lin.bias!.narrow(0, 0, count));
        }
        Slots.Replace(this, nameof(head), fresh).Dispose();
        Config = Config with { NumClasses = count };
    }
}
