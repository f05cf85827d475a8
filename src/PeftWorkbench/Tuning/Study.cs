using PeftWorkbench.Checkpoints;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;
using static TorchSharp.torch;

namespace PeftWorkbench.Tuning;

/// <summary>
/// What <see cref="Study.Run"/> found: the tune trials in grid order, the selected one, the final trial, and the
/// final trial's test logits and labels (owned: dispose the run, or leave it to the GC in a notebook).
/// </summary>
public sealed record StudyRun(string Task, string Method, Profile Profile, ProtocolOptions Options, string Store,
    IReadOnlyList<TrialRecord> Tuning, TrialRecord? Selected, TrialRecord Final, EvalResult? Test) : IDisposable
{
    /// <summary>The trial whose val200 logits stand for the final model (what ensembles choose members by): after a rung
    /// (<see cref="ProtocolOptions.Rung"/>), the selected configuration trained for the whole schedule on train800, else the
    /// selected tune trial; null without a selection.</summary>
    public TrialRecord? Val { get => valSet ? val : Selected?.Config.Rung is not null ? null : Selected; init { val = value; valSet = true; } }
    readonly TrialRecord? val;
    readonly bool valSet;

    public void Dispose() => Test?.Dispose();
}

/// <summary>
/// The one call that runs the study's protocol for one method on one task, the same from a notebook, the CLI
/// (`peft train` wraps it) and a sweep (whose trials go through the same <see cref="Protocol"/> steps):
/// <c>using var run = Study.Run("mnist", "lora");</c>. It resolves the backbone once, checks the method and every
/// hyperparameter key and value against it before any trial, then tunes, selects, retrains and tests.
/// </summary>
public static class Study
{
    /// <summary>The suites and backbone factories runs share (one factory per backbone + checkpoint: weights load once).</summary>
    public static DefaultTrialEnvironment Environment { get; } = new();

    /// <summary>The checkpoint of a shipped backbone by name ("mini", "mini-hand"; <see cref="VisionTransformer.PretrainedNames"/>):
    /// "shipped:NAME", or null for null (the suite's default). An unknown name is refused, listing the shipped ones.</summary>
    public static string? CheckpointOf(string? backbone) => backbone is null ? null : "shipped:" + VisionTransformer.RequireShipped(backbone);

    /// <summary>The store the notebooks share under the data cache: runs/PROFILE for "mini" (<see cref="Workbench.UnsuffixedBackbone"/>),
    /// and runs/PROFILE-NAME for another shipped one, the default "mini-hand" included (a store holds one backbone per task:
    /// <see cref="TrialIdentity"/>), as notebook 07's regime stores are named (<see cref="Findings.RegimePlan.StoreFor"/>).</summary>
    public static string DefaultStore(string profile, string? backbone = null) =>
        Findings.RegimePlan.StoreFor(Path.Combine(Workbench.DataDir, "runs", profile),
            Findings.RegimeBackbone.Of(CheckpointOf(backbone) ?? CheckpointFor(null, "mini")!), "mini")!;

    /// <summary>The checkpoint whose runs go to a store itself, not to a sibling named after it: "shipped:mini" on the mini suite
    /// (<see cref="Workbench.UnsuffixedBackbone"/>), the suite's default elsewhere.</summary>
    public static string? UnsuffixedCheckpoint(string suite) => suite == "mini" ? "shipped:" + Workbench.UnsuffixedBackbone : CheckpointFor(null, suite);

    /// <summary>--checkpoint values: "none" = random init; default for the mini suite: the shipped <see cref="Workbench.DefaultBackbone"/>.</summary>
    public static string? CheckpointFor(string? given, string suite) =>
        given is "none" ? null : given ?? (suite == "mini" ? "shipped:" + Workbench.DefaultBackbone : null);

