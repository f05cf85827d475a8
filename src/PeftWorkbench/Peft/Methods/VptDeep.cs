using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>VPT-Deep: n new prompt tokens inserted after the class token before every block and removed after it.</summary>
public sealed record VptDeepOptions : PeftOptions
{
    /// <summary>Prompt tokens per block (the study's vpt_num; its default 10).</summary>
    public int NumPrompts { get; init; } = 10;
    /// <summary>Dropout on the prompt tokens (the study's vpt_dropout).</summary>
    public double Dropout { get; init; } = 0.1;

    public static PeftMethod Info { get; } = new(
        Id: "vpt_deep", Name: "VPT-Deep", OptionsType: typeof(VptDeepOptions),
        Where: "n prompt tokens before every block, removed after it",
        Init: "uniform(-v, v), v = sqrt(6 / (3 * patch^2 + dim)); prompt dropout 0.1",
        Options: new OptionSpec[]
        {
            new("vpt_num", nameof(NumPrompts), "prompt tokens per block", new object[] { 5, 10, 50, 100 }),
            new("vpt_dropout", nameof(Dropout), "dropout on the prompts"),
        },
        Mergeable: false, IdentityAtInit: false,
        StrengthRule: "prompts add tokens, not weights: output = pre + s (tuned - pre), two passes when 0 < s < 1",
        StrengthOnOutput: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(Vit.VitConfig vit)
    {
        VptShallowOptions.CheckPrompts(this, nameof(NumPrompts), NumPrompts, vit);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        for (int i = 0; i < ctx.Depth; i++)
        {
            var prompts = VptShallowOptions.NewPrompts(ctx.Config, NumPrompts);
            ctx.WrapBlock(i, b => new PromptedBlock(b, ctx.State, prompts, Dropout, strip: NumPrompts));
        }
    }
}
