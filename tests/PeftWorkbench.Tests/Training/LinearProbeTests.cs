using PeftWorkbench.Training;
using TorchSharp;

namespace PeftWorkbench.Tests.Training;

public class LinearProbeTests
{
    [Fact]
    public void HeadTrainedOnTheCacheClassifiesImagesLikeTheCacheSays()
    {
        using var vit = TinyData.Vit();
        using var train = TinyData.Set(60);
        using var test = TinyData.Set(30, seed: 9);
        // A random ViT's class token carries almost nothing; "pre-train" it on the task first, then probe a fresh head.
        Trainer.Fit(vit, train, null, new TrainOptions { Epochs = 8, BatchSize = 16, Lr = 1e-2, Device = torch.CPU });
        vit.ResetHead(3, seed: 1);
        var backbone = vit.named_parameters().Where(p => !p.name.StartsWith("head.")).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var trainCache = FeatureCache.Build(vit, train, batchSize: 16);
        using var testCache = FeatureCache.Build(vit, test);
        Assert.Equal(new long[] { 60, 16 }, trainCache.Features.shape);

        var h = LinearProbe.Fit(vit, trainCache, testCache, new TrainOptions { Epochs = 20, BatchSize = 16, Lr = 3e-2, Device = torch.CPU });
        Assert.True(h.Completed);
        Assert.Equal(3 * 16 + 3, h.TrainableParams);
        Assert.True(h.LastEvalTop1 > 70, $"probe top-1 {h.LastEvalTop1}");
        // The backbone did not move; the full forward on images gives the cached-path logits.
        foreach (var (name, p) in vit.named_parameters().Where(p => !p.name.StartsWith("head.")))
            Assert.True(p.eq(backbone[name]).all().item<bool>(), name);
        using var viaImages = Trainer.Evaluate(vit, test);
        using var viaCache = LinearProbe.Evaluate(vit, testCache);
        Assert.True(viaImages.Logits.allclose(viaCache.Logits, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(h.LastEvalTop1, viaImages.Top1);
    }
}