    /// <param name="task">A task of <paramref name="suite"/>.</param>
    /// <param name="method">One of the study's 16 methods (or an alias).</param>
    /// <param name="profile">smoke, default, mini-full or paper (Profiles.cs).</param>
    /// <param name="hp">Method hyperparameters (the study's keys); given: this one point instead of the profile's method grid.
    /// lr and wd among them (a study row's selected_hyperparameters) fix the learning rate and weight decay.</param>
    /// <param name="store">A results store directory (resumable, shareable); null: a fresh temporary one (nothing reused).</param>
    /// <param name="suite">"mini" (default), "toy", or "vtab:ROOT" (processed VTAB-1K folders).</param>
    /// <param name="protocol">"vtab1k" or "manyshot" (the task's full training set, the profile's many-shot recipe).</param>
    /// <param name="checkpoint">"shipped:NAME", a checkpoint path, "none" (random init); null: the suite's default.</param>
    /// <param name="preset">Backbone preset when no checkpoint gives the shape.</param>
    /// <param name="seed">The trials' seed (init, data order, augmentation, drop path); null: the profile's (42). It is part of every trial key.</param>
    /// <param name="grid">A grid by the study's keys, each key's values (<see cref="HyperGrid"/>): the method's keys replace the
    /// profile's method grid, "lr" and "wd" its lr and wd grids. Not with <paramref name="hp"/>.</param>
    /// <param name="trainImages">VTAB-1K on a seeded subset of this many train800 images (<see cref="TrainSubset"/>); null or 800: all of them.</param>
    /// <param name="fullGrid">Train every grid point for the whole schedule, not only to the profile's rung
    /// (<see cref="ProtocolOptions.Rung"/>): what a sensitivity curve reads (notebook 06).</param>
    public static StudyRun Run(string task, string method, string profile = "default", IReadOnlyDictionary<string, string>? hp = null,
        string? store = null, string suite = "mini", string protocol = "vtab1k", string? checkpoint = null, string preset = "mini",
        bool bf16 = false, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null, CancellationToken cancel = default, long? seed = null,
        IReadOnlyDictionary<string, string[]>? grid = null, int? trainImages = null, bool fullGrid = false)
    {
        var p = Profiles.Get(profile);
        ProtocolOptions.For(p.Name, protocol, trainImages: trainImages); // an unknown protocol (or a size it cannot take) fails before the method, grid or task is looked at
        if (hp is not null && grid is not null) throw new ArgumentException("Give hp (one point) or grid (many), not both.", nameof(grid));
        var info = Peft.MethodRegistry.Get(method);
        var ckpt = CheckpointFor(checkpoint, suite);
        var backbone = PeftFactory.BackboneFor(ckpt, VitConfig.Preset(preset));
        // hp is a grid of one point: its lr and wd (the study's training keys) fix the learning rate and weight decay.
        var asGrid = grid ?? hp?.ToDictionary(kv => kv.Key, kv => new[] { kv.Value });
        var (methodGrid, lrs, wds) = asGrid is not null ? HyperGrid.Split(info.Id, asGrid) : (p.Grid(info.Id), null, null);
        Protocol.ValidateGrid(info.Id, methodGrid, backbone);

        var setup = new RunSetup(suite, p.Name, protocol, backbone, ckpt, bf16, TrainSubset.Normalize(trainImages));
        var identity = TrialIdentity.Of(setup, task); // checks the task and checkpoint before the store is touched
        var storeDir = store ?? Path.Combine(Path.GetTempPath(), "peft-runs", Guid.NewGuid().ToString("N")[..12]);
        var results = new ResultsStore(storeDir);
        // The group picks the many-shot recipe and the VTAB-1K epochs (Profile.EpochScaleByGroup), known without loading the task.
        var options = setup.Options(Environment.GroupOf(suite, task), seed);
        options = options with { Lrs = lrs ?? options.Lrs, WeightDecays = wds ?? options.WeightDecays, Rung = fullGrid ? null : options.Rung };
        if (store is not null)
        {
            results.CheckIdentity(TrialIdentity.Scope(options, task), identity);
            results.CheckBudget(options, task); // before the finished trials are read back as this budget's
            if (ReadFinished(task, info.Id, p, methodGrid, options, results) is { } finished) return finished;
        }
        using var vtab = Environment.LoadTask(setup, task);
        var result = Protocol.Vtab1k(vtab, info.Id, methodGrid, Environment.Factory(setup, info.Id), options, results, progressFor, cancel);
        return new StudyRun(vtab.Name, info.Id, p, options, results.Dir, result.Tuning, result.Selected, result.Final, LoadPredictions(results, result.Final))
            { Val = result.Val };
    }

