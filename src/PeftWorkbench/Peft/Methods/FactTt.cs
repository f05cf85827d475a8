using PeftWorkbench.Vit;

namespace PeftWorkbench.Peft;

/// <summary>
/// FacT-TT: U (d -> k) and V (k -> d) shared across all blocks; per block k x k cores for q, k, v and proj
/// and k x 4k cores for fc1 and fc2; the update V core U is added to each linear layer, times s. V starts
/// at zero, so the output is unchanged at attach.
/// </summary>
public sealed record FactTtOptions : PeftOptions
{
    /// <summary>Factor rank k (fact_dim; the study's default 8).</summary>
    public int Dim { get; init; } = 8;
    /// <summary>Scale s (fact_scaler; the study's default 1).</summary>
    public double Scale { get; init; } = 1;
    public double Dropout { get; init; } = 0.1;

    public static PeftMethod Info { get; } = new(
        Id: "fact_tt", Name: "FacT-TT", OptionsType: typeof(FactTtOptions),
        Where: "updates of qkv, attn proj, fc1, fc2: V core U with U, V shared by all blocks, cores per block",
        Init: "U and cores PyTorch-default (Kaiming-uniform), V zero; dropout 0.1 after the core",
        Options: new OptionSpec[]
        {
            new("fact_dim", nameof(Dim), "factor rank k", new object[] { 8, 16, 32 }),
            new("fact_scaler", nameof(Scale), "scale s", new object[] { 0.01, 0.1, 1, 10, 100 }),
            new("fact_dropout", nameof(Dropout), "dropout after the core"),
        },
        Mergeable: true, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    public override void Validate(VitConfig vit)
    {
        Fact.Validate(this, nameof(Dim), Dim, nameof(Scale), Scale, vit, CheckRange, CheckPositive);
        CheckProbability(nameof(Dropout), Dropout);
    }

    internal override void Attach(AttachContext ctx) => Fact.Attach(ctx, Dim, Scale, Dropout, tk: false);
}
