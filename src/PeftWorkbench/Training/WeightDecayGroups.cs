using TorchSharp.Modules;

namespace PeftWorkbench.Training;

/// <summary>
/// Which trainable parameters get weight decay: weights with 2+ dimensions, except positions, class tokens,
/// prompts, norms, biases and scales/gammas (by name, because VPT prompts and pos_embed are 3-D tensors that
/// must still not decay). This is timm's rule plus the names PEFT methods use.
/// </summary>
public static class WeightDecayGroups
{
    /// <summary>Name fragments (matched per dot-separated segment, case-insensitively) that exempt a parameter.</summary>
    public static IReadOnlyList<string> ExemptFragments { get; } =
        new[] { "pos_embed", "cls_token", "prompt", "norm", "bias", "scale", "gamma", "token" };

    public static bool Decays(string name, Parameter p)
    {
        if (p.dim() < 2) return false;
        foreach (var segment in name.Split('.'))
            foreach (var f in ExemptFragments)
                if (segment.Contains(f, StringComparison.OrdinalIgnoreCase)) return false;
        return true;
    }

    /// <summary>The trainable (requires_grad) parameters split into (decay, no decay), names kept, by
    /// <paramref name="rule"/>: timm's exemptions (<see cref="Decays"/>), or every tuned tensor (the study's plain AdamW).</summary>
    public static (List<(string Name, Parameter Param)> Decay, List<(string Name, Parameter Param)> NoDecay)
        Split(IEnumerable<(string name, Parameter parameter)> named, WeightDecayRule rule = WeightDecayRule.TimmExemptions)
    {
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        foreach (var (name, p) in named)
        {
            if (!p.requires_grad) continue;
            (rule == WeightDecayRule.EveryTunedTensor || Decays(name, p) ? decay : noDecay).Add((name, p));
        }
        return (decay, noDecay);
    }
}
