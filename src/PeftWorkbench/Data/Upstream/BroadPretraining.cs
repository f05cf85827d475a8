using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PeftWorkbench.Checkpoints;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Data.Upstream;

/// <summary>Where a resumable pre-training stands: printed as a progress line with an ETA.</summary>
public sealed record PretrainStatus(int Step, int TotalSteps, double Loss, double Lr, double ImagesPerSecond, double EtaSeconds, double? ValTop1);

/// <summary>
/// Resumable pre-training on the broad upstream. Every <see cref="BroadRecipe.CheckpointEvery"/> steps (and when
/// cancelled) it writes &lt;out&gt;/&lt;name&gt;.state.safetensors atomically: the weights, AdamW's moments and step
/// counts, the recipe, the step (which is the data position: chunk = step / steps per chunk) and the curves so far.
/// There is no other state: no dropout, no augmentation, no shuffling (the chunks are fresh random draws), and the
/// schedule is a function of the step. So, with the same threads, a run resumed from a checkpoint ends with the
/// same bytes as one that never stopped. At the end it writes &lt;name&gt;.safetensors and &lt;name&gt;.recipe.json
/// beside the state (the state stays, so a longer recipe could continue it).
/// </summary>
public static class BroadPretraining
{
    public static string StatePath(string outDir, BroadRecipe r) => Path.Combine(outDir, $"{r.Name}.state.safetensors");

