namespace PeftWorkbench.Peft;

/// <summary>BitFit: every bias of the backbone trains (linear, convolution and LayerNorm biases), plus the head.</summary>
public sealed record BitFitOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "bitfit", Name: "BitFit", OptionsType: typeof(BitFitOptions),
        Where: "every bias (patch embedding, qkv, proj, fc1, fc2, LayerNorms)", Init: "the pre-trained biases",
        Options: Array.Empty<OptionSpec>(), Mergeable: true, IdentityAtInit: true,
        StrengthRule: "interpolates the biases between pre-trained and fine-tuned");

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx) => ctx.Train(Biases(ctx));

    internal static IEnumerable<TorchSharp.Modules.Parameter> Biases(AttachContext ctx) =>
        ctx.BackboneParameters().Where(p => p.Name == "bias" || p.Name.EndsWith(".bias")).Select(p => p.Param);
}