    /// <summary>A run whose every trial is already in the store, read back without loading the task's images (a notebook
    /// rereading a filled store spends its time here); null when anything is missing, and the run then goes the long way.</summary>
    static StudyRun? ReadFinished(string task, string method, Profile p, IReadOnlyList<SortedDictionary<string, string>> methodGrid,
        ProtocolOptions options, ResultsStore results)
    {
        var byKey = results.Records().ToDictionary(r => r.Key);
        var tuning = Protocol.TuneConfigs(task, method, methodGrid, options).Select(c => byKey.GetValueOrDefault(c.Key)).ToList();
        if (tuning.Any(r => r is null || ResultsStore.Retryable(r))) return null; // failed trials: the long way retries them
        var tuned = tuning.Select(r => r!).ToList();
        if (!byKey.TryGetValue(Protocol.FinalKey(task, method, options, tuned.Select(t => t.Key)), out var final) || ResultsStore.Retryable(final)) return null;
        var selected = Protocol.Select(tuned, options.TieBreak);
        TrialRecord? val = selected;
        if (Protocol.HasRung(tuned.Select(t => t.Config)))
        {
            if (!byKey.TryGetValue(Protocol.Pending("val", task, method, options, tuned.Select(t => t.Key)).Key, out var refit)) return null;
            val = refit.Ok ? refit : null;
        }
        return new StudyRun(task, method, p, options, results.Dir, tuned, selected, final, LoadPredictions(results, final)) { Val = val };
    }

    /// <summary>
    /// <see cref="Run"/> for every task x method (tasks outer, methods inner, the order results come back in): finished
    /// trials are read from <paramref name="store"/>, only the missing ones train. <paramref name="progress"/> gets one
    /// line to redraw in place (a notebook's <c>bar.Update</c>). <paramref name="workers"/>: processes that train at
    /// once; null: PEFT_WORKERS, else one per core (<see cref="WorkerPlan"/>). With more than one, the missing trials run
    /// in worker processes (<see cref="PeftCommandLine.Worker"/>: the library's own program, not PATH) over a sweep
    /// manifest planned in the store, and the runs are then read back here; otherwise every run goes through this
    /// process in turn.
    /// Both ways give the same numbers (same trial keys, seeds and code path per trial).
    /// </summary>
    public static IReadOnlyList<StudyRun> RunAll(IEnumerable<string> tasks, IEnumerable<string> methods, string profile = "default",
        string? store = null, string suite = "mini", string protocol = "vtab1k", string? checkpoint = null, string preset = "mini",
        long? seed = null, int? workers = null, Action<string>? progress = null, CancellationToken cancel = default, int? trainImages = null)
    {
        var taskList = tasks.ToList();
        var methodIds = methods.Select(m => Peft.MethodRegistry.Get(m).Id).ToList(); // an unknown method fails before any training
        var pairs = taskList.SelectMany(t => methodIds.Select(m => (Task: t, Method: m))).ToList();
        store ??= Path.Combine(Path.GetTempPath(), "peft-runs", Guid.NewGuid().ToString("N")[..12]);
        // An interrupted run says so on its line (it would otherwise stay at its last trial, as if still running): the
        // line's Run (the worker phase) and Each (the runs) say it, once.
        using var line = new Display.StoppableProgress(progress);
        if (pairs.Count > 0 && WorkerPlan.For(workers) is { Workers: > 1 } plan)
            line.Run(() => RunInWorkers(taskList, methodIds, profile, store, suite, protocol, checkpoint, preset, seed, trainImages, plan, line.Line, cancel), cancel);
        // With workers every trial is in the store by now, and each Run reads its pair back.
        return line.Each(pairs, p => $"{p.Task} {p.Method}", (p, step) => Run(p.Task, p.Method, profile, store: store, suite: suite, protocol: protocol,
            checkpoint: checkpoint, preset: preset, seed: seed, trainImages: trainImages,
            progressFor: line.Line is { } show ? cfg => new Display.NotebookProgress(show, $"{step.Text} {cfg.Phase}") : null, cancel: cancel), cancel);
    }