    /// <summary>Runs (or, with <paramref name="resume"/>, continues) the recipe; returns the model and its record
    /// (Completed false when cancelled: the checkpoint then holds the last step).</summary>
    public static (VisionTransformer Model, JsonObject Record, bool Completed) Run(BroadRecipe recipe, string outDir, bool resume,
        string command, Action<string>? log = null, IProgress<PretrainStatus>? progress = null, CancellationToken cancel = default)
    {
        recipe.Validate();
        log ??= _ => { };
        string statePath = StatePath(outDir, recipe);
        SafetensorsFile? state = null;
        if (File.Exists(statePath))
        {
            state = SafetensorsFile.Open(statePath);
            CheckSameRun(state, recipe, statePath);
            if (!resume)
                throw new InvalidOperationException($"{statePath} already holds step {state.Metadata["step"]} of '{recipe.Name}': pass --resume to continue it, or choose another --out.");
        }
        else if (resume) log($"no checkpoint at {statePath}: starting from step 0");

        using var fonts = GlyphRenderer.FromSystemFonts();
        var upstream = recipe.Upstream(fonts);
        var config = VitConfig.Preset(recipe.Preset) with { NumClasses = upstream.NumClasses };
        var vit = new VisionTransformer(config, seed: recipe.Seed);
        var record = state is null ? NewRecord(recipe, command, vit, fonts, upstream) : JsonNode.Parse(state.Metadata["record"])!.AsObject();
        int step = state is null ? 0 : int.Parse(state.Metadata["step"], CultureInfo.InvariantCulture);
        if (state is null && recipe.InitFrom is { } init) InitFrom(vit, init, log);
        if (state is not null) LoadWeights(vit, state);

        var model = new ByteInput(vit, Normalization.Half);
        var (decay, noDecay) = WeightDecayGroups.Split(model);
        var trainable = decay.Concat(noDecay).Select(p => p.Param).ToList();
        using var optimizer = new FlatAdamW(new[]
        {
            new AdamW.ParamGroup(decay.Select(p => p.Param).ToList(), lr: recipe.Lr, weight_decay: recipe.WeightDecay),
            new AdamW.ParamGroup(noDecay.Select(p => p.Param).ToList(), lr: recipe.Lr, weight_decay: 0),
        }, recipe.Lr);
        if (state is not null)
        {
            var steps = JsonSerializer.Deserialize<Dictionary<string, long>>(state.Metadata["adam_steps"])!;
            foreach (var (name, p) in decay.Concat(noDecay))
            {
                using var m = state.Read($"adam_m/{name}");
                using var v = state.Read($"adam_v/{name}");
                optimizer.Restore(p, steps[name], m, v);
            }
            log($"resumed {recipe.Name} at step {step}/{recipe.Steps} from {statePath}");
        }
        int threads = torch.get_num_threads();
        if (state is not null && state.Metadata.TryGetValue("threads", out var t0) && t0 != threads.ToString(CultureInfo.InvariantCulture))
            log($"note: the checkpoint ran on {t0} threads, this run on {threads}: the result stays valid but no longer matches an uninterrupted run bit for bit");

        var schedule = new CosineWarmupSchedule(recipe.Lr, recipe.Steps, recipe.WarmupSteps, 0, recipe.MinLr);
        var valRaw = upstream.Render(recipe.ValImages, recipe.DataSeed, "val", config.ImageSize);
        // The recipe's fields do not pin the generators' code: the validation images' digest does (a change to the
        // drawing code changes the data, and a checkpoint must not continue on other data than it started with).
        string valDigest = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(valRaw.Pixels))[..16].ToLowerInvariant();
        if (state is not null && state.Metadata.TryGetValue("val_digest", out var theirDigest) && theirDigest != valDigest)
            throw new InvalidOperationException($"{statePath} was trained on upstream images with digest {theirDigest}; this build renders {valDigest} for the same recipe and seed (the generators changed): refusing to resume.");
        using var val = ToSet(valRaw, "broad-val");
        ImageSet? chunk = null; int chunkIndex = -1;
        var curves = record["curves"]!.AsObject();
        double wallBefore = record["time"]!["train_seconds"]!.GetValue<double>(), renderBefore = record["time"]!["render_seconds"]!.GetValue<double>();
        // One entry per sitting (a run or a resume): where it ran and how fast, for the record's wall time and host.
        var sitting = new JsonObject
        {
            ["started_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), ["host_cpu"] = CpuName(),
            ["threads"] = threads, ["from_step"] = step, ["to_step"] = step, ["seconds"] = 0.0, ["images_per_second"] = 0.0,
            ["loadavg_at_start"] = LoadAverage(),
        };
        if (record["time"]!["sittings"] is not JsonArray) record["time"]!["sittings"] = new JsonArray();
        record["time"]!["sittings"]!.AsArray().Add(sitting);
        var clock = Stopwatch.StartNew();
        double renderSeconds = 0, lossSum = 0; int lossCount = 0, runSteps = 0;
        bool cancelled = false;
        model.train();
        try
        {
            while (step < recipe.Steps)
            {
                if (cancel.IsCancellationRequested) { cancelled = true; break; }
                int c = step / recipe.StepsPerChunk;
                if (c != chunkIndex)
                {
                    var rc = Stopwatch.StartNew();
                    chunk?.Dispose();
                    chunk = ToSet(upstream.Render(recipe.ChunkImages, recipe.DataSeed, $"train/{c}", config.ImageSize), $"broad-train-{c}");
                    chunkIndex = c;
                    renderSeconds += rc.Elapsed.TotalSeconds;
                }
                double lr = schedule.At(step);
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                using (var scope = torch.NewDisposeScope())
                {
                    long at = (long)(step % recipe.StepsPerChunk) * recipe.BatchSize;
                    var x = chunk!.Images.narrow(0, at, recipe.BatchSize);
                    var y = chunk.Labels.narrow(0, at, recipe.BatchSize);
                    optimizer.zero_grad();
                    var loss = nn.functional.cross_entropy(model.call(x), y, label_smoothing: recipe.LabelSmoothing);
                    double l = loss.item<float>();
                    if (!double.IsFinite(l)) throw new InvalidOperationException($"pre-training diverged at step {step} (loss {l}); the checkpoint keeps the last good step");
                    loss.backward();
                    nn.utils.clip_grad_norm_(trainable, recipe.ClipGradNorm);
                    optimizer.step();
                    lossSum += l; lossCount++;
                }
                step++; runSteps++;
                double ips = runSteps * (double)recipe.BatchSize / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                double? top1 = null;
                if (step % recipe.EvalEvery == 0 || step == recipe.Steps)
                {
                    top1 = Evaluate(vit, model, val, upstream, curves, step, lossSum / Math.Max(lossCount, 1), log);
                    lossSum = 0; lossCount = 0;
                    model.train();
                }
                progress?.Report(new PretrainStatus(step, recipe.Steps, lossCount > 0 ? lossSum / lossCount : double.NaN, lr, ips,
                    (recipe.Steps - step) * (double)recipe.BatchSize / Math.Max(ips, 1e-9), top1));
                if (step % recipe.CheckpointEvery == 0 || step == recipe.Steps)
                    SaveState(statePath, vit, decay.Concat(noDecay), optimizer, recipe, step, threads, valDigest, record, wallBefore + clock.Elapsed.TotalSeconds, renderBefore + renderSeconds);
            }
            if (cancelled)
            {
                SaveState(statePath, vit, decay.Concat(noDecay), optimizer, recipe, step, threads, valDigest, record, wallBefore + clock.Elapsed.TotalSeconds, renderBefore + renderSeconds);
                log($"stopped at step {step}/{recipe.Steps}; checkpoint {statePath} (continue with --resume)");
            }
        }
        finally { chunk?.Dispose(); }
        vit.eval();
        bool completed = step >= recipe.Steps;
        if (completed)
        {
            record["finished_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            vit.SaveWorkbenchCheckpoint(Path.Combine(outDir, $"{recipe.Name}.safetensors"),
                new Dictionary<string, string> { ["recipe"] = recipe.Name, ["classes"] = ClassNames(upstream) });
            AtomicFile.WriteText(Path.Combine(outDir, $"{recipe.Name}.recipe.json"), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        return (vit, record, completed);
    }

    /// <summary>The model of a pre-training state file (for probing a run in progress).</summary>
    public static VisionTransformer LoadState(string path)
    {
        var state = SafetensorsFile.Open(path);
        if (!state.Metadata.TryGetValue("recipe_json", out var json) || !state.Metadata.TryGetValue("record", out var rec))
            throw new InvalidDataException($"{path}: not a pre-training state (no 'recipe_json' or 'record' in its metadata)");
        var recipe = JsonSerializer.Deserialize<BroadRecipe>(json) ?? throw new InvalidDataException($"{path}: unreadable 'recipe_json'");
        int classes = JsonNode.Parse(rec)!["data"]!["classes"]!.GetValue<int>();
        var vit = new VisionTransformer(VitConfig.Preset(recipe.Preset) with { NumClasses = classes }, seed: recipe.Seed);
        try { LoadWeights(vit, state); } catch { vit.Dispose(); throw; }
        vit.eval();
        return vit;
    }

    /// <summary>Refuses a checkpoint from another recipe or data seed, naming both.</summary>
    static void CheckSameRun(SafetensorsFile state, BroadRecipe recipe, string path)
    {
        string Meta(string k) => state.Metadata.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"{path}: not a pre-training checkpoint (no '{k}' in its metadata)");
        var theirs = JsonSerializer.Deserialize<BroadRecipe>(Meta("recipe_json"))
            ?? throw new InvalidDataException($"{path}: unreadable 'recipe_json'");
        if (theirs.Name != recipe.Name || theirs.DataSeed != recipe.DataSeed || theirs.Fingerprint() != recipe.Fingerprint())
            throw new InvalidOperationException(
                $"{path} was written by recipe '{theirs.Name}' (data seed {theirs.DataSeed}, fingerprint {theirs.Fingerprint()}); " +
                $"this run is recipe '{recipe.Name}' (data seed {recipe.DataSeed}, fingerprint {recipe.Fingerprint()}): refusing to resume. " +
                "Use the checkpoint's recipe, or another --out for a new run.");
    }

    /// <summary>Starts from a shipped checkpoint, or a checkpoint file (a name ending in .safetensors, relative to the working
    /// directory): every tensor of the same name and shape is copied; the head keeps the source's rows for its classes
    /// (the upstream's first classes, the characters), the new rows stay random.</summary>
    static void InitFrom(VisionTransformer vit, string name, Action<string> log)
    {
        bool file = name.EndsWith(".safetensors", StringComparison.Ordinal);
        if (file && !File.Exists(name))
            throw new FileNotFoundException($"init from '{name}': no such checkpoint file (relative paths are read from {Environment.CurrentDirectory}).", name);
        using var source = file ? VisionTransformer.LoadStrict(name) : VisionTransformer.Pretrained(name);
        var from = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var _ = torch.no_grad();
        int copied = 0;
        foreach (var (n, p) in vit.named_parameters())
        {
            if (!from.TryGetValue(n, out var src)) throw new InvalidDataException($"init from '{name}': it has no tensor '{n}'");
            if (src.shape.SequenceEqual(p.shape)) p.copy_(src);
            else if (src.dim() >= 1 && p.dim() == src.dim() && src.shape.Skip(1).SequenceEqual(p.shape.Skip(1)) && src.shape[0] < p.shape[0])
                p.narrow(0, 0, src.shape[0]).copy_(src);
            else throw new InvalidDataException($"init from '{name}': '{n}' is [{string.Join(", ", src.shape)}], the model needs [{string.Join(", ", p.shape)}]");
            copied++;
        }
        log($"initialised from the shipped '{name}' ({copied} tensors; head rows 0-{source.Config.NumClasses - 1} kept)");
    }

    static void LoadWeights(VisionTransformer vit, SafetensorsFile state)
    {
        using var _ = torch.no_grad();
        foreach (var (n, p) in vit.named_parameters())
        {
            using var t = state.Read($"model/{n}");
            if (!t.shape.SequenceEqual(p.shape)) throw new InvalidDataException($"{state.Path}: 'model/{n}' is [{string.Join(", ", t.shape)}], the model needs [{string.Join(", ", p.shape)}]");
            p.copy_(t);
        }
    }

    static void SaveState(string path, VisionTransformer vit, IEnumerable<(string Name, Parameter Param)> trained, FlatAdamW optimizer,
        BroadRecipe recipe, int step, int threads, string valDigest, JsonObject record, double trainSeconds, double renderSeconds)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (n, p) in vit.named_parameters()) tensors[$"model/{n}"] = p;
        var steps = new Dictionary<string, long>();
        foreach (var (n, p) in trained)
        {
            var (s, m, v) = optimizer.StateOf(p);
            tensors[$"adam_m/{n}"] = m; tensors[$"adam_v/{n}"] = v; steps[n] = s;
        }
        if (record["time"]!["sittings"] is JsonArray { Count: > 0 } sittings)
        {
            var now = sittings[^1]!.AsObject();
            // This sitting began at (total so far) - (its seconds so far), both as of the last save.
            double secs = trainSeconds - (record["time"]!["train_seconds"]!.GetValue<double>() - now["seconds"]!.GetValue<double>());
            int from = now["from_step"]!.GetValue<int>();
            now["to_step"] = step; now["seconds"] = Math.Round(secs, 1);
            now["images_per_second"] = Math.Round((step - from) * (double)recipe.BatchSize / Math.Max(secs, 1e-9), 1);
        }
        record["time"]!["train_seconds"] = Math.Round(trainSeconds, 1);
        record["time"]!["render_seconds"] = Math.Round(renderSeconds, 1);
        record["results"]!["steps_done"] = step;
        var meta = new Dictionary<string, string>
        {
            ["recipe"] = recipe.Name, ["recipe_json"] = recipe.ToJson(), ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["adam_steps"] = JsonSerializer.Serialize(steps), ["threads"] = threads.ToString(CultureInfo.InvariantCulture),
            ["val_digest"] = valDigest, ["record"] = record.ToJsonString(),
        };
        SafetensorsFile.Write(path, tensors, meta);
    }

    /// <summary>Validation top-1 (all classes and per source) and, when the suite's MNIST is installed, zero-shot MNIST;
    /// appended to the record's curves.</summary>
    static double Evaluate(VisionTransformer vit, ByteInput model, ImageSet val, BroadUpstream upstream, JsonObject curves, int step, double trainLoss, Action<string> log)
    {
        // Not Trainer.Evaluate: it re-fits the thread count to the load, and a resumed run must keep its threads.
        var p = new long[val.Count];
        model.eval();
        using (torch.no_grad())
            for (long i = 0; i < val.Count; i += 256)
            {
                using var scope = torch.NewDisposeScope();
                long n = Math.Min(256, val.Count - i);
                model.call(val.Images.narrow(0, i, n)).argmax(1).data<long>().ToArray().CopyTo(p, i);
            }
        var y = val.Labels.data<long>().ToArray();
        double top1 = 100.0 * Enumerable.Range(0, y.Length).Count(i => p[i] == y[i]) / Math.Max(1, y.Length);
        var perSource = new JsonObject();
        foreach (var (source, _, _) in upstream.Sources)
        {
            var idx = Enumerable.Range(0, y.Length).Where(i => upstream.SourceOf(y[i]).Source == source).ToList();
            if (idx.Count > 0) perSource[source.Name] = Math.Round(100.0 * idx.Count(i => p[i] == y[i]) / idx.Count, 2);
        }
        double? zeroShot = null;
        try { using var mnist = Suite.Mini.LoadSplit("mnist", "test"); zeroShot = Math.Round(ZeroShot.DigitAccuracy(vit, mnist), 2); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { }
        curves[step.ToString(CultureInfo.InvariantCulture)] = new JsonObject
        {
            ["train_loss"] = Math.Round(trainLoss, 4), ["val_top1"] = Math.Round(top1, 2), ["val_top1_by_source"] = perSource,
            ["zero_shot_mnist_test_top1"] = zeroShot,
        };
        log($"step {step}: train loss {trainLoss:F3}, val top-1 {top1:F1} % ({string.Join(", ", perSource.Select(kv => $"{kv.Key} {kv.Value}"))})" +
            (zeroShot is null ? "" : $", zero-shot MNIST {zeroShot:F1} %"));
        return top1;
    }

    static JsonObject NewRecord(BroadRecipe recipe, string command, VisionTransformer vit, GlyphRenderer fonts, BroadUpstream upstream) => new()
    {
        ["recipe"] = recipe.Name,
        ["command"] = command,
        ["recipe_settings"] = JsonNode.Parse(recipe.ToJson()),
        ["fingerprint"] = recipe.Fingerprint(),
        ["model"] = JsonSerializer.SerializeToNode(VisionTransformer.ConfigMetadata(vit.Config)),
        ["parameters"] = vit.ParameterCount,
        ["data"] = new JsonObject
        {
            ["sources"] = new JsonArray(upstream.Sources.Select(s => (JsonNode)new JsonObject
            {
                ["name"] = s.Source.Name, ["classes"] = s.Source.NumClasses, ["first_class"] = s.Offset, ["share"] = Math.Round(s.Share, 4),
            }).ToArray()),
            ["classes"] = upstream.NumClasses,
            ["stream"] = "chunk k of the training data = BroadUpstream.Render(ChunkImages, DataSeed, \"train/k\"); validation = \"val\"",
            ["fonts"] = fonts.FontFiles.Count,
            ["normalization"] = "mean = std = 0.5",
        },
        ["curves"] = new JsonObject(),
        ["results"] = new JsonObject { ["steps_done"] = 0 },
        ["time"] = new JsonObject
        {
            ["train_seconds"] = 0.0, ["render_seconds"] = 0.0, ["threads"] = torch.get_num_threads(), ["cpu_cores"] = Environment.ProcessorCount,
            ["host_cpu"] = CpuName(),
        },
        ["versions"] = new JsonObject { ["peftworkbench"] = Workbench.Version, ["libtorch"] = torch.__version__ },
    };

    static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Trim(); } catch (IOException) { return "unknown"; }
    }

    static string CpuName()
    {
        try { return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "unknown"; }
        catch (IOException) { return "unknown"; }
    }

    static string ClassNames(BroadUpstream upstream) =>
        string.Join(",", upstream.Sources.Select(s => $"{s.Source.Name}:{s.Offset}-{s.Offset + s.Source.NumClasses - 1}"));

    static ImageSet ToSet(RawImages raw, string name) =>
        new(Transforms.ToByteTensor(raw), torch.tensor(raw.Labels, ScalarType.Int64), raw.NumClasses, name);
}
