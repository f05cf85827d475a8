using System.Text;
using System.Text.Json;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tuning;

/// <summary>
/// A whole sweep written down: the store, the suite and backbone, the profile, and every trial in a fixed order
/// (all tune trials, then per task and method the trials whose hyperparameters the tune results choose: the val
/// refit where the profile has one, and the final).
/// Workers on one machine (`peft sweep --workers N`) or slurm array tasks (`peft trial --index i`) read it.
/// </summary>
public sealed record SweepManifest
{
    public int Version { get; init; } = 1;
    /// <summary>The results store directory (absolute). A manifest lives in its store: <see cref="Load"/> sets this
    /// to the folder the file lies in, so a copied or moved store resumes where it is, not into the original.</summary>
    public required string Store { get; init; }
    public required string Suite { get; init; }
    public required string Profile { get; init; }
    public string Protocol { get; init; } = "vtab1k";
    public required VitConfig Backbone { get; init; }
    /// <summary>null: random init; "shipped:NAME": a checkpoint embedded in the library; else a safetensors path.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>Train in bf16 with float32 masters (see TrainOptions.Bf16).</summary>
    public bool Bf16 { get; init; }
    /// <summary>VTAB-1K on a seeded subset of this many train800 images (null: all; absent from manifests written before).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public int? TrainImages { get; init; }
    public required List<TrialConfig> Trials { get; init; }

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>What every trial of this manifest shares (suite, profile, protocol, backbone, checkpoint, precision).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public RunSetup Setup => new(Suite, Profile, Protocol, Backbone, Checkpoint, Bf16, TrainImages);

    /// <summary>The options of this manifest's VTAB-1K trials (many-shot: natural tasks'; see RunSetup.Options per task group).
    /// Written into manifest.json for a reader's benefit (as before RunSetup); never read back.</summary>
    public ProtocolOptions Options => Setup.Options();

    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) != Path.GetFullPath(Store).TrimEnd(Path.DirectorySeparatorChar))
            throw new ArgumentException($"A sweep manifest lives in its store: save it in {Store}, not {full}.");
        Checkpoints.AtomicFile.WriteText(full, JsonSerializer.Serialize(this, Json));
    }

    public static SweepManifest Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Sweep manifest not found: {path}", path);
        SweepManifest m;
        try
        {
            m = JsonSerializer.Deserialize<SweepManifest>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty sweep manifest.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a sweep manifest ({e.Message}).", e); }
        if (m.Trials is null || m.Backbone is null || string.IsNullOrEmpty(m.Suite) || string.IsNullOrEmpty(m.Profile) || m.Trials.Any(t => t is null))
            throw new InvalidDataException($"{path}: not a sweep manifest (Suite, Profile, Backbone and Trials are required).");
        return m with { Store = Path.GetDirectoryName(Path.GetFullPath(path))! };
    }
}

/// <summary>Where a sweep gets its tasks, models and method grids: the one seam between the protocol and the
/// data suite / PEFT methods.</summary>
public interface ITrialEnvironment
{
    Vtab1kTask LoadTask(RunSetup setup, string task);
    ModelFactory Factory(RunSetup setup, string method);
    IReadOnlyList<SortedDictionary<string, string>> Grid(string method, string profile);
    /// <summary>A task's group (natural, specialized, structured) without loading it: the many-shot recipe depends on it.</summary>
    string GroupOf(string suite, string task) => "natural";
}

/// <summary>
/// Suites: "mini" (the embedded default), "toy" (tiny procedural tasks for tests); "vtab:ROOT" reads processed
/// VTAB-1K folders at the backbone's image size. Methods: the study's 16 (Peft/ registry; aliases accepted) with
/// the study's grids under the paper profile. More suites or methods plug in through <see cref="Tasks"/>.
/// </summary>
public sealed class DefaultTrialEnvironment : ITrialEnvironment
{
    public Dictionary<string, Func<RunSetup, string, Vtab1kTask>> Tasks { get; } = new()
    {
        ["toy"] = (m, task) => ToySuite.Load(task, m.Backbone.ImageSize, m.Backbone.InChans),
        ["mini"] = (m, task) => Suite.Mini.Load(task),
    };
    readonly Dictionary<string, PeftFactory> factories = new();

