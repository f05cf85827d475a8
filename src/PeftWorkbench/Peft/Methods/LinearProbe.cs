namespace PeftWorkbench.Peft;

/// <summary>Linear probing: the backbone stays frozen; only the classification head trains.</summary>
public sealed record LinearProbeOptions : PeftOptions
{
    public static PeftMethod Info { get; } = new(
        Id: "linear", Name: "Linear probe", OptionsType: typeof(LinearProbeOptions),
        Where: "only the head trains", Init: "-", Options: Array.Empty<OptionSpec>(),
        Mergeable: true, IdentityAtInit: true,
        StrengthRule: "no backbone delta: Strength changes nothing (the head is never scaled)");

    public override PeftMethod Describe() => Info;

    internal override void Attach(AttachContext ctx) { }
}
