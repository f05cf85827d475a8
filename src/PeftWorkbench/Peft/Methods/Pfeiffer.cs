namespace PeftWorkbench.Peft;

/// <summary>
/// Pfeiffer adapter (the study's lora_p_adapter): a bottleneck adapter in series after the MLP branch
/// only, with its own residual. Down Xavier, up zero: the output is unchanged at attach.
/// </summary>
public sealed record PfeifferOptions : BottleneckAdapterOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "lora_p_adapter", Name: "Pfeiffer adapter", OptionsType: typeof(PfeifferOptions),
        Where: "in series after the MLP branch (ls2 slot)",
        Init: "down Xavier-uniform, up and biases zero; ReLU; dropout 0.1",
        Options: Specs(new object[] { 4, 8, 16, 32, 64 }, new object[] { 0.01, 0.1, 1, 10 }),
        Mergeable: false, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    private protected override void AttachTo(AttachContext ctx, Vit.Block block) =>
        ctx.Wrap(block, nameof(block.ls2), ls => new SequentialBranch(ls, NewAdapter(ctx, AdapterInit.LoraXavier), ctx.State, OwnDropPath ? block.drop_path2 : null));
}
