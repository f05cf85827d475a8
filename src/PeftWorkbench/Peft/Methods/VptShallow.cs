using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>Where VPT-Shallow's prompts live after block 0.</summary>
public enum VptShallowMode
{
    /// <summary>The original VPT (Jia et al. 2022): prompts inserted before block 0 travel through every block and are removed after the last. The default.</summary>
    ThroughAllBlocks,
    /// <summary>The study's code: prompts "dropped after block 0" (its retrieve_prompt returns prompts for block 0 only, and every block's prompts are stripped after it).</summary>
    DroppedAfterBlock0,
}

/// <summary>
/// VPT-Shallow: n learnable prompt tokens inserted after the class token before block 0.
/// Default: the original VPT, prompts kept through all blocks; the study's code behaviour ("dropped after
/// block 0") is <see cref="VptShallowMode.DroppedAfterBlock0"/>. Both train the same n x d tensor.
/// </summary>
public sealed record VptShallowOptions : PeftOptions
{
    /// <summary>Number of prompt tokens (the study's vpt_num; its default 10).</summary>
    public int NumPrompts { get; init; } = 10;
    /// <summary>Dropout on the prompt tokens (the study's vpt_dropout).</summary>
    public double Dropout { get; init; } = 0.1;
    public VptShallowMode Mode { get; init; } = VptShallowMode.ThroughAllBlocks;

    public static PeftMethod Info { get; } = new(
        Id: "vpt_shallow", Name: "VPT-Shallow", OptionsType: typeof(VptShallowOptions),
        Where: "n prompt tokens after the class token before block 0; kept through all blocks (the original VPT, the record's default) or dropped after block 0 (the study's code, what vpt_shallow means under the paper profile): vpt_shallow_mode",
        Init: "uniform(-v, v), v = sqrt(6 / (3 * patch^2 + dim)); prompt dropout 0.1",
        Options: new OptionSpec[]
        {
            new("vpt_num", nameof(NumPrompts), "prompt tokens", new object[] { 5, 10, 50, 100, 200 }),
            new("vpt_dropout", nameof(Dropout), "dropout on the prompts"),
            new("vpt_shallow_mode", nameof(Mode), "through_all_blocks (original VPT) or dropped_after_block0 (the study's code)"),
        },
        Mergeable: false, IdentityAtInit: false,
        StrengthRule: "prompts add tokens, not weights: output = pre + s (tuned - pre), two passes when 0 < s < 1",
        StrengthOnOutput: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(Vit.VitConfig vit)
    {
        CheckPrompts(this, nameof(NumPrompts), NumPrompts, vit);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        var prompts = NewPrompts(ctx.Config, NumPrompts);
        int last = ctx.Depth - 1;
        if (Mode == VptShallowMode.DroppedAfterBlock0 || last == 0)
        {
            ctx.WrapBlock(0, b => new PromptedBlock(b, ctx.State, prompts, Dropout, strip: NumPrompts));
            return;
        }
        ctx.WrapBlock(0, b => new PromptedBlock(b, ctx.State, prompts, Dropout, strip: 0));
        ctx.WrapBlock(last, b => new PromptedBlock(b, ctx.State, null, 0, strip: NumPrompts));
    }

    /// <summary>VPT's init: uniform(-v, v) with v = sqrt(6 / (3 * patch * patch + dim)), Xavier for the patch projection's fan.</summary>
    internal static TorchSharp.Modules.Parameter NewPrompts(Vit.VitConfig c, int n)
    {
        double v = Math.Sqrt(6.0 / (c.InChans * c.PatchSize * c.PatchSize + c.EmbedDim));
        var t = torch.empty(n, c.EmbedDim);
        using (torch.no_grad()) nn.init.uniform_(t, -v, v);
        return nn.Parameter(t);
    }

    /// <summary>
    /// Prompt tokens have no positions, so any count works in principle; past 4x the image's own tokens they
    /// dominate attention and the cost (quadratic in tokens), so larger counts are refused. The study's
    /// largest (200 on ViT-B/16's 197 tokens) fits.
    /// </summary>
    internal static void CheckPrompts(PeftOptions o, string property, int n, Vit.VitConfig vit)
    {
        int tokens = vit.NumPatches + 1;
        if (n < 1 || n > 4 * tokens)
            throw new ArgumentException($"{o.GetType().Name}.{property} (vpt_num) = {n} does not fit ViT '{vit.Name}' ({tokens} tokens); allowed: 1 to {4 * tokens} (at most 4x the image's tokens).");
    }
}
