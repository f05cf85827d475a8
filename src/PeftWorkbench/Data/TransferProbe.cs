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
        using var scope = torch.NewDisposeScope();
        var mean = ftrain.Features.mean(new long[] { 0 }, keepdim: true);
        var std = ftrain.Features.std(0, keepdim: true) + 1e-6f;
        Tensor Design(Tensor f) { var z = (f - mean) / std; return torch.cat(new[] { z, torch.ones(z.shape[0], 1) }, 1).to(ScalarType.Float64); }
        var x = Design(ftrain.Features);
        var y = nn.functional.one_hot(ftrain.Labels, train.NumClasses).to(ScalarType.Float64);
        long d = x.shape[1];
        var w = torch.linalg.solve(x.t().mm(x) + lambda * torch.eye(d, dtype: ScalarType.Float64), x.t().mm(y));
        var pred = Design(ftest.Features).mm(w).argmax(1);
        return 100.0 * pred.eq(ftest.Labels).sum().item<long>() / Math.Max(1, test.Count);
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
