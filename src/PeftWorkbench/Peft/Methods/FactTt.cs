namespace PeftWorkbench.Peft;

/// <summary>
/// FacT-TT: U (d -> k) and V (k -> d) shared across all blocks; per block k x k cores for q, k, v and proj
/// and k x 4k cores for fc1 and fc2; the update V core U is added to each linear layer, times s. V starts
/// at zero, so the output is unchanged at attach.
/// </summary>
public sealed record FactTtOptions : FactOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "fact_tt", Name: "FacT-TT", OptionsType: typeof(FactTtOptions),
        Where: "updates of qkv, attn proj, fc1, fc2: V core U with U, V shared by all blocks, cores per block",
        Init: "U and cores PyTorch-default (Kaiming-uniform), V zero; dropout 0.1 after the core",
        Options: Specs(new object[] { 8, 16, 32 }),
        Mergeable: true, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    private protected override bool Tk => false;
}
