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

/// <summary>Budgets and grids of a protocol run. The profile sets them; paper = the study's values.</summary>
public sealed record ProtocolOptions
{
    public required string Profile { get; init; }
    public string Protocol { get; init; } = "vtab1k";
    public required TrainOptions Train { get; init; }
    public required IReadOnlyList<double> Lrs { get; init; }
    public required IReadOnlyList<double> WeightDecays { get; init; }
    public required IReadOnlyList<double> DropPaths { get; init; }
    /// <summary>Evaluate the final run on test every N epochs, for the best-epoch figure (the last epoch always;
    /// 0 = last only, so best = last). paper: 1. default/smoke: 0, since one pass over a 2,000-image test set
    /// costs about as much as a training epoch on 800 images.</summary>
    public int FinalEvalEvery { get; init; } = 1;
    public int EvalBatchSize { get; init; } = 256;
    /// <summary>Share of the training set held out for validation under the many-shot protocol.</summary>
    public double ValidationShare { get; init; } = 0.1;

    /// <summary>VTAB-1K: lr x wd grid (crossed with the method's own), drop path fixed at 0.1 as in the study.
    /// mini-full keeps the study's lr x wd grid and best-epoch evaluation with the methods' default options.</summary>
    public static ProtocolOptions Vtab1k(string profile) => profile switch
    {
        "paper" => new() { Profile = profile, Train = TrainOptions.ForProfile(profile), Lrs = new[] { 1e-3, 1e-2 }, WeightDecays = new[] { 1e-4, 1e-3 }, DropPaths = new[] { 0.1 } },
        "mini-full" => new() { Profile = profile, Train = TrainOptions.ForProfile(profile), Lrs = new[] { 1e-3, 1e-2 }, WeightDecays = new[] { 1e-4, 1e-3 }, DropPaths = new[] { 0.1 } },
        "default" => new() { Profile = profile, Train = TrainOptions.ForProfile(profile), Lrs = new[] { 1e-3, 1e-2 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.1 }, FinalEvalEvery = 0 },
        "smoke" => new() { Profile = profile, Train = TrainOptions.ForProfile(profile), Lrs = new[] { 1e-2 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.1 }, FinalEvalEvery = 0 },
        _ => throw new ArgumentException($"Unknown profile '{profile}'. Known profiles: {string.Join(", ", TrainOptions.Profiles)}."),
    };

    /// <summary>Many-shot: 10 % validation split, drop path in the grid; paper = 40 epochs, 4 warmup, lr {5e-4, 1e-3}.</summary>
    public static ProtocolOptions ManyShot(string profile) => profile switch
    {
        "paper" => new() { Profile = profile, Protocol = "manyshot", Train = TrainOptions.ForProfile(profile) with { Epochs = 40, WarmupEpochs = 4 },
            Lrs = new[] { 5e-4, 1e-3 }, WeightDecays = new[] { 1e-4, 1e-3 }, DropPaths = new[] { 0.0, 0.1, 0.2 } },
        "mini-full" => new() { Profile = profile, Protocol = "manyshot", Train = TrainOptions.ForProfile(profile) with { Epochs = 10, WarmupEpochs = 1 },
            Lrs = new[] { 5e-4, 1e-3 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0, 0.1, 0.2 } },
        "default" => new() { Profile = profile, Protocol = "manyshot", Train = TrainOptions.ForProfile(profile),
            Lrs = new[] { 1e-3 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0, 0.1 }, FinalEvalEvery = 0 },
        "smoke" => new() { Profile = profile, Protocol = "manyshot", Train = TrainOptions.ForProfile(profile),
            Lrs = new[] { 1e-3 }, WeightDecays = new[] { 1e-4 }, DropPaths = new[] { 0.0, 0.1 }, FinalEvalEvery = 0 },
        _ => throw new ArgumentException($"Unknown profile '{profile}'. Known profiles: {string.Join(", ", TrainOptions.Profiles)}."),
    };
}

