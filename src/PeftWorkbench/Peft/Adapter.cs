using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftWorkbench.Peft;

/// <summary>How a bottleneck adapter's two projections start (the study's adapter_init values).</summary>
public enum AdapterInit
{
    /// <summary>Both projections Xavier-uniform, biases N(0, 1e-6): the output changes at attach (Houlsby, the study's "xavier").</summary>
    Xavier,
    /// <summary>Down Xavier-uniform, up and biases zero: the output is unchanged at attach (Pfeiffer, "lora_xavier").</summary>
    LoraXavier,
    /// <summary>Down Kaiming-uniform (a = sqrt 5), up and biases zero (AdaptFormer, "lora_kaiming").</summary>
    LoraKaiming,
}

/// <summary>How an adapter meets the block's stochastic depth (drop path).</summary>
public enum DropPathMasks
{
    /// <summary>The study's block.py: the adapter draws its own masks. In series (Houlsby, Pfeiffer; block.py:109-110,
    /// 151-152) the branch output is dropped, the adapter reads that, and the sum is dropped again; in parallel
    /// (AdaptFormer, ConvPass; block.py:100-104,142-146) branch and adapter are dropped independently.</summary>
    Independent,
    /// <summary>One mask over branch and adapter together (the sum is dropped once).</summary>
    Shared,
}

/// <summary>
/// The options Houlsby, Pfeiffer and AdaptFormer share (the study's adapter_* keys and defaults) and their checks;
/// each method sets only its grid and where the adapter goes.
/// </summary>
public abstract record BottleneckAdapterOptions : PeftOptions
{
    /// <summary>Bottleneck width r (adapter_bottleneck; the study's default 64).</summary>
    public int Bottleneck { get; init; } = 64;
    /// <summary>Output scale s (adapter_scaler; the study's default 0.1).</summary>
    public double Scale { get; init; } = 0.1;
    public double Dropout { get; init; } = 0.1;
    /// <summary>Drop-path masks of the adapter (drop_path_masks): independent as the study's block.py, or shared with the branch.</summary>
    public DropPathMasks DropPathMasks { get; init; } = DropPathMasks.Independent;

    /// <summary>The four options with the study's grids of r and s for one method.</summary>
    private protected static OptionSpec[] Specs(object[] bottleneckGrid, object[] scaleGrid) => new OptionSpec[]
    {
        new("adapter_bottleneck", nameof(Bottleneck), "bottleneck width r", bottleneckGrid),
        new("adapter_scaler", nameof(Scale), "output scale s", scaleGrid),
        new("adapter_dropout", nameof(Dropout), "dropout after the ReLU"),
        new("drop_path_masks", nameof(DropPathMasks), "independent (the study's block.py: the adapter's own drop-path masks) or shared (one mask over branch + adapter)"),
    };

    public override void Validate(Vit.VitConfig vit)
    {
        CheckRange(nameof(Bottleneck), Bottleneck, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckPositive(nameof(Scale), Scale);
        CheckProbability(nameof(Dropout), Dropout);
    }

    /// <summary>A fresh adapter of this width, scale and dropout for the ViT being attached to.</summary>
    private protected BottleneckAdapter NewAdapter(AttachContext ctx, AdapterInit init) => new(ctx.Config.EmbedDim, Bottleneck, Scale, Dropout, init);

    /// <summary>Whether the adapter draws its own drop-path masks (<see cref="DropPathMasks.Independent"/>).</summary>
    private protected bool OwnDropPath => DropPathMasks == DropPathMasks.Independent;

    /// <summary>Every block gets the method's adapters through <see cref="AttachTo"/>; where they go is the method's.</summary>
    internal sealed override void Attach(AttachContext ctx)
    {
        for (int i = 0; i < ctx.Depth; i++) AttachTo(ctx, ctx.Block(i));
    }

    /// <summary>Puts this method's adapter(s) into <paramref name="block"/> (one of <paramref name="ctx"/>'s blocks).</summary>
    private protected abstract void AttachTo(AttachContext ctx, Vit.Block block);
}

/// <summary>
/// The bottleneck adapter the study uses for Houlsby, Pfeiffer and AdaptFormer:
/// up(dropout(relu(down(x)))) * scale. The caller adds the residual or the parallel path.
/// </summary>
public sealed class BottleneckAdapter : nn.Module<Tensor, Tensor>
{
    public Linear down_proj, up_proj;
    public nn.Module<Tensor, Tensor> dropout;
    public readonly double Scale;

    public BottleneckAdapter(int dim, int bottleneck, double scale, double dropout, AdapterInit init) : base(nameof(BottleneckAdapter))
    {
        down_proj = nn.Linear(dim, bottleneck);
        up_proj = nn.Linear(bottleneck, dim);
        this.dropout = nn.Dropout(dropout);
        Scale = scale;
        using (torch.no_grad())
        {
            switch (init)
            {
                case AdapterInit.Xavier:
                    nn.init.xavier_uniform_(down_proj.weight);
                    nn.init.xavier_uniform_(up_proj.weight);
                    nn.init.normal_(down_proj.bias!, std: 1e-6);
                    nn.init.normal_(up_proj.bias!, std: 1e-6);
                    break;
                case AdapterInit.LoraXavier:
                    nn.init.xavier_uniform_(down_proj.weight);
                    nn.init.zeros_(up_proj.weight);
                    nn.init.zeros_(down_proj.bias!);
                    nn.init.zeros_(up_proj.bias!);
                    break;
                case AdapterInit.LoraKaiming:
                    nn.init.kaiming_uniform_(down_proj.weight, a: Math.Sqrt(5));
                    nn.init.zeros_(up_proj.weight);
                    nn.init.zeros_(down_proj.bias!);
                    nn.init.zeros_(up_proj.bias!);
                    break;
            }
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        up_proj.call(dropout.call(torch.nn.functional.relu(down_proj.call(x)))).Times(Scale);
}
