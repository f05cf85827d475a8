using PeftWorkbench.Data;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// Pre-logit features [N, D] of a frozen backbone (class-token output after the final norm), computed once per
/// image in eval mode, plus the labels. Linear probing trains the head on these instead of running the backbone
/// every epoch. Tensors live on the CPU and are owned by the cache.
/// </summary>
public sealed class FeatureCache : IDisposable
{
    public Tensor Features { get; }
    public Tensor Labels { get; }
    public int NumClasses { get; }
    public string Name { get; }
    public long Count => Labels.shape[0];

    FeatureCache(Tensor features, Tensor labels, int numClasses, string name)
    {
        Features = features; Labels = labels; NumClasses = numClasses; Name = name;
    }

    public static FeatureCache Build(VisionTransformer backbone, ImageSet set, int batchSize = 128, Device? device = null)
    {
        if (batchSize <= 0) throw new ArgumentException($"FeatureCache: batch size must be positive, got {batchSize}.");
        device ??= backbone.cls_token.device;
        bool wasTraining = backbone.training;
        ThreadBudget.Fit();
        backbone.eval();
        try
        {
            var chunks = new List<Tensor>();
            using (torch.no_grad())
                for (long i = 0; i < set.Count; i += batchSize)
                {
                    using var scope = torch.NewDisposeScope();
                    var x = set.Images.narrow(0, i, Math.Min(batchSize, set.Count - i)).to(device);
                    var f = backbone.ForwardHead(backbone.ForwardFeatures(x), preLogits: true);
                    chunks.Add(f.to(torch.float32).cpu().contiguous().MoveToOuterDisposeScope());
                }
            var features = chunks.Count > 0 ? torch.cat(chunks, 0) : torch.zeros(0, backbone.NumFeatures);
            foreach (var c in chunks) c.Dispose();
            return new FeatureCache(features, set.Labels.cpu().clone(), set.NumClasses, set.Name);
        }
        finally { backbone.train(wasTraining); }
    }

    internal Examples AsExamples() => new(Features, Labels, NumClasses, Name + " (features)");

    public void Dispose() { Features.Dispose(); Labels.Dispose(); }
}

/// <summary>
/// Linear probing through a <see cref="FeatureCache"/>: only the ViT's head trains, on cached features, with the
/// same loop and options as every other method. Afterwards the ViT classifies images with the trained head.
/// </summary>
public static class LinearProbe
{
    public static TrainHistory Fit(VisionTransformer backbone, FeatureCache train, FeatureCache? eval, TrainOptions options,
        IProgress<TrainProgress>? progress = null, CancellationToken cancel = default, Action<EvalResult>? takeLastEval = null)
    {
        if (train.Features.shape[1] != backbone.NumFeatures)
            throw new ArgumentException($"LinearProbe: cache '{train.Name}' has {train.Features.shape[1]}-d features, the backbone {backbone.NumFeatures}-d.");
        foreach (var p in backbone.parameters()) p.requires_grad = false;
        foreach (var p in backbone.head.parameters()) p.requires_grad = true;
        return Trainer.Fit(backbone.head, train.AsExamples(), eval?.AsExamples(), options, progress, cancel, takeLastEval);
    }

    public static EvalResult Evaluate(VisionTransformer backbone, FeatureCache set, int batchSize = 1024) =>
        Trainer.Evaluate(backbone.head, set.AsExamples(), batchSize, backbone.cls_token.device);
}