    /// <summary>A task's VTAB-1K splits, or under the many-shot protocol its full training set (Study.LoadManyShot).
    /// VTAB-1K folders are read with the profile's pixel normalisation.</summary>
    public Vtab1kTask LoadTask(RunSetup setup, string task)
    {
        if (setup.Protocol == "manyshot")
        {
            var suite = SuiteOf(setup.Suite, setup) ?? throw new ArgumentException($"Suite '{setup.Suite}' has no many-shot training sets (mini and vtab:ROOT folders with train-many.txt do).");
            return Study.LoadManyShot(suite, task, setup.Options(suite.Info(task).Group));
        }
        var whole = SuiteOf(setup.Suite, setup) is VtabFolderSuite folder ? folder.Load(task)
            : Tasks.TryGetValue(setup.Suite, out var load) ? load(setup, task)
            : throw new ArgumentException($"Suite '{setup.Suite}' is not available. Known suites: {string.Join(", ", Tasks.Keys)}, vtab:ROOT.");
        return TrainSubset.Normalize(setup.TrainImages) is int n ? TrainSubset.Apply(whole, n) : whole;
    }

    static Suite? SuiteOf(string suite, RunSetup? setup) =>
        suite == "mini" ? Suite.Mini
        : suite.StartsWith("vtab:") ? Suite.FromVtabFolder(suite[5..], setup?.Backbone.ImageSize ?? 224,
            setup is null ? null : Profiles.Get(setup.Profile).FolderNormalization)
        : null;

    public string GroupOf(string suite, string task) => SuiteOf(suite, null)?.Info(task).Group ?? "natural";

    /// <summary>One <see cref="PeftFactory"/> per backbone + checkpoint, so weights load once per worker.</summary>
    public ModelFactory Factory(RunSetup setup, string method)
    {
        Peft.MethodRegistry.Get(method); // unknown methods fail here, naming the known ones
        var key = System.Text.Json.JsonSerializer.Serialize(setup.Backbone) + "|" + setup.Checkpoint;
        if (!factories.TryGetValue(key, out var f)) factories[key] = f = new PeftFactory(setup.Backbone, setup.Checkpoint);
        return f.Build;
    }

    public IReadOnlyList<SortedDictionary<string, string>> Grid(string method, string profile) => PeftFactory.Grid(method, profile);
}

/// <summary>Plans sweeps, runs workers over a shared store, runs single manifest entries, exports slurm job arrays.</summary>
public static class Sweep
{
    public static SweepManifest Plan(string store, string suite, IEnumerable<string> tasks, IEnumerable<string> methods,
        ProtocolOptions options, VitConfig backbone, ITrialEnvironment env, string? checkpoint = null)
    {
        var taskList = tasks.ToList();
        var methodList = methods.ToList();
        if (taskList.Count == 0 || methodList.Count == 0) throw new ArgumentException("A sweep needs at least one task and one method.");
        var trials = new List<TrialConfig>();
        var finals = new List<TrialConfig>();
        foreach (var task in taskList)
        {
            // Many-shot grids follow the study's recipe for the task's kind (e.g. Clevr: wd 1e-4, drop path 0); VTAB-1K
            // budgets the profile's epochs for the task's group (default: structured x3).
            var o = options.Protocol == "manyshot" ? ProtocolOptions.For(options.Profile, "manyshot", env.GroupOf(suite, task), seed: options.Train.Seed)
                : options.ForGroup(env.GroupOf(suite, task));
            foreach (var method in methodList)
            {
                var grid = env.Grid(method, options.Profile);
                Protocol.ValidateGrid(method, grid, backbone);
                var tune = Protocol.TuneConfigs(task, method, grid, o);
                trials.AddRange(tune);
                finals.AddRange(Protocol.PendingAfterTune(task, method, o, tune));
            }
        }
        trials.AddRange(finals);
        var manifest = new SweepManifest
        {
            Store = Path.GetFullPath(store), Suite = suite, Profile = options.Profile, Protocol = options.Protocol,
            Backbone = backbone, Bf16 = options.Train.Bf16, TrainImages = options.TrainImages, Trials = trials,
            Checkpoint = checkpoint is null || checkpoint.StartsWith("shipped:") ? checkpoint : Path.GetFullPath(checkpoint),
        };
        // Before any worker starts: the store must not hold these tasks' trials under another backbone, data or budget.
        var identities = taskList.Distinct().Select(task => (task, TrialIdentity.Of(manifest.Setup, task))).ToList(); // inputs checked before the store is touched
        var results = new ResultsStore(store);
        foreach (var (task, identity) in identities) results.CheckIdentity(TrialIdentity.Scope(manifest.Setup.Options(env.GroupOf(suite, task)), task), identity);
        foreach (var task in taskList) results.CheckBudget(manifest.Setup.Options(env.GroupOf(suite, task)), task);
        return manifest;
    }

