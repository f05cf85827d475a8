using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Training;

/// <summary>
/// Which trainable parameters get weight decay (timm's rule): every tensor with 2+ dimensions except those a
/// module declares through <see cref="INoWeightDecay"/> (the ViT's positions and class token, VPT's prompts);
/// 1-D tensors (norms, biases, scales, gammas) never decay.
/// </summary>
public static class WeightDecayGroups
{
    /// <summary>Full names of the parameters <paramref name="model"/>'s modules exempt, each prefixed with its module's place.</summary>
    public static ISet<string> Declared(nn.Module model)
    {
        var names = new HashSet<string>();
        var modules = model.named_modules().Prepend(("", model));
        foreach (var (prefix, m) in modules)
            if (m is INoWeightDecay d)
                foreach (var n in d.NoWeightDecay()) names.Add(prefix.Length == 0 ? n : prefix + "." + n);
        return names;
    }

    /// <summary>The trainable (requires_grad) parameters of <paramref name="model"/> split into (decay, no decay), names
    /// kept, by <paramref name="rule"/>: timm's exemptions, or every tuned tensor (the study's plain AdamW).</summary>
    public static (List<(string Name, Parameter Param)> Decay, List<(string Name, Parameter Param)> NoDecay)
        Split(nn.Module model, WeightDecayRule rule = WeightDecayRule.TimmExemptions)
    {
        var exempt = rule == WeightDecayRule.TimmExemptions ? Declared(model) : new HashSet<string>();
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!p.requires_grad) continue;
            bool decays = rule == WeightDecayRule.EveryTunedTensor || (p.dim() >= 2 && !exempt.Contains(name));
            (decays ? decay : noDecay).Add((name, p));
        }
        return (decay, noDecay);
    }
}
