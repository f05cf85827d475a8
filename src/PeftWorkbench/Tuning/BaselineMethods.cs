using PeftWorkbench.Checkpoints;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>
/// The study's two baselines as model factories: "full" (every weight trains) and "linear" (only the head:
/// trains through a feature cache). Trainable counts leave out the head, as the study's tables do
/// (full FT on ViT-B/16: 85.8 M; linear: 0). PEFT methods come from Peft/ and plug in the same way.
/// </summary>
public static class BaselineMethods
{
    public static IReadOnlyList<string> Names { get; } = new[] { "full", "linear" };

    /// <summary>A factory for <paramref name="method"/> on <paramref name="backbone"/>, loading weights from
    /// <paramref name="checkpoint"/> (safetensors, timm names; the head is never loaded) when given.</summary>
    public static ModelFactory Factory(string method, VitConfig backbone, string? checkpoint = null) => method switch
    {
        "full" => (config, classes) =>
        {
            var vit = Build(backbone, checkpoint, config, classes);
            return new BuiltModel(vit, vit.named_parameters().Where(p => !p.name.StartsWith("head.")).Sum(p => p.parameter.numel()));
        },
        "linear" => (config, classes) =>
        {
            var vit = Build(backbone, checkpoint, config, classes);
            foreach (var (name, p) in vit.named_parameters()) p.requires_grad = name.StartsWith("head.");
            return new BuiltModel(vit, 0);
        },
        _ => throw new ArgumentException($"Unknown baseline method '{method}'. Known: {string.Join(", ", Names)}."),
    };

    static VisionTransformer Build(VitConfig backbone, string? checkpoint, TrialConfig config, int classes)
    {
        var vit = new VisionTransformer(backbone with { DropPathRate = config.DropPath, NumClasses = classes }, seed: config.Seed);
        if (checkpoint is not null) LoadBackbone(vit, checkpoint);
        vit.ResetHead(classes, seed: config.Seed);
        return vit;
    }

    /// <summary>Copies every non-head tensor of a safetensors checkpoint into the ViT, by name, checking shapes.</summary>
    public static void LoadBackbone(VisionTransformer vit, string path)
    {
        var file = SafetensorsFile.Open(path);
        var own = vit.state_dict();
        using var _ = torch.no_grad();
        foreach (var (name, target) in own)
        {
            if (name.StartsWith("head.")) continue;
            if (!file.Entries.ContainsKey(name)) throw new InvalidDataException($"{path}: no tensor '{name}' for the backbone.");
            using var t = file.Read(name);
            if (!t.shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"{path}: '{name}' has shape [{string.Join(", ", t.shape)}], the model wants [{string.Join(", ", target.shape)}].");
            target.copy_(t);
        }
    }
}