    /// <summary>
    /// Runs trials of the manifest until every one is finished in the store (by this or other workers): skips
    /// finished ones, claims free ones, runs a val refit or final only when its tune trials are all finished, and waits while
    /// the rest run elsewhere. Returns how many trials this worker ran. Cancellation throws (the running trial
    /// is not recorded and its claim is released).
    /// </summary>
    public static int RunWorker(SweepManifest manifest, ITrialEnvironment env, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null,
        TextWriter? log = null, CancellationToken cancel = default)
    {
        var store = new ResultsStore(manifest.Store);
        CheckIdentities(manifest, store, env, manifest.Trials.Select(t => t.Task));
        // Failed trials recorded before this worker started are run again (once: what this run records then stands).
        var failed = Failures(manifest, store);
        var tasks = new Dictionary<string, Vtab1kTask>();
        int ran = 0;
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var finished = store.Records().Where(r => !ResultsStore.IsSameFailure(r, failed.GetValueOrDefault(r.Key))).Select(r => r.Key).ToHashSet();
                var open = manifest.Trials.Where(t => !finished.Contains(t.Key)).ToList();
                if (open.Count == 0) { store.PruneClaims(); return ran; }
                bool progressed = false;
                foreach (var trial in open)
                {
                    if (trial.Phase != "tune" && !TuneFinished(manifest, trial, finished)) continue;
                    var retrying = failed.GetValueOrDefault(trial.Key);
                    using var claim = store.TryClaim(trial.Key, retrying);
                    if (claim is null) continue;
                    if (retrying is not null) log?.WriteLine($"retrying {trial.Key}: {ResultsStore.WhyRetried(retrying)}");
                    var record = Run(manifest, trial, store, env, tasks, progressFor, cancel);
                    store.Append(record, retrying);
                    ran++; progressed = true;
                    log?.WriteLine(Describe(record));
                    break; // re-read the store: other workers may have finished trials meanwhile
                }
                if (!progressed) cancel.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(300));
            }
        }
        finally { foreach (var t in tasks.Values) t.Dispose(); }
    }

    /// <summary>
    /// A sweep on this machine with <paramref name="workers"/> workers: this process and workers - 1 child processes
    /// from <paramref name="startWorker"/> (each running <see cref="RunWorker"/> on the same manifest); with
    /// <paramref name="trainHere"/> false, <paramref name="workers"/> children and this process only watches (a notebook
    /// kernel keeps its own threads). <paramref name="progress"/> gets one line about once a second: trials done / total
    /// and the ones running. Waits for every child and returns each one's exit status, read before the process handle
    /// is released; a child still running when this ends (an exception, cancellation) is killed first.
    /// </summary>
    public static LocalSweep RunLocal(SweepManifest manifest, int workers, ITrialEnvironment env, Func<System.Diagnostics.Process> startWorker,
        TextWriter? log = null, CancellationToken cancel = default, bool trainHere = true, Action<string>? progress = null)
    {
        if (workers < 1) throw new ArgumentException($"--workers must be at least 1, got {workers}.");
        var children = new List<System.Diagnostics.Process>();
        var statuses = new List<WorkerStatus>();
        int first = trainHere ? 2 : 1;
        try
        {
            for (int i = trainHere ? 1 : 0; i < workers; i++) children.Add(startWorker());
            int ran = 0;
            if (trainHere) ran = RunWorker(manifest, env, null, log, cancel);
            var store = new ResultsStore(manifest.Store);
            while (!children.All(c => c.WaitForExit(0)))
            {
                if (progress is not null) progress(Progress(manifest, store, children.Count(c => !c.HasExited)));
                cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
                cancel.ThrowIfCancellationRequested();
            }
            foreach (var c in children) c.WaitForExit();
            progress?.Invoke(Progress(manifest, store, 0));
            return new LocalSweep(ran, statuses);
        }
        finally
        {
            for (int i = 0; i < children.Count; i++)
            {
                var c = children[i];
                if (!c.HasExited) { try { c.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } c.WaitForExit(); }
                statuses.Add(new WorkerStatus(i + first, c.Id, c.ExitCode));
                c.Dispose();
            }
        }
    }

    /// <summary>What a running trial is, for a progress line: a tune trial names its grid point (two workers on one
    /// method and task would otherwise read the same), a final says final.</summary>
    public static string RunningLabel(TrialConfig t) => t.Phase == "final" ? $"{t.Task} {t.Method} final"
        : FormattableString.Invariant($"{t.Task} {t.Method} tune lr={t.Lr:G3} wd={t.WeightDecay:G3}") +
          (t.DropPath != 0 ? FormattableString.Invariant($" dp={t.DropPath:G3}") : "") + (t.Hp.Count > 0 ? " " + t.HpText : "");

    /// <summary>"[done/total trials] N worker(s): task method phase and grid point, ..." for a manifest's store.</summary>
    public static string Progress(SweepManifest manifest, ResultsStore store, int running)
    {
        var keys = manifest.Trials.Select(t => t.Key).ToHashSet();
        int done = store.Records().Count(r => keys.Contains(r.Key));
        var byKey = manifest.Trials.GroupBy(t => t.Key).ToDictionary(g => g.Key, g => g.First());
        var now = store.Claimed().Where(byKey.ContainsKey).Select(k => RunningLabel(byKey[k])).ToList();
        return $"[{done}/{manifest.Trials.Count} trials] {running} worker(s)" + (now.Count > 0 ? ": " + string.Join(", ", now) : "");
    }

    /// <summary>Runs manifest entry <paramref name="index"/> (a slurm array task). Finished: returns the stored
    /// record, marked already finished. Claimed by a live worker (a duplicate submission, or a task on another host
    /// that may have died): waits, saying so, until that worker records it (already finished) or its claim goes
    /// stale (then runs it). A final entry whose tune trials are unfinished and unclaimed is an error naming the
    /// missing indices; claimed ones are waited for. Cancellation throws: nothing recorded, the claim released.</summary>
    public static TrialRun RunIndex(SweepManifest manifest, int index, ITrialEnvironment env,
        IProgress<TrainProgress>? progress = null, TextWriter? log = null, CancellationToken cancel = default, ResultsStore? store = null)
    {
        if (index < 0 || index >= manifest.Trials.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the manifest has {manifest.Trials.Count} trials (indices 0..{manifest.Trials.Count - 1}).");
        var trial = manifest.Trials[index];
        store ??= new ResultsStore(manifest.Store);
        CheckIdentities(manifest, store, env, new[] { trial.Task });
        // This index's failed record (from an earlier run) is run again; tune trials a final needs count as done
        // once recorded, failed or not (the final selects among the successful ones).
        var retrying = store.Find(trial.Key) is { } f && ResultsStore.Retryable(f) ? f : null;
        if (retrying is not null) log?.WriteLine($"retrying {trial.Key}: {ResultsStore.WhyRetried(retrying)}");
        var tasks = new Dictionary<string, Vtab1kTask>();
        var waitingOn = new HashSet<string>();
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var finished = store.Records().Select(r => r.Key).ToHashSet();
                if (store.Find(trial.Key) is { } done && !ResultsStore.IsSameFailure(done, retrying)) return new TrialRun(done, AlreadyFinished: true);
                var blockers = trial.Phase == "tune" ? new List<int>()
                    : manifest.Trials.Select((t, i) => (t, i)).Where(x => IsTuneOf(x.t, trial) && !finished.Contains(x.t.Key)).Select(x => x.i).ToList();
                var unclaimed = blockers.Where(i => store.Holder(manifest.Trials[i].Key) is not { Stale: false }).ToList();
                if (unclaimed.Count > 0)
                    throw new InvalidOperationException($"{(trial.Phase == "final" ? "Final" : "Val refit")} trial {index} ({trial.Task}/{trial.Method}) needs tune trials {string.Join(",", unclaimed)} to finish first " +
                        "(they are neither recorded nor running: rerun those indices, or resubmit).");
                if (blockers.Count == 0)
                {
                    using var claim = store.TryClaim(trial.Key, retrying);
                    if (claim is not null)
                    {
                        var record = Run(manifest, trial, store, env, tasks, _ => progress, cancel);
                        return store.Append(record, retrying) ? new TrialRun(record, false) : new TrialRun(store.Find(trial.Key)!, AlreadyFinished: true);
                    }
                }
                // Same-host holders are named here once (the store reports other hosts' claims itself, every minute).
                foreach (var key in blockers.Select(i => manifest.Trials[i].Key).DefaultIfEmpty(trial.Key))
                    if (store.Holder(key) is { Reportable: false, Stale: false } h && waitingOn.Add(key))
                        log?.WriteLine($"waiting: {h.Key}, run by pid {h.Pid} on this host since {h.ClaimedUtc:yyyy-MM-dd HH:mm:ss}Z");
                cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            }
        }
        finally { foreach (var t in tasks.Values) t.Dispose(); }
    }

    static TrialRecord Run(SweepManifest manifest, TrialConfig trial, ResultsStore store, ITrialEnvironment env,
        Dictionary<string, Vtab1kTask> tasks, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor, CancellationToken cancel)
    {
        bool firstOfTask = !tasks.TryGetValue(trial.Task, out var task);
        if (firstOfTask) tasks[trial.Task] = task = env.LoadTask(manifest.Setup, trial.Task);
        var factory = env.Factory(manifest.Setup, trial.Method);
        var options = manifest.Setup.Options(task!.Group);
        // A manifest may be older than the profile table it now runs under (a worker started later, a slurm array).
        if (firstOfTask) store.CheckBudget(options, trial.Task);
        if (trial.Phase == "tune") return Protocol.RunTrial(trial, task, factory, options, store, progressFor, cancel);
        // In the manifest's (grid) order: the study's tie-break takes the last tied trial.
        var byKey = store.Records().GroupBy(r => r.Key).ToDictionary(g => g.Key, g => g.First());
        var tuning = manifest.Trials.Where(t => IsTuneOf(t, trial) && byKey.ContainsKey(t.Key)).Select(t => byKey[t.Key]).ToList();
        var final = Protocol.RunTrial(trial, task, factory, options, store, progressFor, cancel, tuning);
        // A manifest planned before finals carried their grid digest names the final by its old key: record it so.
        return final.Key == trial.Key ? final : final with { Key = trial.Key };
    }

    /// <summary>Checks (and, the first time, records) the identity of the manifest's trials on each task in the store,
    /// before any of them is read back: a worker or array task may run a manifest planned for another backbone.</summary>
    static void CheckIdentities(SweepManifest manifest, ResultsStore store, ITrialEnvironment env, IEnumerable<string> tasks)
    {
        foreach (var task in tasks.Distinct())
            store.CheckIdentity(TrialIdentity.Scope(manifest.Setup.Options(env.GroupOf(manifest.Suite, task)), task), TrialIdentity.Of(manifest.Setup, task));
    }

    /// <summary>The manifest's failed records (<see cref="ResultsStore.Retryable"/>) by key.</summary>
    static Dictionary<string, TrialRecord> Failures(SweepManifest manifest, ResultsStore store)
    {
        var keys = manifest.Trials.Select(t => t.Key).ToHashSet();
        return store.Records().Where(r => keys.Contains(r.Key) && ResultsStore.Retryable(r)).ToDictionary(r => r.Key);
    }

    static bool IsTuneOf(TrialConfig t, TrialConfig after) => t.Phase == "tune" && t.Task == after.Task && t.Method == after.Method;

    static bool TuneFinished(SweepManifest m, TrialConfig final, HashSet<string> finished) =>
        m.Trials.Where(t => IsTuneOf(t, final)).All(t => finished.Contains(t.Key));

    public static string Describe(TrialRecord r) =>
        $"{r.Config.Task,-16} {r.Config.Method,-14} {r.Config.Phase,-5} lr={r.Config.Lr:0.#####} wd={r.Config.WeightDecay:0.#####} dp={r.Config.DropPath:0.##} {r.Config.HpText,-12} " +
        $"{r.Status,-8} top1 {(r.Top1Last is double t ? t.ToString("F1") : "-"),5} best {(r.Top1Best is double b ? b.ToString("F1") : "-"),5}  {r.WallSeconds,6:F1}s" +
        (r.Config.Phase == "tune" && r.Config.Rung is int k ? $"  (rung: epoch {k})" : "");

    /// <summary>
    /// Writes slurm job arrays for <paramref name="manifest"/>, saved at <paramref name="manifestPath"/>: tune.sbatch
    /// (the tune entries), final.sbatch (the val refits and finals) and submit.sh, which checks both with `sbatch --test-only` (a
    /// request no node can fit is otherwise accepted and pends forever), creates logs/, and submits the finals with
    /// afterany on the tune array. Each array task runs `PEFT trial --manifest FILE --index $SLURM_ARRAY_TASK_ID`
    /// into the shared store. Every path is made absolute here (the command, the manifest, the logs, the data cache),
    /// and a comment block says what every node must see. Array indices are manifest indices, so the max index must
    /// stay below the cluster's MaxArraySize.
    /// </summary>
    public static SlurmExport ExportSlurm(SweepManifest manifest, string manifestPath, string outDir, SlurmOptions? slurm = null)
    {
        slurm ??= new SlurmOptions();
        int tune = manifest.Trials.Count(t => t.Phase == "tune"); // the second array: val refits and finals, which need the tune results
        int total = manifest.Trials.Count;
        if (manifest.Trials.Take(tune).Any(t => t.Phase != "tune"))
            throw new InvalidDataException("Manifest order: every tune trial must come before the final trials.");
        if (total - 1 >= slurm.MaxArraySize)
            throw new ArgumentException($"The sweep has {total} trials; slurm array indices must stay below MaxArraySize {slurm.MaxArraySize}. " +
                "Raise --max-array-size to your cluster's value or split the sweep.");
        if (slurm.CpusPerTask < 1) throw new ArgumentException($"--cpus-per-task must be at least 1, got {slurm.CpusPerTask}.");
        if (slurm.MaxParallel < 0) throw new ArgumentException($"--max-parallel must be 0 (no limit) or more, got {slurm.MaxParallel}.");
        foreach (var (name, value) in new[] { ("--time", slurm.Time), ("--partition", slurm.Partition), ("--mem", slurm.Mem), ("--account", slurm.Account), ("--qos", slurm.Qos) })
            if (value is not null && (value.Length == 0 || value.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '#' or '$' or '`')))
                throw new ArgumentException($"{name} '{value}' is not a plain slurm value.");
        foreach (var d in slurm.ExtraDirectives)
            if (!d.StartsWith("--") || d.Any(char.IsControl))
                throw new ArgumentException($"--sbatch '{d}': give one sbatch option per value, e.g. --sbatch=--exclusive or --sbatch=--constraint=avx512.");
        var command = ResolveCommand(slurm.PeftCommand);
        var dataDir = Path.GetFullPath(slurm.DataDir ?? Workbench.DataDir);
        var dir = Path.GetFullPath(outDir);
        string LogPattern(string name) => SbatchQuote(Path.Combine(dir, "logs", $"{name}-") + "%A_%a.out", dir);
        LogPattern("tune"); // refuses a folder sbatch cannot be told about, before anything is written
        Directory.CreateDirectory(Path.Combine(dir, "logs"));
        var manifestFull = Path.GetFullPath(manifestPath);
        var visible = new List<string>
        {
            "# Every node that runs these tasks must see, at the same paths (a shared filesystem):",
            // Paths in comments are quoted too: Quote never yields a line break, so a path cannot end the comment.
            $"#   the sweep's results store (read and written)   {Quote(manifest.Store)}",
            $"#   this folder and logs/ (sbatch --output)        {Quote(dir)}",
            $"#   the peft command (and the .NET runtime)        {string.Join(" ", command.Select(Quote))}",
            $"#   the data cache, pinned as PEFT_DATA            {Quote(dataDir)}" + (Directory.Exists(dataDir) ? "" : "  (missing here: run environment/setup.sh)"),
        };
        if (manifest.Checkpoint is string ck && !ck.StartsWith("shipped:")) visible.Add($"#   the backbone checkpoint                        {Quote(ck)}");
        if (manifest.Suite.StartsWith("vtab:")) visible.Add($"#   the VTAB-1K folders                            {Quote(manifest.Suite[5..])}");
        visible.AddRange(new[]
        {
            "# Two tasks never run one trial twice: they claim it in the store's claims/ under the store's lock (flock),",
            "# which needs a filesystem with working locks (NFS with lockd, Lustre, GPFS, BeeGFS). A task ended by scancel",
            "# or --time (SIGTERM) records nothing and releases its trial; run submit.sh again to finish what is left.",
        });
        string Script(string name, int first, int last) => string.Join("\n", new[]
        {
            "#!/bin/bash",
            $"#SBATCH --job-name=peft-{name}",
            $"#SBATCH --array={first}-{last}" + (slurm.MaxParallel > 0 ? $"%{slurm.MaxParallel}" : ""),
            $"#SBATCH --cpus-per-task={slurm.CpusPerTask}",
            $"#SBATCH --time={slurm.Time}",
            $"#SBATCH --output={LogPattern(name)}",
        }.Concat(new[] { ("partition", slurm.Partition), ("mem", slurm.Mem), ("account", slurm.Account), ("qos", slurm.Qos) }
            .Where(o => o.Item2 is not null).Select(o => $"#SBATCH --{o.Item1}={o.Item2}"))
         .Concat(slurm.ExtraDirectives.Select(d => "#SBATCH " + d))
         .Append("#").Concat(visible)
         .Concat(new[]
        {
            "set -euo pipefail",
            $"export PEFT_DATA={Quote(dataDir)}",
            $"export OMP_NUM_THREADS={slurm.CpusPerTask}",
            // exec: scancel's and --time's SIGTERM reach the trial itself, which then ends cleanly.
            $"exec {string.Join(" ", command.Select(Quote))} trial --manifest {Quote(manifestFull)} --index \"$SLURM_ARRAY_TASK_ID\"",
            "",
        }));
        var tunePath = Path.Combine(dir, "tune.sbatch");
        var finalPath = Path.Combine(dir, "final.sbatch");
        var submitPath = Path.Combine(dir, "submit.sh");
        WriteScript(tunePath, Script("tune", 0, tune - 1));
        WriteScript(finalPath, Script("final", tune, total - 1));
        WriteScript(submitPath, string.Join("\n", new[]
        {
            "#!/bin/bash",
            "# Submits the tune array, then the final array once every tune task has ended (afterany: a failed or",
            "# cancelled tune task leaves its trial unfinished; its final then names it and fails: run this again).",
            "# Safe to run again at any time: finished trials are skipped (\"already finished\"), running ones waited for.",
            "set -euo pipefail",
            $"cd {Quote(dir)}",
            "mkdir -p logs",
            "# sbatch accepts a request that no node can fit and leaves it pending forever; --test-only says so.",
            "for script in tune.sbatch final.sbatch; do",
            "    if ! check=$(sbatch --test-only \"$script\" 2>&1); then",
            "        echo \"submit.sh: the cluster cannot run $script as exported:\" >&2",
            "        echo \"  $check\" >&2",
            "        echo \"  it asks for: $(grep -E '^#SBATCH --(cpus-per-task|time|mem|partition|account|qos)=' \"$script\" | cut -c9- | tr '\\n' ' ')\" >&2",
            "        echo \"  the nodes offer (partition cpus memory timelimit): $(sinfo -h -o '%P %c %m %l' 2>/dev/null | sort -u | tr '\\n' ';')\" >&2",
            // One quoted word: the store path is data here, never expanded ($(...) or backticks in it stay text).
            $"        echo {Quote($"  export again with values that fit, e.g.: peft sweep --out {Quote(manifest.Store)} --export slurm --cpus-per-task N")} >&2",
            "        exit 1",
            "    fi",
            "done",
            "tune=$(sbatch --parsable tune.sbatch)",
            "tune=${tune%%;*}",
            "final=$(sbatch --parsable --dependency=afterany:$tune final.sbatch)",
            "echo \"submitted: tune array $tune, final array ${final%%;*} (after tune); logs in $PWD/logs\"",
            "",
        }));
        return new SlurmExport(manifestFull, tunePath, finalPath, submitPath, tune, total - tune, command);
    }

    /// <summary>The command array tasks run, made absolute now (submit.sh and the tasks run elsewhere): a path
    /// (with '/') against the current folder, a bare name through PATH. It must exist here.</summary>
    static IReadOnlyList<string> ResolveCommand(IReadOnlyList<string> command)
    {
        if (command.Count == 0 || string.IsNullOrWhiteSpace(command[0])) throw new ArgumentException("--peft-command is empty.");
        var exe = command[0];
        string? full = exe.Contains('/') ? Path.GetFullPath(exe)
            : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);
        if (full is null || !File.Exists(full))
            throw new ArgumentException($"--peft-command: '{exe}' " + (exe.Contains('/') ? $"does not exist ({full})." : "is not on PATH here.") +
                " Give the command by an absolute path that every node sees (environment/setup.sh installs the `peft` launcher).");
        return command.Skip(1).Select(a => a.Contains('/') && !a.StartsWith('-') ? Path.GetFullPath(a) : a).Prepend(full).ToList();
    }

    static string Quote(string s) => Shell.Quote(s);

    /// <summary>
    /// A path as one argument of an #SBATCH line, which sbatch parses itself (not bash): it splits at blanks, groups
    /// with quotes, takes \\ as an escape and '#' as the start of a comment, and reads up to the line's end. So the
    /// value goes in double quotes with " and \\ escaped when it is not plain; '%' is doubled (sbatch's output
    /// patterns read %A, %a, ...; "%%" is a '%'), the pattern's own %A_%a excepted. What cannot be written there is
    /// refused: a control character (a line break would end the directive and start a script line) and a
    /// backslash (it turns every output pattern off).
    /// </summary>
    static string SbatchQuote(string pathPattern, string folder)
    {
        if (folder.Any(char.IsControl) || folder.Contains('\\'))
            throw new ArgumentException($"The slurm folder {Quote(folder)} holds a line break, another control character or a backslash, " +
                "which an #SBATCH --output line cannot carry; export the sweep into a store whose path has none (--out).");
        const string Pattern = "%A_%a.out";
        var literal = pathPattern[..^Pattern.Length].Replace("%", "%%") + Pattern;
        if (literal.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+=:,@%".Contains(c))) return literal;
        return "\"" + literal.Replace("\"", "\\\"") + "\"";
    }

    /// <summary>Refuses a store whose slurm folder an export could not write (see <see cref="SbatchQuote"/>); for a caller
    /// that would otherwise write the manifest first.</summary>
    public static void CheckSlurmFolder(string outDir) => SbatchQuote(Path.Combine(Path.GetFullPath(outDir), "logs", "x-%A_%a.out"), Path.GetFullPath(outDir));

    static void WriteScript(string path, string text) => Checkpoints.AtomicFile.WriteText(path, text,
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
}

/// <summary>sbatch settings for <see cref="Sweep.ExportSlurm"/>.</summary>
public sealed record SlurmOptions
{
    /// <summary>The command and its leading arguments (e.g. ["peft"], or ["/usr/bin/dotnet", "/opt/peft/peft.dll"]);
    /// resolved to absolute paths at export.</summary>
    public IReadOnlyList<string> PeftCommand { get; init; } = new[] { "peft" };
    /// <summary>CPUs per array task, also the trial's thread count (OMP_NUM_THREADS). Default: the threads one
    /// trial uses on this machine (libtorch's default, one per core).</summary>
    public int CpusPerTask { get; init; } = TrialThreads;
    public string Time { get; init; } = "04:00:00";
    public string? Partition { get; init; }
    public string? Mem { get; init; }
    public string? Account { get; init; }
    public string? Qos { get; init; }
    /// <summary>At most this many array tasks at once (the array's %N throttle; 0 = no limit).</summary>
    public int MaxParallel { get; init; }
    public int MaxArraySize { get; init; } = 1001;
    /// <summary>More sbatch options, one per entry ("--exclusive", "--constraint=avx512").</summary>
    public IReadOnlyList<string> ExtraDirectives { get; init; } = Array.Empty<string>();
    /// <summary>The data cache the tasks use (PEFT_DATA); default: this machine's (<see cref="Workbench.DataDir"/>).</summary>
    public string? DataDir { get; init; }

    /// <summary>The threads one trial uses here: libtorch's intra-op default.</summary>
    public static int TrialThreads => TorchSharp.torch.get_num_threads();
}

/// <summary>Worker <see cref="Number"/> (1 = the sweeping process itself, not listed) and how its process ended
/// (.NET reports death by signal N as 128 + N).</summary>
public sealed record WorkerStatus(int Number, int Pid, int ExitCode)
{
    public bool Ok => ExitCode == 0;
    public string Describe() => $"worker {Number} (pid {Pid}): " + (ExitCode == 0 ? "exit 0" : ExitCode > 128 && ExitCode < 160 ? $"killed by signal {ExitCode - 128} (exit {ExitCode})" : $"failed, exit {ExitCode}");
}

/// <summary>What <see cref="Sweep.RunLocal"/> did: trials this process ran, and the other workers' statuses.</summary>
public sealed record LocalSweep(int RanHere, IReadOnlyList<WorkerStatus> Others)
{
    public bool Ok => Others.All(w => w.Ok);
}

/// <summary>A trial that <see cref="Sweep.RunIndex"/> ran now, or found already finished (then nothing ran).</summary>
public sealed record TrialRun(TrialRecord Record, bool AlreadyFinished);

public sealed record SlurmExport(string Manifest, string TuneScript, string FinalScript, string SubmitScript, int TuneTrials, int FinalTrials,
    IReadOnlyList<string> Command)
{
    /// <summary>What `peft sweep --export slurm` prints: the manifest, the scripts, the command and how to submit.</summary>
    public IEnumerable<string> Describe() => new[]
    {
        $"manifest  {Manifest} ({TuneTrials} tune + {FinalTrials} final trials)", $"scripts   {TuneScript}, {FinalScript}",
        $"command   {string.Join(" ", Command)}", $"submit    bash {SubmitScript}",
    };
}
