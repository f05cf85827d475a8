using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Bench;

/// <summary>`peft bench train`: images/s for inference, linear probing through the full forward against the feature
/// cache, a full-FT step in fp32 and bf16, and RSS over a long fp32 run through Trainer.Fit.</summary>
public static class TrainBench
{
    public static void Run(VitConfig config, int batch, int steps, int threads, Action<string> log, CancellationToken cancel = default)
    {
        if (threads > 0) ThreadBudget.Pin(threads);
        var device = torch.CPU;
        log($"bench train: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px, patch {config.PatchSize}), batch {batch}, {torch.get_num_threads()} torch threads, RSS {ProcessMemory.Rss() / 1e6:F0} MB at start");
        int n = batch * 10;
        using var data = OptimizerBench.Synthetic(config, n);
        using var model = new VisionTransformer(config, seed: 0);

        // Inference: the evaluation path (eval mode, no_grad, dispose scope per batch).
        Trainer.Evaluate(model, data, batch).Dispose(); // warm-up
        var sw = Stopwatch.StartNew();
        int evalRounds = 3;
        for (int i = 0; i < evalRounds; i++) Trainer.Evaluate(model, data, batch).Dispose();
        log($"  inference           {evalRounds * n / sw.Elapsed.TotalSeconds,8:F0} img/s");

        // Linear probe per epoch: through the full forward vs through the cache.
        var probeOptions = new TrainOptions { Epochs = 1, BatchSize = batch, Device = device };
        foreach (var (name, p) in model.named_parameters()) p.requires_grad = name.StartsWith("head.");
        sw.Restart();
        Trainer.Fit(model, data, null, probeOptions, cancel: cancel);
        double fullEpoch = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var cache = FeatureCache.Build(model, data, batch);
        double cacheBuild = sw.Elapsed.TotalSeconds;
        sw.Restart();
        int probeEpochs = 20;
        LinearProbe.Fit(model, cache, null, probeOptions with { Epochs = probeEpochs }, cancel: cancel);
        double cachedEpoch = sw.Elapsed.TotalSeconds / probeEpochs;
        log($"  linear probe epoch  full forward {fullEpoch * 1e3:F0} ms, cached {cachedEpoch * 1e3:F2} ms ({fullEpoch / cachedEpoch:F0}x; cache built once in {cacheBuild * 1e3:F0} ms)");

        // Full fine-tuning, fp32 against bf16 (fp32 masters), alternated twice to even out the load of other processes.
        foreach (var p in model.parameters()) p.requires_grad = true;
        var shortRun = new TrainOptions { Epochs = 3, BatchSize = batch, Device = device, WarmupEpochs = 0 };
        var ips = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        foreach (var bf16 in new[] { false, true, false, true })
            ips[bf16].Add(Trainer.Fit(model, data, null, shortRun with { Bf16 = bf16 }, cancel: cancel).ImagesPerSecond);
        log($"  full FT step fp32   {ips[false].Average(),8:F0} img/s ({string.Join(", ", ips[false].Select(v => v.ToString("F0")))})");
        log($"  full FT step bf16   {ips[true].Average(),8:F0} img/s ({string.Join(", ", ips[true].Select(v => v.ToString("F0")))}), x{ips[true].Average() / ips[false].Average():F2}");

        // Memory over a long fp32 run through Trainer.Fit: RSS after 10, 100, half and all `steps` steps.
        var marks = new SortedDictionary<long, long>();
        var wanted = new HashSet<long> { 10, 100, steps / 2, steps };
        int stepsPerEpoch = (n + batch - 1) / batch;
        var options = new TrainOptions { Epochs = (steps + stepsPerEpoch - 1) / stepsPerEpoch, BatchSize = batch, Device = device, WarmupEpochs = 0 };
        var progress = new Probe(p =>
        {
            if (p.Phase == "train" && p.GlobalStep <= steps && wanted.Contains(p.GlobalStep)) marks[p.GlobalStep] = ProcessMemory.Rss();
        });
        var h = Trainer.Fit(model, data, null, options, progress, cancel);
        log($"  full FT step        {h.ImagesPerSecond,8:F0} img/s ({h.Steps} steps, {h.WallSeconds:F1} s)");
        // Only the marks the run reached (a short --steps run has no step 100).
        log($"  RSS                 after {string.Join(", ", marks.Select(m => $"{m.Key} steps {m.Value / 1e6:F0} MB"))}; peak {ProcessMemory.PeakRss() / 1e6:F0} MB");
    }

    sealed class Probe(Action<TrainProgress> f) : IProgress<TrainProgress> { public void Report(TrainProgress p) => f(p); }
}

/// <summary>`peft bench protocol`: wall time of the VTAB-1K protocol (tune grid + final) for one method on a toy task with
/// VTAB-1K split sizes (800/200/1000/2000, 10 classes) at the preset's image size.</summary>
public static class ProtocolBench
{
    public static void Run(VitConfig config, string method, string profile, Action<string> log, CancellationToken cancel = default)
    {
        using var task = Tuning.ToySuite.Vtab1kSized(10, config.ImageSize, 2000, config.InChans);
        var options = Tuning.ProtocolOptions.Vtab1k(profile);
        var clock = Stopwatch.StartNew();
        var result = Tuning.Protocol.Vtab1k(task, method, Tuning.PeftFactory.Grid(method, options.Profile), new Tuning.PeftFactory(config, null).Build, options, null, null, cancel);
        foreach (var rec in result.Tuning.Append(result.Final)) log("  " + Tuning.Sweep.Describe(rec) + $"  {rec.ImagesPerSecond:F0} img/s");
        log($"protocol {method} on {task.Name} ({config.Name}, profile {options.Profile}): {result.Tuning.Count} tune + 1 final in {clock.Elapsed.TotalSeconds:F1} s");
    }
}