    /// <summary>The missing trials of tasks x methods through <paramref name="plan"/>'s worker processes (this process
    /// only watches). The manifest lies in the store under a name of its own (a store shared by notebooks may hold
    /// several) and goes when the workers are done.</summary>
    static void RunInWorkers(List<string> tasks, List<string> methods, string profile, string store, string suite, string protocol,
        string? checkpoint, string preset, long? seed, int? trainImages, WorkerPlan plan, Action<string>? progress, CancellationToken cancel)
    {
        var p = Profiles.Get(profile);
        var ckpt = CheckpointFor(checkpoint, suite);
        var options = ProtocolOptions.For(p.Name, protocol, seed: seed, trainImages: trainImages); // Sweep.Plan resolves the many-shot recipe and the epochs per task group
        var manifest = Sweep.Plan(store, suite, tasks, methods, options, PeftFactory.BackboneFor(ckpt, VitConfig.Preset(preset)), Environment, ckpt);
        var finished = new ResultsStore(store).Records().Select(r => r.Key).ToHashSet();
        int open = manifest.Trials.Count(t => !finished.Contains(t.Key));
        plan = plan.Capped(open);
        if (plan.Workers < 2) return; // one trial or none left: cheaper here than a process start
        var worker = PeftCommandLine.Worker();
        var digest = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(string.Join("\n", manifest.Trials.Select(t => t.Key)))))[..12].ToLowerInvariant();
        var path = Path.Combine(manifest.Store, $"study-{digest}.manifest.json");
        manifest.Save(path);
        try
        {
            progress?.Invoke($"{open} trial(s) to run: {plan.Describe()}");
            var result = Sweep.RunLocal(manifest, plan.Workers, Environment, () => plan.StartWorker(worker, path), null, cancel,
                trainHere: false, progress: progress);
            if (!result.Ok)
                throw new InvalidOperationException($"Study workers failed ({string.Join("; ", result.Others.Where(w => !w.Ok).Select(w => w.Describe()))}) " +
                    $"running {string.Join(" ", worker)}. Finished trials are kept in {store}: rerun to resume, or set PEFT_WORKERS=1 to train in this process.");
        }
        finally { try { File.Delete(path); } catch (IOException) { } }
    }

    /// <summary>The logits and labels a trial saved in <paramref name="store"/> (null when it saved none).</summary>
    public static EvalResult? LoadPredictions(ResultsStore store, TrialRecord record)
    {
        if (record.Predictions is null) return null;
        var file = SafetensorsFile.Open(Path.Combine(store.Dir, record.Predictions));
        var logits = file.Read("logits");
        var labels = file.Read("labels");
        double top1 = labels.shape[0] == 0 ? 0 : logits.argmax(1).eq(labels).sum().item<long>() * 100.0 / labels.shape[0];
        return new EvalResult(top1, logits, labels);
    }

    /// <summary>
    /// A many-shot task: the suite's full training set, split into tune-train and validation by the suite's fixed
    /// split files where it has them (train-many-train/-val), else by a seeded split of the profile's share (the
    /// study's: 20 % up to 1,000 images, 10 % above); retrain on all of it, test on the test set. When the profile
    /// caps the training images (<see cref="ProtocolOptions.ManyShotTrainImages"/>), a seeded subset of that many stands
    /// for the training set and the validation share comes from it (fixed split files index the whole set: not used then).
    /// </summary>
    public static Vtab1kTask LoadManyShot(Suite suite, string task, ProtocolOptions options)
    {
        var info = suite.Info(task);
        if (info.ManyShotTrain == 0)
            throw new ArgumentException($"Task '{task}' of suite '{suite.Name}' has no many-shot training set. Tasks with one: " +
                $"{string.Join(", ", suite.Tasks.Where(t => t.ManyShotTrain > 0).Select(t => t.Name).DefaultIfEmpty("none"))}.");
        var parts = new List<ImageSet>();
        try
        {
            parts.Add(suite.LoadSplit(task, Suite.ManyShotSplit));
            if (options.ManyShotTrainImages is int cap && cap < parts[0].Count)
            {
                if (cap < 2) throw new ArgumentException($"many-shot training images must be at least 2 (a training and a validation image), got {cap}.", nameof(options));
                using var gen = new TorchSharp.torch.Generator((ulong)options.Train.Seed);
                using var perm = TorchSharp.torch.randperm(parts[0].Count, generator: gen);
                var all = parts[0];
                parts[0] = all.Subset(perm.data<long>().Take(cap).ToArray(), $"{all.Name}-{cap}");
                all.Dispose();
            }
            parts.Add(suite.LoadSplit(task, "test"));
            if (suite is VtabFolderSuite folder && folder.HasFixedManyShotSplit(task) && options.ManyShotTrainImages is null)
            {
                parts.Add(suite.LoadSplit(task, Suite.ManyShotSplit + "-train"));
                parts.Add(suite.LoadSplit(task, Suite.ManyShotSplit + "-val"));
            }
            else
            {
                var (fit, val) = Protocol.ValidationSplit(parts[0], options.ValidationShare(parts[0].Count), options.Train.Seed);
                parts.Add(fit); parts.Add(val);
            }
            return new Vtab1kTask(task, info.Group, parts[2], parts[3], parts[0], parts[1]);
        }
        catch { foreach (var s in parts) s.Dispose(); throw; }
    }
}
