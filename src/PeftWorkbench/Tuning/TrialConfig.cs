using System.Globalization;
using System.Text.Json.Serialization;

namespace PeftWorkbench.Tuning;

/// <summary>
/// One training run of the protocol. Phase "tune": train on train800, score val200 (many-shot: the 90 % / 10 %
/// split), for the whole schedule or, with a <see cref="Rung"/>, its first epochs. Phase "val": the hyperparameters
/// selected at the rung trained on train800 for the whole schedule, scored on val200 (only after a rung). Phase "final":
/// retrain on train800val200 with the selected hyperparameters, score test.
/// The <see cref="Key"/> names a trial in a results store. A final trial's key leaves out the hyperparameters
/// (the tune results choose them) but names its tune grid by digest (<see cref="TuneGrid"/>), so a rerun with
/// another grid (e.g. a corrected --hp) gets its own final instead of the earlier run's.
/// </summary>
public sealed record TrialConfig
{
    public required string Task { get; init; }
    public required string Method { get; init; }
    public string Phase { get; init; } = "tune";
    public double Lr { get; init; }
    public double WeightDecay { get; init; }
    public double DropPath { get; init; }
    /// <summary>The method's own hyperparameters (e.g. r=8, s=0.1), as strings; sorted for a stable key.</summary>
    public SortedDictionary<string, string> Hp { get; init; } = new(StringComparer.Ordinal);
    public string Profile { get; init; } = "default";
    public string Protocol { get; init; } = "vtab1k";
    public long Seed { get; init; } = 42;
    /// <summary>Final and val trials: digest of the tune trials' keys the selection was made from (Protocol.GridDigest).
    /// null in tune trials and in finals recorded before this existed (their keys stay as they were).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? TuneGrid { get; init; }
    /// <summary>VTAB-1K on a seeded subset of this many train800 images (<see cref="TrainSubset"/>); null: all of train800,
    /// as every trial recorded before sizes existed (their keys and records stay byte for byte as they were).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? TrainImages { get; init; }

    /// <summary>Successive halving (ProtocolOptions.Rung): a tune trial stops after this many epochs of the final's schedule
    /// (its key says so: "/stop=N"); a val or final trial carries the rung its selection was made at (its key does not:
    /// the grid digest already names the tune trials). Null: trained in full, as every trial recorded before rungs existed.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Rung { get; init; }

    /// <summary>VTAB-1K: the epochs of a method that trains another schedule than its profile's (ProtocolOptions.EpochsByMethod,
    /// Profile.LongerMethods); a tune trial's key says so ("/epochs=N"), a val or final trial's grid digest does. Null: the
    /// profile's epochs for the task's group, as every trial recorded before this existed.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Epochs { get; init; }

    [JsonIgnore]
    public string Key => Phase is "final" or "val"
        ? $"{Protocol}/{Task}/{Method}/{Phase}/{Profile}/seed={Seed}{SizePart}" + (TuneGrid is null ? "" : $"/grid={TuneGrid}")
        : $"{Protocol}/{Task}/{Method}/tune/{Profile}/seed={Seed}{SizePart}{EpochsPart}{RungPart}/lr={F(Lr)},wd={F(WeightDecay)},dp={F(DropPath)}" +
          (Hp.Count > 0 ? "," + string.Join(",", Hp.Select(kv => $"{kv.Key}={kv.Value}")) : "");

    string SizePart => TrainImages is int n ? FormattableString.Invariant($"/n={n}") : "";
    string EpochsPart => Epochs is int e ? FormattableString.Invariant($"/epochs={e}") : "";
    string RungPart => Rung is int r ? FormattableString.Invariant($"/stop={r}") : "";

    /// <summary>Short form of the method hyperparameters, "r=8 s=0.1" (empty when none).</summary>
    [JsonIgnore]
    public string HpText => string.Join(" ", Hp.Select(kv => $"{kv.Key}={kv.Value}"));

