using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// DiffFit: biases and LayerNorms train, plus per-block gammas g1, g2 that scale the attention and MLP
/// branch outputs before the residual add. The gammas sit in the block's ls1/ls2 slots (timm's LayerScale
/// slots, so their keys read blocks.N.ls1.gamma as timm's would) and start at 1.
/// </summary>
public sealed record DiffFitOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "difffit", Name: "DiffFit", OptionsType: typeof(DiffFitOptions),
        Where: "biases + LayerNorms + gammas scaling the attention and MLP branch outputs (ls1, ls2)", Init: "gammas 1",
        Options: Array.Empty<OptionSpec>(), Mergeable: true, IdentityAtInit: true,
        StrengthRule: "gamma -> 1 + s (gamma - 1); biases and LayerNorms interpolated");

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx)
    {
        ctx.Train(BitFitOptions.Biases(ctx).Concat(LayerNormOptions.Norms(ctx)).Distinct(ReferenceEqualityComparer.Instance).Cast<Parameter>());
        for (int i = 0; i < ctx.Depth; i++)
        {
            var block = ctx.Block(i);
            var proj = ctx.Attention(i).proj as Linear ?? throw new InvalidOperationException($"blocks.{i}.attn.proj is not a Linear");
            var fc2 = ctx.Mlp(i).fc2 as Linear ?? throw new InvalidOperationException($"blocks.{i}.mlp.fc2 is not a Linear");
            ctx.Wrap(block, nameof(block.ls1), ls => new Gamma(ls, ctx.Config.EmbedDim, proj, ctx.State));
            ctx.Wrap(block, nameof(block.ls2), ls => new Gamma(ls, ctx.Config.EmbedDim, fc2, ctx.State));
        }
    }
}

/// <summary>A learned per-channel scale on a branch output; merges into the Linear that produces that output.</summary>
public sealed class Gamma : TransparentWrapper, IMergeable
{
    public Parameter gamma;
    readonly Ref<Linear> producer;
    readonly TensorBackup backup = new();

    public Gamma(nn.Module<Tensor, Tensor> ls, int dim, Linear producer, PeftState state) : base(nameof(Gamma), ls, state)
    {
        gamma = nn.Parameter(torch.ones(dim));
        this.producer = new(producer);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (State.Merged || State.Strength == 0) return Inner(x);
        return Inner(x * (State.Strength == 1 ? gamma : gamma.TowardOne(State.Strength)));
    }

    public void Merge(double strength)
    {
        if (!backup.IsEmpty) throw new InvalidOperationException("already merged");
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var g = gamma.TowardOne(strength);
        var lin = producer.Value;
        backup.Save(lin.weight);
        lin.weight.mul_(g.unsqueeze(1));
        if (lin.bias is not null) { backup.Save(lin.bias); lin.bias.mul_(g); }
    }

    public void Unmerge() => backup.Restore();
}