/// <summary>What a protocol run found: every tune trial, the one selected, and the final (test) trial.</summary>
public sealed record ProtocolResult(IReadOnlyList<TrialRecord> Tuning, TrialRecord? Selected, TrialRecord Final);

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

    /// <summary>The tune trials of one method on one task, in a fixed order.</summary>
    public static IReadOnlyList<TrialConfig> TuneConfigs(string task, string method, IReadOnlyList<SortedDictionary<string, string>>? methodGrid,
        ProtocolOptions o) =>
        (from hp in methodGrid is { Count: > 0 } ? methodGrid : NoGrid
         from lr in o.Lrs
         from wd in o.WeightDecays
         from dp in o.DropPaths
         select new TrialConfig
         {
             Task = task, Method = method, Phase = "tune", Lr = lr, WeightDecay = wd, DropPath = dp,
             Hp = new SortedDictionary<string, string>(hp, StringComparer.Ordinal), Profile = o.Profile, Protocol = o.Protocol, Seed = o.Train.Seed,
         }).ToList();

    /// <summary>The final trial's config: the selected tune config, phase "final".</summary>
    public static TrialConfig FinalConfig(TrialConfig selected) => selected with { Phase = "final" };

    /// <summary>The final trial's key for a method on a task (known before selection).</summary>
    public static string FinalKey(string task, string method, ProtocolOptions o) =>
        new TrialConfig { Task = task, Method = method, Phase = "final", Profile = o.Profile, Protocol = o.Protocol, Seed = o.Train.Seed }.Key;

    /// <summary>Best tune trial by last-epoch val top-1; ties: fewer trainable parameters, smaller lr, smaller wd,
    /// smaller drop path, then key order. Diverged and failed trials never win; null when none succeeded.</summary>
    public static TrialRecord? Select(IEnumerable<TrialRecord> tuning) =>
        tuning.Where(r => r.Ok)
            .OrderByDescending(r => r.Top1Last)
            .ThenBy(r => r.TrainableParams)
            .ThenBy(r => r.Config.Lr)
            .ThenBy(r => r.Config.WeightDecay)
            .ThenBy(r => r.Config.DropPath)
            .ThenBy(r => r.Key, StringComparer.Ordinal)
            .FirstOrDefault();

    public static ProtocolResult Vtab1k(Vtab1kTask task, string method, IReadOnlyList<SortedDictionary<string, string>>? methodGrid,
        ModelFactory factory, ProtocolOptions options, ResultsStore? store = null,
        Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null, CancellationToken cancel = default)
    {
        var tuning = new List<TrialRecord>();
        foreach (var config in TuneConfigs(task.Name, method, methodGrid, options))
            tuning.Add(RunOrReuse(config, task, factory, options, store, progressFor?.Invoke(config), cancel));
        var final = RunFinal(task, method, tuning, factory, options, store, progressFor, cancel);
        return new ProtocolResult(tuning, Select(tuning), final);
    }

    /// <summary>Many-shot: tune on a seeded 90 % of <paramref name="train"/>, select on the other 10 %, retrain on all of it, test.</summary>
    public static ProtocolResult ManyShot(string taskName, ImageSet train, ImageSet test, string method,
        IReadOnlyList<SortedDictionary<string, string>>? methodGrid, ModelFactory factory, ProtocolOptions options, ResultsStore? store = null,
        Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null, CancellationToken cancel = default)
    {
        var (fit, val) = ValidationSplit(train, options.ValidationShare, options.Train.Seed);
        using (fit) using (val)
        {
            // Not disposed as a whole: train and test belong to the caller.
            var task = new Vtab1kTask(taskName, "manyshot", fit, val, train, test);
            return Vtab1k(task, method, methodGrid, factory, options, store, progressFor, cancel);
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

    /// <summary>Runs (or reuses from the store) the final trial of a method on a task, given its finished tune trials.</summary>
    public static TrialRecord RunFinal(Vtab1kTask task, string method, IReadOnlyList<TrialRecord> tuning, ModelFactory factory,
        ProtocolOptions options, ResultsStore? store, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor, CancellationToken cancel) =>
        RunOrReuse(FinalKey(task.Name, method, options), store, cancel,
            () => RunFinalTrial(task, method, tuning, factory, options, store, progressFor, cancel));

    /// <summary>Selects from <paramref name="tuning"/> and runs the final trial (no reuse). With no successful tune
    /// trial it returns a "no-selection" record, so a sweep records it as finished and moves on.</summary>
    public static TrialRecord RunFinalTrial(Vtab1kTask task, string method, IReadOnlyList<TrialRecord> tuning, ModelFactory factory,
        ProtocolOptions options, ResultsStore? store, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor, CancellationToken cancel)
    {
        var selected = Select(tuning);
        if (selected is null)
        {
            var first = tuning.Count > 0 ? tuning[0].Config
                : new TrialConfig { Task = task.Name, Method = method, Profile = options.Profile, Protocol = options.Protocol, Seed = options.Train.Seed };
            return new TrialRecord
            {
                Key = FinalKey(task.Name, method, options), Config = FinalConfig(first), Status = "no-selection",
                Error = $"all {tuning.Count} tune trials diverged or failed",
            };
        }
        var config = FinalConfig(selected.Config);
        return RunTrial(config, task, factory, options, store, progressFor?.Invoke(config), cancel);
    }

    /// <summary>Without a store: runs the trial. With one: returns the finished record, or claims and runs the
    /// trial and records it, or waits while another worker runs it.</summary>
    public static TrialRecord RunOrReuse(TrialConfig config, Vtab1kTask task, ModelFactory factory, ProtocolOptions options,
        ResultsStore? store, IProgress<TrainProgress>? progress, CancellationToken cancel) =>
        RunOrReuse(config.Key, store, cancel, () => RunTrial(config, task, factory, options, store, progress, cancel));

    static TrialRecord RunOrReuse(string key, ResultsStore? store, CancellationToken cancel, Func<TrialRecord> run)
    {
        if (store is null) return run();
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            if (store.Find(key) is { } done) return done;
            using (var claim = store.TryClaim(key))
            {
                if (claim is not null)
                {
                    var record = run();
                    return store.Append(record) ? record : store.Find(key)!;
                }
            }
            cancel.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(250));
        }
    }

    /// <summary>
    /// Trains one trial and scores it: tune = train800 -> val200 at the last epoch; final = train800val200 -> test,
    /// also evaluated every <see cref="ProtocolOptions.FinalEvalEvery"/> epochs for the best-epoch figure. With a store,
    /// the logits of the split a trial is scored on (tune: val, final: test) are saved there. Divergence gives a "diverged" record; an exception an "error" record;
    /// cancellation throws <see cref="OperationCanceledException"/> (nothing is recorded).
    /// A ViT whose only trainable part is its head trains through a <see cref="FeatureCache"/> (linear probing).
    /// </summary>
    public static TrialRecord RunTrial(TrialConfig config, Vtab1kTask task, ModelFactory factory, ProtocolOptions options,
        ResultsStore? store, IProgress<TrainProgress>? progress, CancellationToken cancel)
    {
        bool final = config.Phase == "final";
        var (train, eval) = final ? (task.Train800Val200, task.Test) : (task.Train800, task.Val200);
        var trainOptions = options.Train with
        {
            Lr = config.Lr, WeightDecay = config.WeightDecay, Seed = config.Seed,
            EvalEvery = final ? options.FinalEvalEvery : 0,
        };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            using var built = factory(config, task.NumClasses);
            TrainHistory history;
            EvalResult? test = null;
            // Both phases save what they are scored on (tune: val, final: test), so analysis can select ensembles on val.
            Action<EvalResult>? keep = store is not null ? r => test = r : null;
            if (LinearProbeBackbone(built.Model) is { } vit)
            {
                using var trainCache = FeatureCache.Build(vit, train, options.EvalBatchSize, trainOptions.Device ?? Workbench.Device);
                using var evalCache = FeatureCache.Build(vit, eval, options.EvalBatchSize, trainOptions.Device ?? Workbench.Device);
                history = LinearProbe.Fit(vit, trainCache, evalCache, trainOptions, progress, cancel, keep);
            }
            else history = Trainer.Fit(built.Model, train, eval, trainOptions, progress, cancel, keep);
            if (history.Cancelled) { test?.Dispose(); throw new OperationCanceledException($"trial {config.Key} cancelled", cancel); }
            string? predictions = null;
            using (test) if (test is not null) predictions = store!.SavePredictions(config.Key, test);
            return new TrialRecord
            {
                Key = config.Key, Config = config, Status = history.Diverged ? "diverged" : "ok",
                Top1Last = history.LastEvalTop1, Top1Best = history.BestEvalTop1, BestEpoch = history.BestEpoch,
                TrainLoss = history.FinalLoss is double l && double.IsFinite(l) ? l : null, Epochs = history.Epochs.Count,
                TrainableParams = built.TrainableParams, WallSeconds = clock.Elapsed.TotalSeconds,
                ImagesPerSecond = history.ImagesPerSecond, Predictions = predictions,
            };
        }
        catch (Exception e) when (e is not OperationCanceledException && e is not OutOfMemoryException)
        {
            return new TrialRecord
            {
                Key = config.Key, Config = config, Status = "error", Error = $"{e.GetType().Name}: {e.Message}",
                WallSeconds = clock.Elapsed.TotalSeconds,
            };
        }
    }

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