    static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>"k=v" pairs (as given on the command line) as a sorted hyperparameter map, by the one key=value parser
    /// (<see cref="Peft.MethodRegistry.ParsePairs"/>).</summary>
    public static SortedDictionary<string, string> ParseHp(IEnumerable<string> pairs) =>
        new(Peft.MethodRegistry.ParsePairs(pairs), StringComparer.Ordinal);
}

/// <summary>
/// A finished trial as the results store keeps it. Top1Last/Top1Best are percentages on the trial's evaluation
/// set (val for tune, test for final) at the last epoch and at the best evaluated epoch. Status "ok", "diverged",
/// "error" (the trial threw; see Error) or "no-selection" (a final trial whose tune trials all failed). "ok" and
/// "diverged" are finished; "error" and "no-selection" are recorded (a sweep moves on) but the next run retries them,
/// and so a final selected without failed tune trials (<see cref="SelectedWithout"/>; <see cref="ResultsStore.Retryable"/>).
/// Only "ok" is ever selected.
/// </summary>
public sealed record TrialRecord
{
    public required string Key { get; init; }
    public required TrialConfig Config { get; init; }
    public string Status { get; init; } = "ok";
    /// <summary>Why a trial has status "error" or "no-selection".</summary>
    public string? Error { get; init; }
    public double? Top1Last { get; init; }
    public double? Top1Best { get; init; }
    public int? BestEpoch { get; init; }
    public double? TrainLoss { get; init; }
    public int Epochs { get; init; }
    /// <summary>Mean training loss per finished epoch, and top-1 per epoch where the scored split was evaluated (null
    /// elsewhere): what the convergence diagnostics read (Findings/Convergence). Null in records written before curves
    /// were kept: their convergence is unknown.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double[]? LossCurve { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public double?[]? EvalCurve { get; init; }
    /// <summary>Trainable parameters as the method counts them (the study excludes the head).</summary>
    public long TrainableParams { get; init; }
    public double WallSeconds { get; init; }
    public double ImagesPerSecond { get; init; }
    /// <summary>Logits and labels of the scored split (tune: val, final: test), relative to the store directory.</summary>
    public string? Predictions { get; init; }
    /// <summary>A val refit or final selected while these tune trials of its grid had failed: it stands for this run, and
    /// the next run, which retries them, selects and runs it again (<see cref="ResultsStore.Retryable"/>). Null otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string[]? SelectedWithout { get; init; }
    public string Host { get; init; } = Environment.MachineName;
    public int Pid { get; init; } = Environment.ProcessId;
    public DateTime FinishedUtc { get; init; } = DateTime.UtcNow;
    public Dictionary<string, string> Versions { get; init; } = CurrentVersions();

    [JsonIgnore] public bool Ok => Status == "ok" && Top1Last is not null;

    /// <summary>The record of a finished training run (ok or diverged), its curves read off the history: what the protocol
    /// and the robustness fine-tunings keep of every trial.</summary>
    public static TrialRecord Of(TrialConfig config, Training.TrainHistory history, long trainableParams, double wallSeconds, string? predictions = null) => new()
    {
        Key = config.Key, Config = config, Status = history.Diverged ? "diverged" : "ok",
        Top1Last = history.LastEvalTop1, Top1Best = history.BestEvalTop1, BestEpoch = history.BestEpoch,
        TrainLoss = history.FinalLoss is double l && double.IsFinite(l) ? l : null, Epochs = history.Epochs.Count,
        LossCurve = history.Epochs.All(e => double.IsFinite(e.Loss)) ? history.Epochs.Select(e => e.Loss).ToArray() : null,
        EvalCurve = history.Epochs.Select(e => e.EvalTop1).ToArray(),
        TrainableParams = trainableParams, WallSeconds = wallSeconds,
        ImagesPerSecond = history.ImagesPerSecond, Predictions = predictions,
    };

    public static Dictionary<string, string> CurrentVersions() => new()
    {
        ["PeftWorkbench"] = Workbench.Version,
        ["TorchSharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "?",
        [".NET"] = Environment.Version.ToString(),
    };
}
