using PeftWorkbench.Data.Upstream;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Data;

/// <summary>
/// How well a frozen backbone's features transfer: a linear classifier on the class-token features.
/// <see cref="Ridge"/> is closed-form (one-hot ridge regression on standardised features: no training loop,
/// deterministic, fast enough for tests); <see cref="Logistic"/> trains the head with the one training loop
/// (<see cref="LinearProbe"/>), as the study's linear probing.
/// </summary>
public static class TransferProbe
{
    public static double Ridge(VisionTransformer backbone, ImageSet train, ImageSet test, double lambda = 1.0)
    {
        using var ftrain = FeatureCache.Build(backbone, train);
        using var ftest = FeatureCache.Build(backbone, test);
        return Ridge(ftrain, ftest, lambda);
    }

    /// <summary>Both probes on one pass of features (the probe table's cost is the backbone's forward passes).</summary>
    public static (double Logistic, double Ridge) Both(VisionTransformer backbone, ImageSet train, ImageSet test, TrainOptions options)
    {
        backbone.ResetHead(train.NumClasses, seed: options.Seed);
        using var ftrain = FeatureCache.Build(backbone, train);
        using var ftest = FeatureCache.Build(backbone, test);
        double ridge = Ridge(ftrain, ftest);
        LinearProbe.Fit(backbone, ftrain, null, options);
        using var result = LinearProbe.Evaluate(backbone, ftest);
        return (result.Top1, ridge);
    }

    static double Ridge(FeatureCache ftrain, FeatureCache ftest, double lambda = 1.0)
    {
        using var scope = torch.NewDisposeScope();
        var mean = ftrain.Features.mean(new long[] { 0 }, keepdim: true);
        var std = ftrain.Features.std(0, keepdim: true) + 1e-6f;
        Tensor Design(Tensor f) { var z = (f - mean) / std; return torch.cat(new[] { z, torch.ones(z.shape[0], 1) }, 1).to(ScalarType.Float64); }
        var x = Design(ftrain.Features);
        var y = nn.functional.one_hot(ftrain.Labels, ftrain.NumClasses).to(ScalarType.Float64);
        long d = x.shape[1];
        var w = torch.linalg.solve(x.t().mm(x) + lambda * torch.eye(d, dtype: ScalarType.Float64), x.t().mm(y));
        var pred = Design(ftest.Features).mm(w).argmax(1);
        return 100.0 * pred.eq(ftest.Labels).sum().item<long>() / Math.Max(1, ftest.Count);
    }

    /// <summary>Linear probe with the study's optimiser (AdamW, cosine) on cached features; returns test top-1.</summary>
    public static double Logistic(VisionTransformer backbone, ImageSet train, ImageSet test, TrainOptions options)
    {
        backbone.ResetHead(train.NumClasses, seed: options.Seed);
        using var ftrain = FeatureCache.Build(backbone, train);
        using var ftest = FeatureCache.Build(backbone, test);
        LinearProbe.Fit(backbone, ftrain, null, options);
        using var result = LinearProbe.Evaluate(backbone, ftest);
        return result.Top1;
    }
}

/// <summary>One task's logistic-probe test top-1 for the candidate backbone, today's shipped one and random init.</summary>
public sealed record ProbeRow(string Task, double Candidate, double Shipped, double Random);

/// <summary>
/// Which backbone a probe measures, and the rule a new one must pass to ship (Pretrained/README.md, fixed before the
/// broad backbone was measured): beat random init on every task, beat today's shipped "mini" on at least 9 of the
/// 11, and classify MNIST zero-shot at 90 % or more.
/// </summary>
public static class Backbones
{
    public const int MinBeatsShipped = 9;
    public const double MinZeroShotMnist = 90.0;

    /// <summary>A shipped name ("mini"), a pre-training state (*.state.safetensors) or a workbench checkpoint file.</summary>
    public static VisionTransformer Load(string nameOrPath)
    {
        if (VisionTransformer.PretrainedNames.Contains(nameOrPath)) return VisionTransformer.Pretrained(nameOrPath);
        if (!File.Exists(nameOrPath))
            throw new FileNotFoundException($"backbone '{nameOrPath}' is neither a shipped checkpoint ({string.Join(", ", VisionTransformer.PretrainedNames)}) nor a file");
        return nameOrPath.EndsWith(".state.safetensors", StringComparison.Ordinal) ? BroadPretraining.LoadState(nameOrPath) : VisionTransformer.LoadStrict(nameOrPath);
    }

    /// <summary>The verdict and one line per condition, each with its numbers.</summary>
    public static (bool Ships, IReadOnlyList<string> Reasons) ShippingRule(IReadOnlyList<ProbeRow> rows, double? zeroShotMnist, int expectedTasks = 11)
    {
        var reasons = new List<string>();
        bool ok = true;
        if (rows.Count != expectedTasks) { ok = false; reasons.Add($"probed {rows.Count} tasks, the rule needs all {expectedTasks}"); }
        var notAboveRandom = rows.Where(r => !(r.Candidate > r.Random)).Select(r => $"{r.Task} {r.Candidate:F1} <= {r.Random:F1}").ToList();
        if (notAboveRandom.Count > 0) ok = false;
        reasons.Add(notAboveRandom.Count == 0 ? $"beats random init on all {rows.Count} tasks" : $"does not beat random init on: {string.Join(", ", notAboveRandom)}");
        int beats = rows.Count(r => r.Candidate > r.Shipped);
        if (beats < MinBeatsShipped) ok = false;
        reasons.Add($"beats the shipped mini on {beats} of {rows.Count} tasks (needs {MinBeatsShipped})");
        if (zeroShotMnist is not double z || z < MinZeroShotMnist) ok = false;
        reasons.Add(zeroShotMnist is double zz ? $"zero-shot MNIST {zz:F1} % (needs {MinZeroShotMnist:F0} %)" : "zero-shot MNIST not measured");
        return (ok, reasons);
    }
}
