namespace PeftWorkbench.Peft;

/// <summary>
/// Houlsby adapter (the study's rand_h_adapter): a bottleneck adapter in series after the attention
/// branch and after the MLP branch, each with its own residual: y + s * up(dropout(relu(down(y)))).
/// Xavier init on both projections, so the output changes at attach.
/// </summary>
public sealed record HoulsbyOptions : PeftOptions
{
    /// <summary>Bottleneck width r (adapter_bottleneck; the study's default 64).</summary>
    public int Bottleneck { get; init; } = 64;
    /// <summary>Output scale s (adapter_scaler; the study's default 0.1).</summary>
    public double Scale { get; init; } = 0.1;
    public double Dropout { get; init; } = 0.1;
    /// <summary>Drop-path masks of the adapter (drop_path_masks): independent as the study's block.py, or shared with the branch.</summary>
    public DropPathMasks DropPathMasks { get; init; } = DropPathMasks.Independent;

    public static PeftMethod Info { get; } = new(
        Id: "rand_h_adapter", Name: "Houlsby adapter", OptionsType: typeof(HoulsbyOptions),
        Where: "in series after the attention branch (ls1 slot) and after the MLP branch (ls2 slot)",
        Init: "down and up Xavier-uniform, biases N(0, 1e-6); ReLU; dropout 0.1",
        Options: new OptionSpec[]
        {
            new("adapter_bottleneck", nameof(Bottleneck), "bottleneck width r", new object[] { 4, 8, 16, 32 }),
            new("adapter_scaler", nameof(Scale), "output scale s", new object[] { 0.01, 0.1, 1, 10 }),
            new("adapter_dropout", nameof(Dropout), "dropout after the ReLU"),
            new("drop_path_masks", nameof(DropPathMasks), "independent (the study's block.py: the adapter's own drop-path masks) or shared (one mask over branch + adapter)"),
        },
        Mergeable: false, IdentityAtInit: false);

    public override PeftMethod Describe() => Info;

    public override void Validate(Vit.VitConfig vit)
    {
        CheckRange(nameof(Bottleneck), Bottleneck, 1, vit.EmbedDim, "1 to the ViT's embedding dimension");
        CheckPositive(nameof(Scale), Scale);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx)
    {
        bool own = DropPathMasks == DropPathMasks.Independent;
        int d = ctx.Config.EmbedDim;
        for (int i = 0; i < ctx.Depth; i++)
        {
            var block = ctx.Block(i);
            ctx.Wrap(block, nameof(block.ls1), ls => new SequentialBranch(ls, new BottleneckAdapter(d, Bottleneck, Scale, Dropout, AdapterInit.Xavier), ctx.State, own ? block.drop_path1 : null));
            ctx.Wrap(block, nameof(block.ls2), ls => new SequentialBranch(ls, new BottleneckAdapter(d, Bottleneck, Scale, Dropout, AdapterInit.Xavier), ctx.State, own ? block.drop_path2 : null));
        }
    }
}
