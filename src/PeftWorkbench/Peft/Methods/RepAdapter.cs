using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>
/// RepAdapter: in series before qkv and before fc1, x + s * B(dropout(A(x))) with A (d -> r) and B (r -> d,
/// group-wise, 2 groups) 1x1 convolutions and no nonlinearity, so it folds into the following linear layer:
/// W' = W (I + s B A), b' = b + s W (B b_A + b_B).
/// </summary>
public sealed record RepAdapterOptions : PeftOptions
{
    /// <summary>Bottleneck width r (repadapter_bottleneck; the study's default 8).</summary>
    public int Bottleneck { get; init; } = 8;
    /// <summary>Scale s (repadapter_scaler; the study's default 1).</summary>
    public double Scale { get; init; } = 1;
    /// <summary>Groups of B (the study's repadapter_group, 2).</summary>
    public int Groups { get; init; } = 2;
    public double Dropout { get; init; } = 0.1;

    public static PeftMethod Info { get; } = new(
        Id: "repadapter", Name: "RepAdapter", OptionsType: typeof(RepAdapterOptions),
        Where: "in series before qkv and before fc1 (merged into them)",
        Init: "A Xavier, B and biases zero; dropout 0.1 between A and B",
        Options: new OptionSpec[]
        {
            new("repadapter_bottleneck", nameof(Bottleneck), "bottleneck width r", new object[] { 8, 16, 32 }),
            new("repadapter_scaler", nameof(Scale), "scale s", new object[] { 0.1, 0.5, 1, 5, 10 }),
            new("repadapter_group", nameof(Groups), "groups of the up projection B"),
            new("repadapter_dropout", nameof(Dropout), "dropout between A and B"),
        },
        Mergeable: true, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(VitConfig vit)
    {
        CheckRange(nameof(Bottleneck), Bottleneck, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckRange(nameof(Groups), Groups, 1, Bottleneck, "1 to the bottleneck width");
        if (Bottleneck % Groups != 0 || vit.EmbedDim % Groups != 0)
            Fail(nameof(Groups), Groups, $"a divisor of both the bottleneck ({Bottleneck}) and the embedding dimension ({vit.EmbedDim})");
        CheckPositive(nameof(Scale), Scale);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        for (int i = 0; i < ctx.Depth; i++)
        {
            var attn = ctx.Attention(i);
            var mlp = ctx.Mlp(i);
            ctx.Wrap(attn, nameof(attn.qkv), qkv => new RepAdapterLinear(qkv, this, ctx.State));
            ctx.Wrap(mlp, nameof(mlp.fc1), fc1 => new RepAdapterLinear(fc1, this, ctx.State));
        }
    }
}

/// <summary>A linear layer with a RepAdapter in front: linear(x + s * B(dropout(A(x)))).</summary>
public sealed class RepAdapterLinear : LinearSlot
{
    public Linear conv_A;
    public GroupedLinear conv_B;
    public nn.Module<Tensor, Tensor> dropout;
    readonly double scale;

    public RepAdapterLinear(nn.Module<Tensor, Tensor> slot, RepAdapterOptions o, PeftState state) : base(nameof(RepAdapterLinear), slot, state)
    {
        scale = o.Scale;
        conv_A = nn.Linear(InFeatures, o.Bottleneck);
        conv_B = new GroupedLinear(o.Bottleneck, InFeatures, o.Groups);
        dropout = nn.Dropout(o.Dropout);
        using (torch.no_grad())
        {
            nn.init.xavier_uniform_(conv_A.weight);
            nn.init.zeros_(conv_A.bias!);
        }
        RegisterComponents();
    }

    protected override Tensor ForwardTuned(Tensor x, double strength) =>
        Base(x + conv_B.call(dropout.call(conv_A.call(x))).Times(scale * strength));
}

/// <summary>
/// A group-wise linear map (a 1x1 Conv1d with groups): output channels split into g groups, each reading
/// its own slice of the input. Weight [out, in / g] as Conv1d's [out, in / g, 1] without the kernel axis.
/// </summary>
public sealed class GroupedLinear : nn.Module<Tensor, Tensor>
{
    public Parameter weight, bias;
    readonly int groups;

    /// <summary>Zero weight and bias: the study's zero-initialised up projection.</summary>
    public GroupedLinear(long inFeatures, long outFeatures, int groups) : base(nameof(GroupedLinear))
    {
        if (inFeatures % groups != 0 || outFeatures % groups != 0)
            throw new ArgumentException($"GroupedLinear: {inFeatures} inputs and {outFeatures} outputs must both divide into {groups} groups");
        this.groups = groups;
        weight = nn.Parameter(torch.zeros(outFeatures, inFeatures / groups));
        bias = nn.Parameter(torch.zeros(outFeatures));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long outF = weight.shape[0], inG = weight.shape[1];
        var lead = x.shape[..^1];
        var xg = x.reshape(-1, groups, inG);                        // [M, g, in/g]
        var wg = weight.view(groups, outF / groups, inG);           // [g, out/g, in/g]
        var y = torch.einsum("mgi,goi->mgo", xg, wg).reshape(-1, outF);
        return (y + bias).reshape(lead.Append(outF).ToArray());
    }
}
