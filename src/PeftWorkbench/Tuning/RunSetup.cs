using PeftWorkbench.Vit;

namespace PeftWorkbench.Tuning;

/// <summary>
/// What every trial of a run shares, resolved once: the suite, the profile and protocol, the backbone shape, the
/// checkpoint (null: random init; "shipped:NAME"; else a path) and the precision. Study.Run builds one; a sweep
/// manifest carries one (<see cref="SweepManifest.Setup"/>); the trial environment, the trial identity and the
/// options of a task all read it. <see cref="Options"/> is the one place a trial's options come from.
/// <paramref name="TrainImages"/>: VTAB-1K on a seeded subset of train800 (<see cref="TrainSubset"/>); null: all of it.
/// </summary>
public sealed record RunSetup(string Suite, string Profile, string Protocol, VitConfig Backbone, string? Checkpoint = null, bool Bf16 = false,
    int? TrainImages = null)
{
    /// <summary>The protocol options of this run's trials on a task of <paramref name="group"/> (many-shot recipes differ
    /// per group; VTAB-1K ignores it), with <paramref name="seed"/> (null: the profile's).</summary>
    public ProtocolOptions Options(string group = "natural", long? seed = null) => ProtocolOptions.For(Profile, Protocol, group, Bf16, seed, TrainImages);
}
