using TorchSharp.Modules;

namespace PeftWorkbench.Peft;

/// <summary>LayerNorm tuning: the weight and bias of every LayerNorm train, plus the head.</summary>
public sealed record LayerNormOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "ln", Name: "LayerNorm tuning", OptionsType: typeof(LayerNormOptions),
        Where: "every LayerNorm weight and bias (norm1, norm2 of each block, the final norm)", Init: "the pre-trained values",
        Options: Array.Empty<OptionSpec>(), Mergeable: true, IdentityAtInit: true,
        StrengthRule: "interpolates the LayerNorm tensors between pre-trained and fine-tuned");

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx) => ctx.Train(Norms(ctx));

    internal static IEnumerable<Parameter> Norms(AttachContext ctx) =>
        ctx.Vit.modules().OfType<LayerNorm>().SelectMany(ln => ln.parameters());
}
