namespace PeftWorkbench.Peft;

/// <summary>Full fine-tuning: every backbone tensor trains (class token and positions included), plus the head.</summary>
public sealed record FullFineTuneOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "full", Name: "Full fine-tuning", OptionsType: typeof(FullFineTuneOptions),
        Where: "every backbone tensor trains", Init: "the pre-trained weights", Options: Array.Empty<OptionSpec>(),
        Mergeable: true, IdentityAtInit: true,
        StrengthRule: "interpolates every weight between pre-trained and fine-tuned (WiSE-FT)");

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx) => ctx.Train(ctx.BackboneParameters().Select(p => p.Param));
}
