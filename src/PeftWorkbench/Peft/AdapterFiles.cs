using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// A short hash that tells one backbone's weights from another's without reading all of them: SHA-256
/// over every tensor's name, shape and dtype and up to 64 values sampled evenly from it (the head
/// excluded). Two checkpoints of the same shape get different fingerprints; the same weights always the same.
/// </summary>
public static class BackboneFingerprint
{
    public static string Compute(VisionTransformer vit)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, p) in vit.named_parameters().Where(p => !p.name.StartsWith("head.")).OrderBy(p => p.name, StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}:{p.dtype}:{string.Join("x", p.shape)};"));
            var flat = p.detach().flatten();
            long n = flat.numel(), take = Math.Min(64, n);
            if (take == 0) continue;
            var idx = torch.linspace(0, n - 1, take).to(ScalarType.Int64).to(flat.device);
            sha.AppendData(flat.index_select(0, idx).to(ScalarType.Float32).cpu().bytes);
        }
        return "sha256:" + Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant()[..16];
    }
}

/// <summary>adapter_config.json: what a saved adapter is and what it must be loaded onto.</summary>
public sealed record AdapterConfig(
    string Method,
    IReadOnlyDictionary<string, string> Options,
    VitConfig Backbone,
    string BackboneFingerprint,
    int NumClasses,
    string LibraryVersion,
    long TrainableParamsExcludingHead)
{
    public const string FileName = "adapter_config.json";
    public const string WeightsName = "adapter_model.safetensors";
    /// <summary>The same tensors as a PyTorch pickle, for tools that expect one (loading reads the safetensors).</summary>
    public const string PickleWeightsName = "adapter_model.bin";
    public const string Format = "peft-workbench-adapter/1";

    public JsonObject ToJson()
    {
        var options = new JsonObject();
        foreach (var (k, v) in Options)
            options[k] = v switch
            {
                "null" => null,
                "true" => JsonValue.Create(true),
                "false" => JsonValue.Create(false),
                _ when double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _) => JsonNode.Parse(v),
                _ => JsonValue.Create(v),
            };
        var b = Backbone;
        return new JsonObject
        {
            ["format"] = Format,
            ["method"] = Method,
            ["options"] = options,
            ["backbone"] = new JsonObject
            {
                ["preset"] = b.Name, ["fingerprint"] = BackboneFingerprint,
                ["image_size"] = b.ImageSize, ["patch_size"] = b.PatchSize, ["in_chans"] = b.InChans,
                ["embed_dim"] = b.EmbedDim, ["depth"] = b.Depth, ["num_heads"] = b.NumHeads, ["mlp_ratio"] = b.MlpRatio,
                ["qkv_bias"] = b.QkvBias, ["patch_bias"] = b.PatchBias, ["pre_norm"] = b.PreNorm,
                ["activation"] = b.Activation, ["layer_norm_eps"] = b.LayerNormEps,
            },
            ["num_classes"] = NumClasses,
            ["library_version"] = LibraryVersion,
            ["trainable_params_excl_head"] = TrainableParamsExcludingHead,
        };
    }

    public static AdapterConfig Read(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No adapter at {dir}: {FileName} is missing", path);
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e); }
        T Get<T>(JsonNode? node, string key)
        {
            var v = node?[key] ?? throw new InvalidDataException($"{path}: missing \"{key}\"");
            try { return v.GetValue<T>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            { throw new InvalidDataException($"{path}: \"{key}\" should be a {typeof(T).Name}, got {v.ToJsonString()}"); }
        }
        if (Get<string>(root, "format") != Format)
            throw new InvalidDataException($"{path}: format \"{root["format"]}\" is not {Format}");
        var options = new Dictionary<string, string>();
        if (root["options"] is JsonObject o)
            foreach (var (k, v) in o)
                options[k] = v is null ? "null" : v.GetValueKind() switch
                {
                    JsonValueKind.String => v.GetValue<string>(),
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    _ => v.ToJsonString(),
                };
        var b = root["backbone"] as JsonObject ?? throw new InvalidDataException($"{path}: missing \"backbone\"");
        var backbone = new VitConfig
        {
            Name = Get<string>(b, "preset"), ImageSize = Get<int>(b, "image_size"), PatchSize = Get<int>(b, "patch_size"),
            InChans = Get<int>(b, "in_chans"), EmbedDim = Get<int>(b, "embed_dim"), Depth = Get<int>(b, "depth"),
            NumHeads = Get<int>(b, "num_heads"), MlpRatio = Get<double>(b, "mlp_ratio"), QkvBias = Get<bool>(b, "qkv_bias"),
            PatchBias = Get<bool>(b, "patch_bias"), PreNorm = Get<bool>(b, "pre_norm"), Activation = Get<string>(b, "activation"),
            LayerNormEps = Get<double>(b, "layer_norm_eps"), NumClasses = Get<int>(root, "num_classes"),
        };
        return new AdapterConfig(Get<string>(root, "method"), options, backbone, Get<string>(b, "fingerprint"),
            Get<int>(root, "num_classes"), Get<string>(root, "library_version"), Get<long>(root, "trainable_params_excl_head"));
    }

    /// <summary>Differences in shape between the backbone this adapter was trained on and <paramref name="vit"/> (empty when they match).</summary>
    public IReadOnlyList<string> ShapeMismatches(VitConfig vit)
    {
        var diffs = new List<string>();
        void Cmp<T>(string what, T a, T b) { if (!EqualityComparer<T>.Default.Equals(a, b)) diffs.Add($"{what} {a} (adapter) vs {b} (backbone)"); }
        var a = Backbone;
        Cmp("image_size", a.ImageSize, vit.ImageSize); Cmp("patch_size", a.PatchSize, vit.PatchSize);
        Cmp("in_chans", a.InChans, vit.InChans); Cmp("embed_dim", a.EmbedDim, vit.EmbedDim); Cmp("depth", a.Depth, vit.Depth);
        Cmp("num_heads", a.NumHeads, vit.NumHeads); Cmp("mlp_ratio", a.MlpRatio, vit.MlpRatio); Cmp("qkv_bias", a.QkvBias, vit.QkvBias);
        Cmp("patch_bias", a.PatchBias, vit.PatchBias); Cmp("pre_norm", a.PreNorm, vit.PreNorm); Cmp("activation", a.Activation, vit.Activation);
        Cmp("layer_norm_eps", a.LayerNormEps, vit.LayerNormEps);
        return diffs;
    }
}

