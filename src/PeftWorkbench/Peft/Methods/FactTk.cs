using PeftWorkbench.Vit;

namespace PeftWorkbench.Peft;

/// <summary>
/// FacT-TK: U (d -> k), V (k -> d), a core C (k x k x k) and P (k x blocks * 12) shared by the whole model;
/// C @ P gives every block's k x k matrices for q, k, v, proj and four each for fc1 and fc2. The update
/// V core U is added to each linear layer, times s. V starts at zero.
/// </summary>
public sealed record FactTkOptions : PeftOptions
{
    /// <summary>Factor rank k (fact_dim; the study's default 8).</summary>
    public int Dim { get; init; } = 8;
    /// <summary>Scale s (fact_scaler; the study's default 1).</summary>
    public double Scale { get; init; } = 1;
    public double Dropout { get; init; } = 0.1;

    public static PeftMethod Info { get; } = new(
        Id: "fact_tk", Name: "FacT-TK", OptionsType: typeof(FactTkOptions),
        Where: "updates of qkv, attn proj, fc1, fc2: V (C @ P) U with U, V, C, P shared by the whole model",
        Init: "U PyTorch-default, V zero, C and P Xavier-uniform; dropout 0.1 after the core",
        Options: new OptionSpec[]
        {
            new("fact_dim", nameof(Dim), "factor rank k", new object[] { 16, 32, 64 }),
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

    internal override void Attach(AttachContext ctx) => Fact.Attach(ctx, Dim, Scale, Dropout, tk: true);
}
