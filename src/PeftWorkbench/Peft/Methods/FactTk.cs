namespace PeftWorkbench.Peft;

/// <summary>
/// FacT-TK: U (d -> k), V (k -> d), a core C (k x k x k) and P (k x blocks * 12) shared by the whole model;
/// C @ P gives every block's k x k matrices for q, k, v, proj and four each for fc1 and fc2. The update
/// V core U is added to each linear layer, times s. V starts at zero.
/// </summary>
public sealed record FactTkOptions : FactOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "fact_tk", Name: "FacT-TK", OptionsType: typeof(FactTkOptions),
        Where: "updates of qkv, attn proj, fc1, fc2: V (C @ P) U with U, V, C, P shared by the whole model",
        Init: "U PyTorch-default, V zero, C and P Xavier-uniform; dropout 0.1 after the core",
        Options: Specs(new object[] { 16, 32, 64 }),
        Mergeable: true, IdentityAtInit: true);

    public override PeftMethod Describe() => Info;

    private protected override bool Tk => true;
}