public sealed partial class PeftModel
{
    /// <summary>
    /// Writes adapter_model.safetensors (every tensor that trains: the method's, the backbone tensors it
    /// selects, the head), the same tensors as adapter_model.bin (a torch.save zip) and adapter_config.json (method, options, backbone preset and fingerprint, class
    /// count, library version) into <paramref name="dir"/>. Each file is written whole or not at all.
    /// </summary>
    public void SaveAdapter(string dir)
    {
        if (state.Merged) throw new InvalidOperationException("Unmerge() before saving: an adapter holds the unmerged tensors.");
        Directory.CreateDirectory(dir);
        var tensors = TrainableParameters().ToDictionary(p => p.Name, p => (Tensor)p.Param);
        SafetensorsFile.Write(Path.Combine(dir, AdapterConfig.WeightsName), tensors,
            new Dictionary<string, string> { ["format"] = "pt", ["method"] = Method.Id });
        TorchExport.Save(Path.Combine(dir, AdapterConfig.PickleWeightsName), tensors);
        var config = new AdapterConfig(Method.Id,
            Options.ToHyperparameters().ToDictionary(kv => kv.Key, kv => OptionValues.Format(kv.Value)),
            BackboneConfig, BackboneFingerprintValue, model.Config.NumClasses, Workbench.Version, TrainableParameterCountExcludingHead);
        var path = Path.Combine(dir, AdapterConfig.FileName);
        AtomicFile.WriteText(path, config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// Loads an adapter saved by <see cref="SaveAdapter"/> onto a fresh pre-trained <paramref name="backbone"/>:
    /// checks the backbone's shape and fingerprint against the adapter's, resets the head to the adapter's class
    /// count, attaches the method with the saved options and loads the tensors.
    /// </summary>
    public static PeftModel LoadAdapter(string dir, VisionTransformer backbone)
    {
        var config = AdapterConfig.Read(dir);
        CheckBackbone(dir, config, backbone.Config, BackboneFingerprint.Compute(backbone));
        if (backbone.Config.NumClasses != config.NumClasses) backbone.ResetHead(config.NumClasses);
        var options = MethodRegistry.Create(config.Method, config.Options, backbone.Config);
        var model = Peft.Attach(backbone, options);
        try { model.LoadAdapterWeights(dir); }
        catch { model.Detach(); throw; }
        return model;
    }

    /// <summary>Loads the tensors of an adapter saved for the same method, options and backbone into this model.</summary>
    public void LoadAdapterWeights(string dir)
    {
        if (state.Merged) throw new InvalidOperationException("Unmerge() before loading an adapter.");
        var config = AdapterConfig.Read(dir);
        if (MethodRegistry.Get(config.Method).Id != Method.Id)
            throw new InvalidDataException($"{dir} holds a '{config.Method}' adapter; this model has '{Method.Id}' ({Method.Name}) attached.");
        var mine = Options.ToHyperparameters().ToDictionary(kv => kv.Key, kv => OptionValues.Format(kv.Value));
        var theirs = MethodRegistry.Create(config.Method, config.Options).ToHyperparameters().ToDictionary(kv => kv.Key, kv => OptionValues.Format(kv.Value));
        var differ = mine.Where(kv => theirs[kv.Key] != kv.Value).Select(kv => $"{kv.Key} {theirs[kv.Key]} (adapter) vs {kv.Value} (model)").ToList();
        if (differ.Count > 0) throw new InvalidDataException($"{dir}: the adapter's {Method.Id} options differ from this model's: {string.Join("; ", differ)}.");
        CheckBackbone(dir, config, BackboneConfig, BackboneFingerprintValue);

        var file = SafetensorsFile.Open(Path.Combine(dir, AdapterConfig.WeightsName));
        var wanted = TrainableParameters();
        var missing = wanted.Select(p => p.Name).Where(n => !file.Entries.ContainsKey(n)).ToList();
        var extra = file.Keys.Where(k => wanted.All(p => p.Name != k)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new InvalidDataException($"{file.Path}: tensors do not match this {Method.Id} model" +
                (missing.Count > 0 ? $"; missing: {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" (+{missing.Count - 5})" : "")}" : "") +
                (extra.Count > 0 ? $"; unexpected: {string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? $" (+{extra.Count - 5})" : "")}" : ""));
        foreach (var (name, p) in wanted)
        {
            var e = file.Entries[name];
            if (!e.Shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", e.Shape)}], the model expects [{string.Join(", ", p.shape)}]");
        }
        // Read everything first, so a failure leaves the model untouched.
        var values = file.ReadAll();
        try
        {
            using var _ = torch.no_grad();
            foreach (var (name, p) in wanted) p.copy_(values[name]);
        }
        finally { foreach (var t in values.Values) t.Dispose(); }
    }

    static void CheckBackbone(string dir, AdapterConfig config, VitConfig vit, string fingerprint)
    {
        var diffs = config.ShapeMismatches(vit);
        if (diffs.Count > 0)
            throw new InvalidDataException($"{dir}: adapter was trained on backbone '{config.Backbone.Name}', which has another shape than '{vit.Name}': {string.Join("; ", diffs)}.");
        if (config.BackboneFingerprint != fingerprint)
            throw new InvalidDataException($"{dir}: adapter was trained on backbone '{config.Backbone.Name}' with weights {config.BackboneFingerprint}; this backbone ('{vit.Name}') has weights {fingerprint}. Load the same pre-trained checkpoint (a fresh one, not one already fine-tuned).");
    }
}
