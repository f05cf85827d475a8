using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Bench;

/// <summary>One method's figures: medians over rounds, per-tensor AdamW then flat AdamW.</summary>
public sealed record OptimizerBenchRow(string Method, long TrainableParams, int Tensors,
    double PerTensorStepMs, double FlatStepMs, double PerTensorImagesPerSecond, double FlatImagesPerSecond)
{
    public double StepRatio => PerTensorStepMs / FlatStepMs;
    public double TrainRatio => FlatImagesPerSecond / PerTensorImagesPerSecond;
}

/// <summary>
/// What the flat AdamW buys (`peft bench optimizer`): per method, (1) zero_grad + step alone on the real
/// parameters, and (2) training images/s through Trainer.Fit, each per-tensor and flat in alternating rounds, medians.
/// </summary>
public static class OptimizerBench
{
    public static IEnumerable<OptimizerBenchRow> Run(VitConfig config, IReadOnlyList<string> methods, int batch, int rounds,
        int stepsPerRound, CancellationToken cancel = default)
    {
        using var data = Synthetic(config, batch * stepsPerRound);
        foreach (var method in methods)
        {
            if (cancel.IsCancellationRequested) yield break;
            yield return RunOne(config, method, data, batch, rounds, cancel);
        }
    }

    static OptimizerBenchRow RunOne(VitConfig config, string method, ImageSet data, int batch, int rounds, CancellationToken cancel)
    {
        using var model = PeftWorkbench.Peft.Peft.Attach(new VisionTransformer(config, seed: 0), method, seed: 1);
        var options = new TrainOptions { Epochs = 1, BatchSize = batch, WarmupEpochs = 0 };
        var (decay, noDecay) = WeightDecayGroups.Split(model, options.WeightDecayRule);
        var trainable = decay.Concat(noDecay).ToList();

        // Real gradients once, so both optimizers step on the tensors a training step leaves.
        using (var scope = torch.NewDisposeScope())
        {
            model.train();
            nn.functional.cross_entropy(model.call(data.Images.narrow(0, 0, batch)), data.Labels.narrow(0, 0, batch)).backward();
        }
        var stepMs = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        var ips = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
        Trainer.Fit(model, data, null, options, cancel: cancel); // warm-up
        for (int r = 0; r < rounds && !cancel.IsCancellationRequested; r++)
            foreach (var flat in r % 2 == 0 ? new[] { false, true } : new[] { true, false })
            {
                stepMs[flat].Add(OptimizerStepMs(options with { FlatAdamW = flat }, decay, noDecay));
                ips[flat].Add(Trainer.Fit(model, data, null, options with { FlatAdamW = flat }, cancel: cancel).ImagesPerSecond);
            }
        return new OptimizerBenchRow(method, trainable.Sum(p => p.Param.numel()), trainable.Count,
            IoBench.Median(stepMs[false]), IoBench.Median(stepMs[true]), IoBench.Median(ips[false]), IoBench.Median(ips[true]));
    }

    /// <summary>Milliseconds per zero_grad + step (median of 20 after 3 warm-up), the grads refilled from a saved copy each time.</summary>
    static double OptimizerStepMs(TrainOptions o, List<(string Name, TorchSharp.Modules.Parameter Param)> decay, List<(string Name, TorchSharp.Modules.Parameter Param)> noDecay)
    {
        var all = decay.Concat(noDecay).Select(p => p.Param).ToList();
        var saved = all.Select(p => p.grad?.detach().clone()).ToList();
        var values = all.Select(p => p.detach().clone()).ToList();
        var times = new List<double>();
        using (var opt = Trainer.MakeOptimizer(o, decay.Select(p => p.Param), noDecay.Select(p => p.Param)))
            for (int i = 0; i < 23; i++)
            {
                opt.zero_grad();
                using (torch.no_grad()) for (int j = 0; j < all.Count; j++) if (saved[j] is { } g) all[j].grad!.add_(g);
                var clock = Stopwatch.StartNew();
                opt.step();
                if (i >= 3) times.Add(clock.Elapsed.TotalMilliseconds);
            }
        // The bench must not train the model it measures: back to the values it had.
        using (torch.no_grad()) for (int j = 0; j < all.Count; j++) all[j].copy_(values[j]);
        foreach (var t in saved.Concat(values)) t?.Dispose();
        return IoBench.Median(times);
    }

    /// <summary>n random images and labels of the config's shape (seeded): what the throughput benchmarks train on.</summary>
    public static ImageSet Synthetic(VitConfig c, int n)
    {
        var gen = new Generator(1);
        return new ImageSet(torch.randn(new long[] { n, c.InChans, c.ImageSize, c.ImageSize }, generator: gen),
            torch.randint(0, c.NumClasses, new long[] { n }, generator: gen, dtype: ScalarType.Int64), c.NumClasses, "synthetic");
    }

    /// <summary>`peft bench optimizer`: the header with the machine's load, one row per method as it finishes, the load after.</summary>
    public static void Print(VitConfig config, IReadOnlyList<string> methods, int batch, int rounds, Action<string> log, CancellationToken cancel = default)
    {
        log($"bench optimizer: {config.Name} (dim {config.EmbedDim}, depth {config.Depth}, {config.ImageSize} px), batch {batch}, " +
            $"{torch.get_num_threads()} torch threads, {rounds} rounds; load {SweepBench.LoadAverage()}");
        foreach (var line in Table(Run(config, methods, batch, rounds, stepsPerRound: 4, cancel))) log(line);
        log($"load {SweepBench.LoadAverage()} (1, 5, 15 min); ratios are within this run, so shared cores weigh on both columns alike");
    }

    /// <summary>The table the CLI prints.</summary>
    public static IEnumerable<string> Table(IEnumerable<OptimizerBenchRow> rows)
    {
        yield return $"{"method",-10} {"params",10} {"tensors",7}   {"step ms: per-tensor",19} {"flat",7} {"ratio",6}   {"train img/s: per-tensor",23} {"flat",7} {"ratio",6}";
        foreach (var r in rows)
            yield return $"{r.Method,-10} {r.TrainableParams,10} {r.Tensors,7}   {r.PerTensorStepMs,19:F2} {r.FlatStepMs,7:F2} {r.StepRatio,5:F2}x   {r.PerTensorImagesPerSecond,23:F0} {r.FlatImagesPerSecond,7:F0} {r.TrainRatio,5:F2}x";
    }
}
