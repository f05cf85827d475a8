using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>A model built for one trial and the trainable-parameter count its method reports (the study's
/// counts leave out the classification head). The protocol disposes it after the trial.</summary>
public sealed record BuiltModel(nn.Module<Tensor, Tensor> Model, long TrainableParams) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>Builds the model for a trial: backbone + method with <paramref name="config"/>'s hyperparameters and
/// drop path, with a fresh head of <paramref name="numClasses"/> classes.</summary>
public delegate BuiltModel ModelFactory(TrialConfig config, int numClasses);

/// <summary>Budgets, grids and protocol choices of a run. A profile (Profiles.cs, the one table) makes them;
/// tests and benchmarks may adjust a copy with `with`.</summary>
public sealed record ProtocolOptions
{
    public required string Profile { get; init; }
    public string Protocol { get; init; } = "vtab1k";
    public required TrainOptions Train { get; init; }
    /// <summary>Successive halving with one survivor: every grid point trains the first <see cref="Rung"/> epochs of the
    /// final's schedule (its lr where the whole schedule has it) and is scored on val200 there; the one selected at the
    /// rung trains the whole schedule on train800 (phase "val", scored on val200: the val curve the diagnostics read and
    /// the val logits ensembles choose by) and then as the final. A grid of one point, or a training subset, has no rung
    /// (<see cref="RungFor"/>). Null: every grid point
    /// trains the whole schedule, as the study's. A rung trial's numbers are the first epochs of the full trial's (same
    /// seed, same schedule), so the budget line is the same with or without it; the trial keys say where they stopped.</summary>
    public int? Rung { get; init; }
    /// <summary>VTAB-1K: methods that train other epochs than <see cref="Train"/>'s (Profile.LongerMethods), by study id: their
    /// tune trials carry the epochs in their key (<see cref="TrialConfig.Epochs"/>), train the whole grid (no rung) and warm
    /// up in proportion. Not part of <see cref="Budget"/>: the keys name it.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyDictionary<string, int> EpochsByMethod { get; init; } = new Dictionary<string, int>();

    public required IReadOnlyList<double> Lrs { get; init; }
    public required IReadOnlyList<double> WeightDecays { get; init; }
    public required IReadOnlyList<double> DropPaths { get; init; }
    /// <summary>Evaluate the final run on test every N epochs, for the best-epoch figure (the last epoch always;
    /// 0 = last only, so best = last).</summary>
    public int FinalEvalEvery { get; init; } = 1;
    /// <summary>Score tune (and val refit) trials on val200 every N epochs as well as after the last (0 = last only): the
    /// val curve the convergence diagnostics read. Selection still reads the last epoch; training is unchanged (an
    /// evaluation draws no random numbers), so it is not part of the budget.</summary>
    public int TuneEvalEvery { get; init; }
    public int EvalBatchSize { get; init; } = 256;
    /// <summary>Many-shot: the share of a training set of N images held out for validation when the suite has no fixed split.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Func<long, double> ValidationShare { get; init; } = n => n <= 1000 ? 0.2 : 0.1;
    /// <summary>Many-shot: train on a seeded subset of this many images (null: the whole training set; ManyShotRecipe.TrainImages).</summary>
    public int? ManyShotTrainImages { get; init; }
    /// <summary>VTAB-1K: train on a seeded subset of this many train800 images, the final on it plus val200
    /// (<see cref="TrainSubset"/>); null: the whole train800 (800 is normalised to null, so today's keys stay). Part of
    /// every trial key and of the store's identity and budget scope (<see cref="TrialIdentity.Scope"/>).</summary>
    public int? TrainImages { get; init; }
    public TieBreak TieBreak { get; init; } = TieBreak.FewestParameters;
    public LinearProbePath LinearProbe { get; init; } = LinearProbePath.FeatureCache;

    /// <summary>The options of a trial, resolved here and nowhere else: the profile's VTAB-1K options, or its many-shot
    /// recipe for a task of <paramref name="group"/> (the study's recipe differs per dataset; VTAB-1K ignores it), in bf16
    /// or not, with <paramref name="seed"/> (null: the profile's). Every way of running a trial (Study.Run, Study.RunAll's
    /// workers, `peft sweep`, a manifest's worker or slurm task) gets its options from this call.</summary>
    public static ProtocolOptions For(string profile, string protocol = "vtab1k", string group = "natural", bool bf16 = false, long? seed = null,
        int? trainImages = null)
    {
        var p = Profiles.Get(profile);
        var o = protocol switch
        {
            "vtab1k" => p.Vtab1k().ForGroup(group),
            "manyshot" => p.ManyShotFor(group),
            _ => throw new ArgumentException($"Unknown protocol '{protocol}'. Known: vtab1k, manyshot.", nameof(protocol)),
        };
        var n = TrainSubset.Normalize(trainImages);
        if (n is not null && protocol != "vtab1k")
            throw new ArgumentException($"A training-set size ({n}) applies to the vtab1k protocol, not '{protocol}' (many-shot sizes come from the profile's recipe).", nameof(trainImages));
        return o with { Train = o.Train with { Bf16 = bf16, Seed = seed ?? o.Train.Seed }, TrainImages = n };
    }

    /// <summary>
    /// These VTAB-1K options for a task of <paramref name="group"/>: the profile's epoch scale for the group
    /// (<see cref="Tuning.Profile.EpochScaleByGroup"/>) applied to the final's epochs and warmup and to the tune epochs.
    /// Takes a profile's natural-task options (what <see cref="Tuning.Profile.Vtab1k"/> gives; a sweep plan scales per task);
    /// many-shot options and a group the profile does not name come back as they are.
    /// </summary>
    public ProtocolOptions ForGroup(string group)
    {
        if (Protocol != "vtab1k" || Profiles.Find(Profile) is not { } profile) return this;
        var o = this with { EpochsByMethod = profile.LongerEpochs(group) };
        if (profile.EpochScale(group) is not (int k and > 1)) return o;
        return o with { Train = Train with { Epochs = Train.Epochs * k, WarmupEpochs = Train.WarmupEpochs * k }, Rung = Rung * k };
    }

    /// <summary>The epochs <paramref name="method"/> trains when they are not <see cref="Train"/>'s (<see cref="EpochsByMethod"/>), else null.</summary>
    public int? EpochsFor(string method) => EpochsByMethod.TryGetValue(method, out var e) && e != Train.Epochs ? e : null;

    /// <summary>The training options of <paramref name="config"/>'s schedule: <see cref="Train"/>, or its epochs when the
    /// trial names its own (<see cref="TrialConfig.Epochs"/>), with the warmup in proportion.</summary>
    public TrainOptions TrainFor(TrialConfig config) => config.Epochs is int e && e != Train.Epochs
        ? Train with { Epochs = e, WarmupEpochs = (int)Math.Round((double)Train.WarmupEpochs * e / Train.Epochs) }
        : Train;

    /// <summary>VTAB-1K options of a profile on a natural task (see <see cref="Profiles"/>; <see cref="ForGroup"/> for another group).</summary>
    public static ProtocolOptions Vtab1k(string profile) => Profiles.Get(profile).Vtab1k();

    /// <summary>Many-shot options of a profile for a task of <paramref name="group"/> (the study's recipe differs per dataset).</summary>
    public static ProtocolOptions ManyShot(string profile, string group = "natural") => Profiles.Get(profile).ManyShotFor(group);

    /// <summary>What decides a trial's numbers besides its key (lr, wd, drop path, method options, seed, rung), for
    /// <see cref="ResultsStore.CheckBudget"/>: both phases' training (one schedule: "tune" and "final" name it twice, as stores
    /// have always recorded it), the final's evaluation, selection and probe path.</summary>
    public string Budget =>
        $"tune {Train.Budget}; final {Train.Budget}; final eval every {FinalEvalEvery}; tie-break {TieBreak}; " +
        $"linear probe {LinearProbe}; many-shot images {(ManyShotTrainImages is int n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "all")}";

    /// <summary>The rung a grid of <paramref name="points"/> tune configurations stops at (<see cref="Rung"/>): none for one
    /// point, a rung at or past the schedule's end, or a training subset (<see cref="TrainImages"/>: notebook 07's sizes).
    /// The rung was measured on train800; on 50-400 images a fifth of the schedule is a handful of steps, and on random
    /// init it changed 8 of 16 selections (full FT at 200 images: 56.9 % test with the full grid, 21.0 % with the rung).</summary>
    public int? RungFor(int points) => points > 1 && TrainImages is null && Rung is int r && r < Train.Epochs ? r : null;
}

/// <summary>What a protocol run found: every tune trial, the one selected, the final (test) trial, and
/// <paramref name="Val"/>: the trial whose val200 logits stand for the final model (after a rung, the selected configuration
/// trained for the whole schedule; else the selected tune trial; null without a selection).</summary>
public sealed record ProtocolResult(IReadOnlyList<TrialRecord> Tuning, TrialRecord? Selected, TrialRecord Final, TrialRecord? Val = null);

/// <summary>
/// The study's tuning protocol. VTAB-1K: every configuration of (method grid x lr x wd) trains on train800 and
/// is scored on val200 at the last epoch; the best is chosen (ties: fewer trainable parameters, then smaller lr,
/// then smaller wd), retrained on train800val200 and evaluated on test, recording last- and best-epoch top-1.
/// Many-shot: the same with a seeded 10 % validation split of the training set and drop path in the grid.
/// With a <see cref="ResultsStore"/>, finished trials are reused and new ones recorded (resumable, shareable).
/// </summary>
public static class Protocol
{
    static readonly IReadOnlyList<SortedDictionary<string, string>> NoGrid = new[] { new SortedDictionary<string, string>(StringComparer.Ordinal) };

    /// <summary>
    /// The tune trials of one method on one task, in the study's grid order: sklearn's ParameterGrid over every axis
    /// (the method's keys, "lr", "wd", "drop_path_rate"), keys sorted by name with the first one outermost and each
    /// axis's values in the order given (experiment/tune.py:24). The study's tie-break (the last of the tied best)
    /// depends on this order.
    /// </summary>
    public static IReadOnlyList<TrialConfig> TuneConfigs(string task, string method, IReadOnlyList<SortedDictionary<string, string>>? methodGrid,
        ProtocolOptions o)
    {
        var configs = (from hp in methodGrid is { Count: > 0 } ? methodGrid : NoGrid
                       from lr in o.Lrs
                       from wd in o.WeightDecays
                       from dp in o.DropPaths
                       select new TrialConfig
                       {
                           Task = task, Method = method, Phase = "tune", Lr = lr, WeightDecay = wd, DropPath = dp,
                           Hp = new SortedDictionary<string, string>(hp, StringComparer.Ordinal), Profile = o.Profile, Protocol = o.Protocol, Seed = o.Train.Seed,
                           TrainImages = o.TrainImages, Epochs = o.EpochsFor(method),
                       }).ToList();
        // A method with its own (longer) schedule trains the whole grid: the rung was measured on the profile's schedule.
        if (o.RungFor(configs.Count) is int rung && o.EpochsFor(method) is null) configs = configs.Select(c => c with { Rung = rung }).ToList();
        static IEnumerable<(string Key, string Value)> Axes(TrialConfig c) =>
            c.Hp.Select(kv => (kv.Key, kv.Value)).Concat(new[] { ("lr", F(c.Lr)), ("wd", F(c.WeightDecay)), ("drop_path_rate", F(c.DropPath)) });
        // Each axis's values in order of first appearance (the order given), then a lexicographic sort by axis name.
        var rank = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (key, value) in configs.SelectMany(Axes))
        {
            if (!rank.TryGetValue(key, out var values)) rank[key] = values = new List<string>();
            if (!values.Contains(value)) values.Add(value);
        }
        var names = rank.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        int[] Position(TrialConfig c)
        {
            var axes = Axes(c).ToDictionary(a => a.Key, a => a.Value);
            return names.Select(n => axes.TryGetValue(n, out var v) ? rank[n].IndexOf(v) : -1).ToArray();
        }
        return configs.Select(c => (c, Position(c))).OrderBy(x => x.Item2, Comparer<int[]>.Create((a, b) =>
        {
            for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return a[i].CompareTo(b[i]);
            return 0;
        })).Select(x => x.c).ToList();
    }

    static string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The final trial's config: the selected tune config, phase "final", with the digest of the tune grid
    /// it was chosen from (so the final's key changes when the grid does).</summary>
    public static TrialConfig FinalConfig(TrialConfig selected, string tuneGrid) => selected with { Phase = "final", TuneGrid = tuneGrid };

    /// <summary>The <see cref="TrialConfig.TuneGrid"/> of a final at given hyperparameters (<see cref="GivenFinal"/>) starts
    /// with this: nothing was selected (no tune trials), and the rest is the digest of the one configuration given.</summary>
    public const string GivenGrid = "given-";

    /// <summary>
    /// A final at given hyperparameters, nothing selected: <paramref name="method"/> with <paramref name="hp"/>, drop path
    /// <paramref name="dropPath"/> and <paramref name="o"/>'s lr, weight decay, seed and schedule (<see cref="ProtocolOptions.Train"/>),
    /// trained on train800val200 and scored on test by <see cref="RunTrial"/> without tune trials. Its grid digest
    /// (<see cref="GivenGrid"/> + the digest of that configuration's tune key) names the hyperparameters, so two given
    /// finals of one method differ in key exactly where they differ in training, and never share a key with a selected final.
    /// </summary>
    public static TrialConfig GivenFinal(string task, string method, IReadOnlyDictionary<string, string>? hp, ProtocolOptions o, double dropPath = 0)
    {
        var point = new TrialConfig
        {
            Task = task, Method = method, Phase = "tune", Lr = o.Train.Lr, WeightDecay = o.Train.WeightDecay, DropPath = dropPath,
            Hp = new SortedDictionary<string, string>(hp?.ToDictionary(kv => kv.Key, kv => kv.Value) ?? new Dictionary<string, string>(), StringComparer.Ordinal),
            Profile = o.Profile, Protocol = o.Protocol, Seed = o.Train.Seed, TrainImages = o.TrainImages, Epochs = o.EpochsFor(method),
        };
        return FinalConfig(point, GivenGrid + GridDigest(new[] { point.Key }));
    }

    /// <summary>Whether <paramref name="config"/> is a final at given hyperparameters (<see cref="GivenFinal"/>): it selects nothing.</summary>
    public static bool IsGiven(TrialConfig config) => config.Phase == "final" && config.TuneGrid?.StartsWith(GivenGrid, StringComparison.Ordinal) == true;

    /// <summary>The final trial's config before selection: what its store key is made of (task, method, profile,
    /// protocol, seed, and the digest of its tune trials' keys, since those decide the selection).</summary>
    public static TrialConfig PendingFinal(string task, string method, ProtocolOptions o, IEnumerable<string> tuneKeys) =>
        Pending("final", task, method, o, tuneKeys);

    /// <summary>A trial after selection ("val" or "final") before selection: its key is known from the tune keys alone.</summary>
    public static TrialConfig Pending(string phase, string task, string method, ProtocolOptions o, IEnumerable<string> tuneKeys) =>
        new() { Task = task, Method = method, Phase = phase, Profile = o.Profile, Protocol = o.Protocol, Seed = o.Train.Seed, TrainImages = o.TrainImages,
            TuneGrid = GridDigest(tuneKeys) };

    /// <summary>The trials a sweep plans after a method's tune trials (<see cref="TuneConfigs"/>): after a rung the
    /// selection's full run ("val"), then the final.</summary>
    public static IEnumerable<TrialConfig> PendingAfterTune(string task, string method, ProtocolOptions o, IReadOnlyList<TrialConfig> tune) =>
        (HasRung(tune) ? new[] { "val", "final" } : new[] { "final" }).Select(phase => Pending(phase, task, method, o, tune.Select(t => t.Key)));

    /// <summary>Whether these tune trials stopped at a rung (then the selection trains in full as phase "val").</summary>
    public static bool HasRung(IEnumerable<TrialConfig> tune) => tune.Any(t => t.Rung is not null);

    /// <summary>12 hex digits of SHA-256 over the tune keys in grid order.</summary>
    public static string GridDigest(IEnumerable<string> tuneKeys) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", tuneKeys))))[..12];

    /// <summary>The final trial's key for a method on a task (known before selection).</summary>
    public static string FinalKey(string task, string method, ProtocolOptions o, IEnumerable<string> tuneKeys) =>
        PendingFinal(task, method, o, tuneKeys).Key;

    /// <summary>
    /// Best tune trial by last-epoch val top-1 among the ok ones (diverged and failed trials never win; null when
    /// none succeeded). Ties: <see cref="TieBreak.LastOfTiedInGridOrder"/> takes the last tied one in the order
    /// given (the grid's; the study's rule); <see cref="TieBreak.FewestParameters"/> fewer trainable parameters,
    /// smaller lr, wd, drop path, then key order.
    /// </summary>
    public static TrialRecord? Select(IEnumerable<TrialRecord> tuning, TieBreak tieBreak = TieBreak.FewestParameters)
    {
        var ok = tuning.Where(r => r.Ok).ToList();
        if (ok.Count == 0) return null;
        if (tieBreak == TieBreak.LastOfTiedInGridOrder)
        {
            double best = ok.Max(r => r.Top1Last!.Value);
            return ok.Last(r => r.Top1Last == best);
        }
        return ok.OrderByDescending(r => r.Top1Last)
            .ThenBy(r => r.TrainableParams)
            .ThenBy(r => r.Config.Lr)
            .ThenBy(r => r.Config.WeightDecay)
            .ThenBy(r => r.Config.DropPath)
            .ThenBy(r => r.Key, StringComparer.Ordinal)
            .First();
    }

    /// <summary>Refuses a method grid with an unknown key or a value that does not parse (or, given the backbone,
    /// does not fit it), naming the key and the method's known keys, before any trial runs.</summary>
    public static void ValidateGrid(string method, IEnumerable<IReadOnlyDictionary<string, string>>? grid, VitConfig? backbone = null)
    {
        var info = Peft.MethodRegistry.Get(method);
        foreach (var hp in grid ?? Array.Empty<IReadOnlyDictionary<string, string>>())
            Peft.MethodRegistry.Create(info.Id, hp, backbone);
    }

    public static ProtocolResult Vtab1k(Vtab1kTask task, string method, IReadOnlyList<SortedDictionary<string, string>>? methodGrid,
        ModelFactory factory, ProtocolOptions options, ResultsStore? store = null,
        Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null, CancellationToken cancel = default)
    {
        ValidateGrid(method, methodGrid);
        store?.CheckBudget(options, task.Name);
        var tuning = new List<TrialRecord>();
        foreach (var config in TuneConfigs(task.Name, method, methodGrid, options))
        {
            var progress = progressFor?.Invoke(config); // made before the store is asked, whether the trial runs or is reused
            tuning.Add(RunOrReuse(config.Key, store, cancel, () => RunTrial(config, task, factory, options, store, _ => progress, cancel)));
        }
        var selected = Select(tuning, options.TieBreak);
        // After a rung, the selection's full run on train800 ("val"); then the final: run, or reused from the store.
        var val = !HasRung(tuning.Select(t => t.Config)) ? selected : AfterTune("val") is { Ok: true } refit ? refit : null;
        var final = AfterTune("final");
        return new ProtocolResult(tuning, selected, final, val);

        TrialRecord AfterTune(string phase)
        {
            var pending = Pending(phase, task.Name, method, options, tuning.Select(t => t.Key));
            return RunOrReuse(pending.Key, store, cancel, () => RunTrial(pending, task, factory, options, store, progressFor, cancel, tuning));
        }
    }

    /// <summary>A seeded split into (train, validation) with round(share x N) validation examples (at least 1).</summary>
    public static (ImageSet Train, ImageSet Val) ValidationSplit(ImageSet set, double share, long seed)
    {
        if (share is <= 0 or >= 1) throw new ArgumentException($"validation share must be in (0, 1), got {share}.");
        long n = set.Count;
        long nVal = Math.Max(1, (long)Math.Round(share * n));
        if (nVal >= n) throw new ArgumentException($"'{set.Name}' has {n} examples: too few to hold out {nVal} for validation.");
        using var gen = new Generator((ulong)seed);
        using var perm = torch.randperm(n, generator: gen);
        var order = perm.data<long>().ToArray();
        return (set.Subset(order[(int)nVal..], set.Name + "-train"), set.Subset(order[..(int)nVal], set.Name + "-val"));
    }

    /// <summary>What a val refit or final trial runs: the config selected from <paramref name="tuning"/> (in grid order: the
    /// study's tie-break depends on it), or, with no successful tune trial, the "no-selection" record to keep (a sweep
    /// records it as finished and moves on).</summary>
    static (TrialConfig? Config, TrialRecord? NoSelection) SelectFor(string phase, string task, string method, IReadOnlyList<TrialRecord> tuning, ProtocolOptions options)
    {
        if (phase is not ("val" or "final")) throw new ArgumentException($"phase must be 'val' or 'final', got '{phase}'.", nameof(phase));
        var pending = Pending(phase, task, method, options, tuning.Select(t => t.Key));
        if (Select(tuning, options.TieBreak) is { } selected) return (FinalConfig(selected.Config, pending.TuneGrid!) with { Phase = phase }, null);
        var config0 = tuning.Count > 0 ? FinalConfig(tuning[0].Config, pending.TuneGrid!) with { Phase = phase } : pending;
        return (null, new TrialRecord { Key = pending.Key, Config = config0, Status = "no-selection", Error = $"all {tuning.Count} tune trials diverged or failed" });
    }

    /// <summary>Without a store: runs the trial (<paramref name="run"/>). With one: returns the finished record, or claims
    /// and runs the trial and records it, or waits while another worker runs it.</summary>
    static TrialRecord RunOrReuse(string key, ResultsStore? store, CancellationToken cancel, Func<TrialRecord> run)
    {
        if (store is null) return run();
        // A failed trial is retried once per run (ResultsStore.Retryable); what this run records then stands.
        var failed = store.Find(key) is { } f && ResultsStore.Retryable(f) ? f : null;
        if (failed is not null) store.Notices?.Invoke($"retrying {key}: {ResultsStore.WhyRetried(failed)}");
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (store.Find(key) is { } done && !ResultsStore.IsSameFailure(done, failed)) return done;
            using (var claim = store.TryClaim(key, failed))
            {
                if (claim is not null)
                {
                    var record = run();
                    return store.Append(record, failed) ? record : store.Find(key)!;
                }
            }
            cancel.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(250));
        }
    }

    /// <summary>
    /// Trains one trial and scores it, the one way every trial runs (notebooks, `peft train`, sweeps, workers, array
    /// tasks, the robustness fine-tunings): tune = train800 -> val200 at the last epoch (at the rung, where it has one); val and final first select their hyperparameters from
    /// <paramref name="tuning"/> (<see cref="SelectFor"/>; nothing to select: the "no-selection" record), then val = the
    /// selection trained on train800 for the whole schedule, final = train800val200 -> test,
    /// also evaluated every <see cref="ProtocolOptions.FinalEvalEvery"/> epochs for the best-epoch figure (an evaluation
    /// draws no random numbers and leaves the weights as they were: the cadence changes no training). A final at given
    /// hyperparameters (<see cref="GivenFinal"/>, <see cref="IsGiven"/>) selects nothing: it trains as it is, with no
    /// <paramref name="tuning"/> (Robustness.FineTune's fixed-lr fine-tuning). With a
    /// store, the logits and labels of the scored split (val or test) are saved (TrialRecord.Predictions). Divergence gives a "diverged" record; an exception an "error" record;
    /// cancellation throws <see cref="OperationCanceledException"/> (nothing is recorded).
    /// A ViT whose only trainable part is its head (linear probing) trains through a <see cref="FeatureCache"/> under
    /// <see cref="LinearProbePath.FeatureCache"/>, or when its backbone has no stochastic layers (then the same thing),
    /// unless the trial augments its images; else through the frozen backbone in train mode, as the study does.
    /// </summary>
    /// <param name="handOver">Called with the trained model and its record before the model is disposed: true keeps it, and
    /// the caller owns it from then on (notebook 05's WiSE curves need the selected fine-tuning itself). Null: disposed.</param>
    internal static TrialRecord RunTrial(TrialConfig config, Vtab1kTask task, ModelFactory factory, ProtocolOptions options,
        ResultsStore? store, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor, CancellationToken cancel, IReadOnlyList<TrialRecord>? tuning = null,
        Func<BuiltModel, TrialRecord, bool>? handOver = null)
    {
        if (config.Phase is "val" or "final" && !IsGiven(config))
        {
            var (selected, noSelection) = SelectFor(config.Phase, task.Name, config.Method,
                tuning ?? throw new ArgumentException($"a {config.Phase} trial needs the tune trials it selects from", nameof(tuning)), options);
            if (noSelection is not null) return noSelection;
            config = selected!;
        }
        var progress = progressFor?.Invoke(config);
        bool final = config.Phase == "final";
        var (train, eval) = final ? (task.Train800Val200, task.Test) : (task.Train800, task.Val200);
        var trainOptions = options.TrainFor(config) with
        {
            StopAfterEpochs = config.Phase == "tune" ? config.Rung : null,
            Lr = config.Lr, WeightDecay = config.WeightDecay, Seed = config.Seed,
            EvalEvery = final ? options.FinalEvalEvery : options.TuneEvalEvery,
        };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        BuiltModel? built = null;
        bool handedOver = false;
        try
        {
            built = factory(config, task.NumClasses);
            TrainHistory history;
            EvalResult? scored = null;
            // With a store, every trial keeps the logits of the split it is scored on (tune and val: val200, final: test).
            Action<EvalResult>? keep = store is not null ? r => scored = r : null;
            // Cached features cannot be augmented (a crop or flip changes them): an augmented probe (many-shot) goes through the backbone.
            if (LinearProbeBackbone(built.Model) is { } vit && trainOptions.Augment == ImageAugment.None
                && (options.LinearProbe == LinearProbePath.FeatureCache || !HasStochasticLayers(vit)))
            {
                using var trainCache = FeatureCache.Build(vit, train, options.EvalBatchSize, trainOptions.Device ?? Workbench.Device);
                using var evalCache = FeatureCache.Build(vit, eval, options.EvalBatchSize, trainOptions.Device ?? Workbench.Device);
                history = LinearProbe.Fit(vit, trainCache, evalCache, trainOptions, progress, cancel, keep);
            }
            // The loop itself, on the image sets through Trainer.Images (the check the public Trainer.Fit makes too), keeping the scored evaluation.
            else history = Trainer.Fit(built.Model, Trainer.Images(train, "train"), Trainer.Images(eval, "eval"), trainOptions, progress, cancel, keep);
            if (history.Cancelled) { scored?.Dispose(); throw new OperationCanceledException($"trial {config.Key} cancelled", cancel); }
            string? predictions = null;
            using (scored) if (scored is not null) predictions = store!.SavePredictions(config.Key, scored);
            var record = SelectedWithout(TrialRecord.Of(config, history, built.TrainableParams, clock.Elapsed.TotalSeconds, predictions));
            handedOver = handOver?.Invoke(built, record) == true;
            return record;
        }
        catch (Exception e) when (e is not OperationCanceledException && e is not OutOfMemoryException)
        {
            return SelectedWithout(new TrialRecord
            {
                Key = config.Key, Config = config, Status = "error", Error = $"{e.GetType().Name}: {e.Message}",
                WallSeconds = clock.Elapsed.TotalSeconds,
            });
        }
        finally { if (!handedOver) built?.Dispose(); }

        // A selection that missed failed tune trials stands for this run only: the next run retries them, then this.
        TrialRecord SelectedWithout(TrialRecord record)
        {
            var missed = tuning?.Where(ResultsStore.Retryable).Select(t => t.Key).ToArray() ?? Array.Empty<string>();
            if (missed.Length == 0) return record;
            store?.Notices?.Invoke($"{record.Key}: selected without {missed.Length} failed tune trial(s); a rerun retries them and then this {config.Phase} trial");
            return record with { SelectedWithout = missed };
        }
    }

    /// <summary>Whether the backbone draws random numbers in train mode (drop path or dropout above 0): then cached
    /// eval-mode features differ from what the study's train-mode probe sees.</summary>
    static bool HasStochasticLayers(VisionTransformer vit) =>
        vit.Config.DropRate > 0 || vit.modules().Any(m => m is DropPath { Prob: > 0 });

    /// <summary>The ViT to probe through a feature cache when only its head trains (a bare ViT, or the "linear"
    /// method's PeftModel, which adds nothing to the forward); else null.</summary>
    static VisionTransformer? LinearProbeBackbone(nn.Module<Tensor, Tensor> model)
    {
        var vit = model switch
        {
            VisionTransformer v => v,
            Peft.PeftModel pm when pm.Method.Id == "linear" => pm.model,
            _ => null,
        };
        if (vit is null) return null;
        bool onlyHead = model.named_parameters().Where(p => p.parameter.requires_grad)
            .All(p => p.name.StartsWith("head.", StringComparison.Ordinal) || p.name.StartsWith("model.head.", StringComparison.Ordinal));
        return onlyHead && vit.head.parameters().Any(p => p.requires_grad) ? vit : null;
    }
}
