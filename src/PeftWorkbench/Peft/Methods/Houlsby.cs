namespace PeftWorkbench.Peft;

/// <summary>
/// Houlsby adapter (the study's rand_h_adapter): a bottleneck adapter in series after the attention
/// branch and after the MLP branch, each with its own residual: y + s * up(dropout(relu(down(y)))).
/// Xavier init on both projections, so the output changes at attach.
/// </summary>
public sealed record HoulsbyOptions : BottleneckAdapterOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "rand_h_adapter", Name: "Houlsby adapter", OptionsType: typeof(HoulsbyOptions),
        Where: "in series after the attention branch (ls1 slot) and after the MLP branch (ls2 slot)",
        Init: "down and up Xavier-uniform, biases N(0, 1e-6); ReLU; dropout 0.1",
        Options: Specs(new object[] { 4, 8, 16, 32 }, new object[] { 0.01, 0.1, 1, 10 }),
        Mergeable: false, IdentityAtInit: false);

    public override PeftMethod Describe() => Info;

    private protected override void AttachTo(AttachContext ctx, Vit.Block block)
    {
        ctx.Wrap(block, nameof(block.ls1), ls => new SequentialBranch(ls, NewAdapter(ctx, AdapterInit.Xavier), ctx.State, OwnDropPath ? block.drop_path1 : null));
        ctx.Wrap(block, nameof(block.ls2), ls => new SequentialBranch(ls, NewAdapter(ctx, AdapterInit.Xavier), ctx.State, OwnDropPath ? block.drop_path2 : null));
    }
}
