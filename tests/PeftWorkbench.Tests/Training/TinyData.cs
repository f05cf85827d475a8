using PeftWorkbench.Data;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tests.Training;

/// <summary>Small models and data that train in well under a second.</summary>
public static class TinyData
{
    public static VitConfig Config(int classes = 3) => new()
    {
        Name = "test-tiny", ImageSize = 8, PatchSize = 4, InChans = 3, EmbedDim = 16, Depth = 1, NumHeads = 2, NumClasses = classes,
    };

    public static VisionTransformer Vit(int classes = 3, long seed = 0) => new(Config(classes), seed);

    /// <summary>A learnable task: class c images are a per-class colour pattern plus noise.</summary>
    public static ImageSet Set(int count, int classes = 3, int seed = 0, string name = "tiny")
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator((ulong)(1000 + seed));
        var labels = torch.arange(count, ScalarType.Int64) % classes;
        var protos = torch.randn(new long[] { classes, 3, 8, 8 }, generator: new Generator(7));
        var images = protos.index_select(0, labels) + 0.5f * torch.randn(new long[] { count, 3, 8, 8 }, generator: gen);
        return new ImageSet(images.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), classes, name);
    }

    public static Vtab1kTask Task(int train = 48, int val = 24, int test = 30, int classes = 3) =>
        new("tiny-task", "natural", Set(train, classes, 1, "train800"), Set(val, classes, 2, "val200"),
            Set(train + val, classes, 3, "train800val200"), Set(test, classes, 4, "test"));
}
