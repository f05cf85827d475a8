using Microsoft.Data.Analysis;
using PeftWorkbench.Tuning;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Findings;

/// <summary>A backbone of notebook 07: its name in tables and its checkpoint ("none" = random init, "shipped:NAME", a file).</summary>
public sealed record RegimeBackbone(string Name, string Checkpoint)
{
    public const string RandomInit = "random init";
    public bool Pretrained => Checkpoint != "none";

    /// <summary>A --checkpoint value as a backbone: "none" is random init, "shipped:mini" is "mini", a file its name without extension.</summary>
    public static RegimeBackbone Of(string checkpoint) => checkpoint switch
    {
        "none" => new(RandomInit, "none"),
        _ when checkpoint.StartsWith("shipped:", StringComparison.Ordinal) => new(checkpoint["shipped:".Length..], checkpoint),
        _ => new(Path.GetFileNameWithoutExtension(checkpoint), Path.GetFullPath(checkpoint)),
    };
}

/// <summary>
/// What notebook 07 runs: training-set sizes x backbones x methods x tasks, each cell one protocol run (tune on the
/// subset, select on val200, final on subset + val200, test). Sizes, methods and tasks come from the profile table
/// (<see cref="RegimeRecipe"/>); the backbones are random init and every shipped checkpoint, so a checkpoint that passes
/// its shipping rule (mini-broad) joins the plan without a code change.
/// </summary>
public sealed record RegimePlan(IReadOnlyList<int> Sizes, IReadOnlyList<RegimeBackbone> Backbones, IReadOnlyList<string> Methods, IReadOnlyList<string> Tasks)
{
    /// <summary>Random init, then every shipped checkpoint (<see cref="VisionTransformer.PretrainedNames"/>).</summary>
    public static IReadOnlyList<RegimeBackbone> ShippedBackbones() =>
        VisionTransformer.PretrainedNames.Select(n => "shipped:" + n).Prepend("none").Select(RegimeBackbone.Of).ToList();

    /// <summary>The profile's plan; <paramref name="checkpoints"/> (--checkpoint values) replace the shipped backbones.</summary>
    public static RegimePlan For(string profile, IEnumerable<string>? checkpoints = null)
    {
        var p = Profiles.Get(profile);
        var backbones = checkpoints?.Select(RegimeBackbone.Of).ToList() ?? ShippedBackbones();
        var plan = new RegimePlan(p.Regime.Sizes.Distinct().Order().ToList(), backbones,
            p.Regime.Methods.Select(m => Peft.MethodRegistry.Get(m).Id).Distinct().ToList(), p.RegimeTaskNames());
        if (plan.Backbones.Select(b => b.Name).Distinct().Count() != plan.Backbones.Count)
            throw new ArgumentException($"Two backbones share a name ({string.Join(", ", plan.Backbones.Select(b => b.Name))}): the tables could not tell them apart.");
        return plan;
    }

    /// <summary>Protocol runs in the plan (each: the profile's tune grid, then a final).</summary>
    public int RunCount => Sizes.Count * Backbones.Count * Methods.Count * Tasks.Count;

    /// <summary>"3 backbones (random init, mini, x) x 5 sizes (50-800) x 4 methods x 1 task (mnist) = 60 runs".</summary>
    public string Describe() =>
        $"{Backbones.Count} backbone(s) ({string.Join(", ", Backbones.Select(b => b.Name))}) x {Sizes.Count} size(s) ({string.Join(", ", Sizes)}) x " +
        $"{Methods.Count} method(s) ({string.Join(", ", Methods)}) x {Tasks.Count} task(s) ({string.Join(", ", Tasks)}) = {RunCount} runs";

    /// <summary>The plan as a table: backbone, checkpoint, sizes, methods, tasks, runs.</summary>
    public DataFrame Table() => new(
        new StringDataFrameColumn("backbone", Backbones.Select(b => b.Name)),
        new StringDataFrameColumn("checkpoint", Backbones.Select(b => b.Checkpoint)),
        new StringDataFrameColumn("training images", Backbones.Select(_ => string.Join(", ", Sizes))),
        new StringDataFrameColumn("methods", Backbones.Select(_ => string.Join(", ", Methods))),
        new StringDataFrameColumn("tasks", Backbones.Select(_ => string.Join(", ", Tasks))),
        new PrimitiveDataFrameColumn<int>("runs", Backbones.Select(_ => Sizes.Count * Methods.Count * Tasks.Count)));

    /// <summary>The store a backbone's runs go to: "mini" on the mini suite (<see cref="Study.UnsuffixedCheckpoint"/>) uses
    /// <paramref name="store"/> itself, every other one a sibling store named after it, "STORE-mini-hand" for the default
    /// (its 800-image runs are notebook 02's trials, read back; a store holds one backbone per task: <see cref="TrialIdentity"/>).
    /// null: a fresh temporary store per call.</summary>
    public static string? StoreFor(string? store, RegimeBackbone backbone, string suite)
    {
        if (store is null) return null;
        if (Study.UnsuffixedCheckpoint(suite) == Study.CheckpointFor(backbone.Checkpoint, suite)) return store;
        var slug = new string(backbone.Name.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-').ToArray()).Trim('-');
        return Path.TrimEndingDirectorySeparator(Path.GetFullPath(store)) + "-" + slug;
    }
}
