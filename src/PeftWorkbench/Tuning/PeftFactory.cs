using PeftWorkbench.Training;
using PeftWorkbench.Peft;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;
using PeftApi = PeftWorkbench.Peft.Peft;

namespace PeftWorkbench.Tuning;

/// <summary>
/// Trial models for any of the study's 16 methods: a backbone (shape, optional pre-trained weights), drop path
/// from the trial, a fresh head initialised as the trial's profile says, then <see cref="PeftApi.Attach(VisionTransformer, string, IReadOnlyDictionary{string, string}?, long?)"/>
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
            return vit.named_parameters().Where(p => !p.name.StartsWith("head.")).ToDictionary(p => p.name, p => p.parameter.DetachedClone());
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
            var profile = Profiles.Get(config.Profile);
            vit.ResetHead(numClasses, seed: config.Seed);
            InitHead(vit, profile.HeadInit, config.Seed);
            var model = PeftApi.Attach(vit, config.Method, WithProfileDefaults(config.Method, config.Hp, profile), seed: config.Seed);
            return new BuiltModel(model, model.TrainableParameterCountExcludingHead);
        }
        catch { vit.Dispose(); throw; }
    }

    /// <summary>A method's tuning grid for a profile: the study's full grid or the method's defaults (the profile's policy).</summary>
    public static IReadOnlyList<SortedDictionary<string, string>> Grid(string method, string profile) => Profiles.Get(profile).Grid(method);

    /// <summary>The trial's hyperparameters plus the profile's choices for options the trial leaves open: what
    /// vpt_shallow means (vpt_shallow_mode) and how adapters meet drop path (drop_path_masks). Given keys win.</summary>
    public static IReadOnlyDictionary<string, string> WithProfileDefaults(string method, IReadOnlyDictionary<string, string> hp, Profile profile)
    {
        var info = MethodRegistry.Get(method);
        var all = new Dictionary<string, string>(hp);
        void Default(string key, object value)
        {
            if (info.Options.Any(o => o.Key == key) && !all.ContainsKey(key)) all[key] = OptionValues.Format(value);
        }
        Default("vpt_shallow_mode", profile.VptShallow);
        Default("drop_path_masks", profile.AdapterDropPath);
        return all;
    }

    /// <summary>
    /// Initialises a fresh head. <see cref="HeadInit.LinearDefault"/>: what a default nn.Linear gets (the study's
    /// reset_classifier): Kaiming-uniform with a = sqrt 5, i.e. weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    /// drawn from a generator seeded by the trial. <see cref="HeadInit.TruncNormal"/>: ResetHead's timm init as is.
    /// </summary>
    public static void InitHead(VisionTransformer vit, HeadInit init, long seed)
    {
        if (init != HeadInit.LinearDefault || vit.head is not TorchSharp.Modules.Linear lin) return;
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var gen = new Generator(unchecked((ulong)seed));
        double bound = 1 / Math.Sqrt(lin.weight.shape[1]);
        lin.weight.copy_(torch.rand(lin.weight.shape, generator: gen).mul_(2 * bound).sub_(bound));
        lin.bias?.copy_(torch.rand(lin.bias.shape, generator: gen).mul_(2 * bound).sub_(bound));
    }
}
