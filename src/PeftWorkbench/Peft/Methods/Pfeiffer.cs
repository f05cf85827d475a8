namespace PeftWorkbench.Peft;

/// <summary>
/// Pfeiffer adapter (the study's lora_p_adapter): a bottleneck adapter in series after the MLP branch
/// only, with its own residual. Down Xavier, up zero: the output is unchanged at attach.
/// </summary>
public sealed record PfeifferOptions : PeftOptions
{
    /// <summary>Bottleneck width r (adapter_bottleneck; the study's default 64).</summary>
    public int Bottleneck { get; init; } = 64;
    /// <summary>Output scale s (adapter_scaler; the study's default 0.1).</summary>
    public double Scale { get; init; } = 0.1;
    public double Dropout { get; init; } = 0.1;
    /// <summary>Drop-path masks of the adapter (drop_path_masks): independent as the study's block.py, or shared with the branch.</summary>
    public DropPathMasks DropPathMasks { get; init; } = DropPathMasks.Independent;

    public static PeftMethod Info { get; } = new(
        Id: "lora_p_adapter", Name: "Pfeiffer adapter", OptionsType: typeof(PfeifferOptions),
        Where: "in series after the MLP branch (ls2 slot)",
        Init: "down Xavier-uniform, up and biases zero; ReLU; dropout 0.1",
        Options: new OptionSpec[]
        {
            new("adapter_bottleneck", nameof(Bottleneck), "bottleneck width r", new object[] { 4, 8, 16, 32, 64 }),
            new("adapter_scaler", nameof(Scale), "output scale s", new object[] { 0.01, 0.1, 1, 10 }),
            new("adapter_dropout", nameof(Dropout), "dropout after the ReLU"),
            new("drop_path_masks", nameof(DropPathMasks), "independent (the study's block.py: the adapter's own drop-path masks) or shared (one mask over branch + adapter)"),
        },
        Mergeable: false, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(Vit.VitConfig vit)
    {
        CheckRange(nameof(Bottleneck), Bottleneck, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckPositive(nameof(Scale), Scale);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        int d = ctx.Config.EmbedDim;
        for (int i = 0; i < ctx.Depth; i++)
        {
            var block = ctx.Block(i);
            ctx.Wrap(block, nameof(block.ls2), ls => new SequentialBranch(ls, new BottleneckAdapter(d, Bottleneck, Scale, Dropout, AdapterInit.LoraXavier), ctx.State,
                DropPathMasks == DropPathMasks.Independent ? block.drop_path2 : null));
        }
    }
}
