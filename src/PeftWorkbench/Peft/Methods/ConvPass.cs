using PeftWorkbench.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PeftWorkbench.Peft;

/// <summary>
/// ConvPass: a convolutional bypass in parallel with the attention branch and with the MLP branch, each
/// fed the branch's LayerNorm output (the branch's own input). down (d -> r), QuickGELU, 3x3 convolution
/// over the patch grid (the class token convolved alone), QuickGELU, dropout, up (r -> d), times s.
/// </summary>
public sealed record ConvPassOptions : PeftOptions
{
    /// <summary>Bottleneck width r (convpass_bottleneck; the study's default 8).</summary>
    public int Bottleneck { get; init; } = 8;
    /// <summary>Output scale s (convpass_scaler; the study's default 10).</summary>
    public double Scale { get; init; } = 10;
    /// <summary>Xavier init for the 3x3 convolution (convpass_xavier_init); otherwise it starts as the identity.</summary>
    public bool XavierInit { get; init; }
    public double Dropout { get; init; } = 0.1;
    /// <summary>Drop-path masks of the adapter (drop_path_masks): independent as the study's block.py, or shared with the branch.</summary>
    public DropPathMasks DropPathMasks { get; init; } = DropPathMasks.Independent;

    public static PeftMethod Info { get; } = new(
        Id: "convpass", Name: "ConvPass", OptionsType: typeof(ConvPassOptions),
        Where: "in parallel with attention and with the MLP, fed the LayerNorm output",
        Init: "down Xavier, up and biases zero; conv Xavier or identity (zero bias); QuickGELU; dropout 0.1",
        Options: new OptionSpec[]
        {
            new("convpass_bottleneck", nameof(Bottleneck), "bottleneck width r", new object[] { 8, 16 }),
            new("convpass_scaler", nameof(Scale), "output scale s", new object[] { 0.01, 0.1, 1, 10, 100 }),
            new("convpass_xavier_init", nameof(XavierInit), "Xavier init for the 3x3 convolution (else identity)", new object[] { true, false }),
            new("convpass_dropout", nameof(Dropout), "dropout before the up projection"),
            new("drop_path_masks", nameof(DropPathMasks), "independent (the study's block.py: the adapter's own drop-path masks) or shared (one mask over branch + adapter)"),
        },
        Mergeable: false, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(VitConfig vit)
    {
        CheckRange(nameof(Bottleneck), Bottleneck, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckPositive(nameof(Scale), Scale);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        for (int i = 0; i < ctx.Depth; i++)
        {
            var block = ctx.Block(i);
            bool own = DropPathMasks == DropPathMasks.Independent;
            var dp1 = own ? ctx.Wrap(block, nameof(block.drop_path1), p => new DeferredDropPath(p)) : null;
            var dp2 = own ? ctx.Wrap(block, nameof(block.drop_path2), p => new DeferredDropPath(p)) : null;
            ctx.Wrap(block, nameof(block.attn), attn => new ParallelBranch(attn, new ConvPassAdapter(ctx.Config, this), ctx.State, dropPath: dp1));
            ctx.Wrap(block, nameof(block.mlp), mlp => new ParallelBranch(mlp, new ConvPassAdapter(ctx.Config, this), ctx.State, dropPath: dp2));
        }
    }
}

/// <summary>ConvPass's branch: 1x1 down, QuickGELU, 3x3 conv on the patch grid, QuickGELU, dropout, 1x1 up, times s.</summary>
public sealed class ConvPassAdapter : nn.Module<Tensor, Tensor>
{
    public Linear adapter_down, adapter_up;
    public Conv2d adapter_conv;
    public nn.Module<Tensor, Tensor> act, dropout;
    readonly int grid, bottleneck;
    readonly double scale;

    public ConvPassAdapter(VitConfig c, ConvPassOptions o) : base(nameof(ConvPassAdapter))
    {
        grid = c.GridSize; bottleneck = o.Bottleneck; scale = o.Scale;
        adapter_down = nn.Linear(c.EmbedDim, o.Bottleneck);
        adapter_up = nn.Linear(o.Bottleneck, c.EmbedDim);
        adapter_conv = nn.Conv2d(o.Bottleneck, o.Bottleneck, 3, stride: 1, padding: 1);
        act = new QuickGELU();
        dropout = nn.Dropout(o.Dropout);
        using (torch.no_grad())
        {
            if (o.XavierInit) nn.init.xavier_uniform_(adapter_conv.weight);
            else
            {
                // Identity: a centre tap of 1 from each channel to itself.
                nn.init.zeros_(adapter_conv.weight);
                adapter_conv.weight[.., .., 1, 1].add_(torch.eye(o.Bottleneck));
            }
            nn.init.zeros_(adapter_conv.bias!);
            nn.init.xavier_uniform_(adapter_down.weight);
            nn.init.zeros_(adapter_down.bias!);
            nn.init.zeros_(adapter_up.weight);
            nn.init.zeros_(adapter_up.bias!);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1];
        if (n != 1 + grid * grid)
            throw new InvalidOperationException($"ConvPass expects 1 + {grid}x{grid} tokens (class token + patch grid), got {n}");
        var down = act.call(adapter_down.call(x));
        var patches = down[.., 1..].reshape(b, grid, grid, bottleneck).permute(0, 3, 1, 2);
        patches = adapter_conv.call(patches).permute(0, 2, 3, 1).reshape(b, grid * grid, bottleneck);
        // The class token alone on a 1x1 "image" with padding 1 meets only the kernel's centre tap.
        var cls = F.linear(down[.., ..1], adapter_conv.weight[.., .., 1, 1], adapter_conv.bias);
        var y = act.call(torch.cat(new[] { cls, patches }, 1));
        return adapter_up.call(dropout.call(y)).Times(scale);
    }
}
