using PeftWorkbench.Checkpoints;
using PeftWorkbench.Peft;
using PeftWorkbench.Tests.Training;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;
using TorchSharp;

namespace PeftWorkbench.Tests.Tuning;

public class PeftFactoryTests
{
    static TrialConfig Lora => new() { Task = "t", Method = "lora", Hp = new(StringComparer.Ordinal) { ["lora_bottleneck"] = "2" } };

    [Fact]
    public void BackboneWeightsComeFromTheCheckpointAndTheHeadIsFresh()
    {
        var dir = Directory.CreateTempSubdirectory("peft-factory-").FullName;
        var path = Path.Combine(dir, "backbone.safetensors");
        using var source = TinyData.Vit(classes: 7, seed: 123);
        VitWeights.Save(source, path);

        using var built = new PeftFactory(TinyData.Config(), path).Build(Lora, numClasses: 3);
        var vit = Assert.IsType<PeftModel>(built.Model).model;
        var trained = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in source.named_parameters().Where(p => !p.name.StartsWith("head.")))
            Assert.True(p.allclose(trained[name], rtol: 0, atol: 0), $"{name} differs from the checkpoint");
        Assert.Equal(3, trained["head.weight"].shape[0]);
        Directory.Delete(dir, true);
    }

    [Fact]
    public void ACheckpointOfAnotherShapeIsRefusedNamingTheFile()
    {
        var dir = Directory.CreateTempSubdirectory("peft-factory-").FullName;
        var path = Path.Combine(dir, "wide.safetensors");
        using (var wide = new VisionTransformer(TinyData.Config() with { EmbedDim = TinyData.Config().EmbedDim * 2 }, seed: 1))
            VitWeights.Save(wide, path);
        var e = Assert.ThrowsAny<Exception>(() => new PeftFactory(TinyData.Config(), path).Build(Lora, 3));
        Assert.Contains("wide.safetensors", e.Message);
        Directory.Delete(dir, true);
    }
}
