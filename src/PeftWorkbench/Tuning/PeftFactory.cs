using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Tuning;

/// <summary>
/// Trial models for any of the study's 16 methods: a backbone (shape, optional pre-trained weights), drop path
/// from the trial, a fresh head, then <see cref="PeftApi.Attach(VisionTransformer, string, IReadOnlyDictionary{string, string}?, long?)"/>
/// with the trial's method hyperparameters. The trainable count is the method's, head excluded (the study's column).
/// Backbone weights are read once per factory and copied into every trial's model by name.
/// </summary>
public sealed class PeftFactory
{
    readonly VitConfig backbone;
    readonly Lazy<Dictionary<string, Tensor>?> weights;

    /// <param name="checkpoint">null: random init (seeded); "shipped:NAME": a checkpoint embedded in the library
    /// (<see cref="VisionTransformer.Pretrained"/>); else a checkpoint path in any format <see cref="VitWeights.Load"/>
    /// reads (timm safetensors/.pth, Google .npz, CLIP).</param>
    public PeftFactory(VitConfig backbone, string? checkpoint)
    {
        this.backbone = backbone;
        weights = new(() => checkpoint is null ? null : LoadWeights(checkpoint));
    }

    /// <summary>The backbone shape a checkpoint spec implies (shipped checkpoints carry their own), else <paramref name="preset"/>.</summary>
    public static VitConfig BackboneFor(string? checkpoint, VitConfig preset)
    {
        if (checkpoint is not null && checkpoint.StartsWith("shipped:"))
        {
            using var vit = VisionTransformer.Pretrained(checkpoint["shipped:".Length..]);
            return vit.Config;
        }
        return preset;
    }

    Dictionary<string, Tensor> LoadWeights(string checkpoint)
    {
        VisionTransformer vit;
        if (checkpoint.StartsWith("shipped:")) vit = VisionTransformer.Pretrained(checkpoint["shipped:".Length..]);
        else
        {
            // Strict by name and shape, all-or-nothing, any format; a head of another class count is skipped, and dropped below anyway.
            vit = new VisionTransformer(backbone);
            VitWeights.Load(vit, checkpoint);
        }
        using (vit)
            return vit.named_parameters().Where(p => !p.name.StartsWith("head.")).ToDictionary(p => p.name, p => p.parameter.detach().clone());
    }

    public BuiltModel Build(TrialConfig config, int numClasses)
    {
        var vit = new VisionTransformer(backbone with { DropPathRate = config.DropPath, NumClasses = numClasses }, seed: config.Seed);
        try
        {
            if (weights.Value is { } w)
            {
                using var _ = torch.no_grad();
                foreach (var (name, p) in vit.named_parameters())
                {
                    if (name.StartsWith("head.")) continue;
                    if (!w.TryGetValue(name, out var t)) throw new InvalidDataException($"Backbone checkpoint has no '{name}'.");
                    if (!t.shape.SequenceEqual(p.shape))
                        throw new InvalidDataException($"Backbone checkpoint '{name}' is [{string.Join(", ", t.shape)}], the model wants [{string.Join(", ", p.shape)}].");
                    p.copy_(t);
                }
            }
            vit.ResetHead(numClasses, seed: config.Seed);
            var model = PeftApi.Attach(vit, config.Method, config.Hp, seed: config.Seed);
            return new BuiltModel(model, model.TrainableParameterCountExcludingHead);
        }
        catch { vit.Dispose(); throw; }
    }

    /// <summary>A method's tuning grid for a profile: the study's full grid for "paper", the method's defaults
    /// otherwise (the default profile's 20-second budget affords lr x wd only).</summary>
    public static IReadOnlyList<SortedDictionary<string, string>> Grid(string method, string profile)
    {
        var info = MethodRegistry.Get(method);
        var points = profile == "paper" ? info.GridPoints().ToList() : new List<IReadOnlyDictionary<string, string>>();
        if (points.Count == 0) points.Add(new Dictionary<string, string>());
        return points.Select(p => new SortedDictionary<string, string>(p.ToDictionary(kv => kv.Key, kv => kv.Value), StringComparer.Ordinal)).ToList();
    }
}
