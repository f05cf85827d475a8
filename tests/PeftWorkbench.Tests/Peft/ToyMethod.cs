using System.Runtime.CompilerServices;
using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// A 17th method that lives only in the tests: a learned per-channel gain on the tokens before the first block
/// (in the ViT's norm_pre slot), starting at 1. It is this one file plus the registration line below, and the
/// method matrix (which runs every registered method) covers it: the proof that a method is one file.
/// </summary>
public sealed record ToyGainOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "toy_gain", Name: "Toy gain", OptionsType: typeof(ToyGainOptions),
        Where: "a per-channel gain on the tokens before the first block (norm_pre slot)", Init: "gain 1",
        Options: Array.Empty<OptionSpec>(), Mergeable: false, IdentityAtInit: true);

    [ModuleInitializer]
    internal static void Register() => MethodRegistry.Register(Info);

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx) =>
        ctx.Wrap(ctx.Vit, nameof(ctx.Vit.norm_pre), slot => new ToyGain(slot, ctx.Config.EmbedDim, ctx.State));
}

/// <summary>x * (1 + s (gain - 1)) before the wrapped slot.</summary>
public sealed class ToyGain : TransparentWrapper
{
    public Parameter toy_gain;

    public ToyGain(nn.Module<Tensor, Tensor> slot, int dim, PeftState state) : base(nameof(ToyGain), slot, state)
    {
        toy_gain = nn.Parameter(torch.ones(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        State.Strength == 0 ? Inner(x) : Inner(x * (State.Strength == 1 ? toy_gain : (toy_gain - 1) * State.Strength + 1));
}
