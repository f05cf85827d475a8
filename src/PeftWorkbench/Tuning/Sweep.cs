using System.Text;
using System.Text.Json;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tuning;

/// <summary>
/// A whole sweep written down: the store, the suite and backbone, the profile, and every trial in a fixed order
/// (all tune trials, then one final trial per task and method, whose hyperparameters the tune results choose).
/// Workers on one machine (`peft sweep --workers N`) or slurm array tasks (`peft trial --index i`) read it.
/// </summary>
public sealed record SweepManifest
{
    public int Version { get; init; } = 1;
    /// <summary>The results store directory (absolute).</summary>
    public required string Store { get; init; }
    public required string Suite { get; init; }
    public required string Profile { get; init; }
    public string Protocol { get; init; } = "vtab1k";
    public required VitConfig Backbone { get; init; }
    /// <summary>null: random init; "shipped:NAME": a checkpoint embedded in the library; else a safetensors path.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>Train in bf16 with float32 masters (see TrainOptions.Bf16).</summary>
    public bool Bf16 { get; init; }
    public required List<TrialConfig> Trials { get; init; }

    static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>The options of this manifest's VTAB-1K trials (many-shot: natural tasks'; see Study.OptionsFor per task group).</summary>
    public ProtocolOptions Options => Study.OptionsFor(this, "natural");

    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, full, overwrite: true);
    }

    public static SweepManifest Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Sweep manifest not found: {path}", path);
        try
        {
            return JsonSerializer.Deserialize<SweepManifest>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty sweep manifest.");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a sweep manifest ({e.Message}).", e); }
    }
}

/// <summary>Where a sweep gets its tasks, models and method grids: the one seam between the protocol and the
/// data suite / PEFT methods.</summary>
public interface ITrialEnvironment
{
    Vtab1kTask LoadTask(SweepManifest manifest, string task);
    ModelFactory Factory(SweepManifest manifest, string method);
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
    public Dictionary<string, Func<SweepManifest, string, Vtab1kTask>> Tasks { get; } = new()
    {
        ["toy"] = (m, task) => ToySuite.Load(task, m.Backbone.ImageSize, m.Backbone.InChans),
        ["mini"] = (m, task) => Suite.Mini.Load(task),
    };
    readonly Dictionary<string, PeftFactory> factories = new();

    /// <summary>A task's VTAB-1K splits, or under the many-shot protocol its full training set (Study.LoadManyShot).
    /// VTAB-1K folders are read with the profile's pixel normalisation.</summary>
    public Vtab1kTask LoadTask(SweepManifest manifest, string task)
    {
        if (manifest.Protocol == "manyshot")
        {
            var suite = SuiteOf(manifest.Suite, manifest) ?? throw new ArgumentException($"Suite '{manifest.Suite}' has no many-shot training sets (mini and vtab:ROOT folders with train-many.txt do).");
            return Study.LoadManyShot(suite, task, Study.OptionsFor(manifest, suite.Info(task).Group));
        }
        if (SuiteOf(manifest.Suite, manifest) is VtabFolderSuite folder) return folder.Load(task);
        return Tasks.TryGetValue(manifest.Suite, out var load) ? load(manifest, task)
            : throw new ArgumentException($"Suite '{manifest.Suite}' is not available. Known suites: {string.Join(", ", Tasks.Keys)}, vtab:ROOT.");
    }

    static Suite? SuiteOf(string suite, SweepManifest? manifest) =>
        suite == "mini" ? Suite.Mini
        : suite.StartsWith("vtab:") ? Suite.FromVtabFolder(suite[5..], manifest?.Backbone.ImageSize ?? 224,
            manifest is null ? null : Profiles.Get(manifest.Profile).FolderNormalization)
        : null;

    public string GroupOf(string suite, string task) => SuiteOf(suite, null)?.Info(task).Group ?? "natural";

    /// <summary>One <see cref="PeftFactory"/> per backbone + checkpoint, so weights load once per worker.</summary>
    public ModelFactory Factory(SweepManifest manifest, string method)
    {
        Peft.MethodRegistry.Get(method); // unknown methods fail here, naming the known ones
        var key = System.Text.Json.JsonSerializer.Serialize(manifest.Backbone) + "|" + manifest.Checkpoint;
        if (!factories.TryGetValue(key, out var f)) factories[key] = f = new PeftFactory(manifest.Backbone, manifest.Checkpoint);
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
            // Many-shot grids follow the study's recipe for the task's kind (e.g. Clevr: wd 1e-4, drop path 0).
            var o = options.Protocol == "manyshot" ? Profiles.Get(options.Profile).ManyShotFor(env.GroupOf(suite, task)) : options;
            foreach (var method in methodList)
            {
                var grid = env.Grid(method, options.Profile);
                Protocol.ValidateGrid(method, grid, backbone);
                var tune = Protocol.TuneConfigs(task, method, grid, o);
                trials.AddRange(tune);
                finals.Add(Protocol.PendingFinal(task, method, o, tune.Select(t => t.Key)));
            }
        }
        trials.AddRange(finals);
        return new SweepManifest
        {
            Store = Path.GetFullPath(store), Suite = suite, Profile = options.Profile, Protocol = options.Protocol,
            Backbone = backbone, Bf16 = options.Train.Bf16, Trials = trials,
            Checkpoint = checkpoint is null || checkpoint.StartsWith("shipped:") ? checkpoint : Path.GetFullPath(checkpoint),
        };
    }

    /// <summary>
    /// Runs trials of the manifest until every one is finished in the store (by this or other workers): skips
    /// finished ones, claims free ones, runs a final only when its tune trials are all finished, and waits while
    /// the rest run elsewhere. Returns how many trials this worker ran. Cancellation throws (the running trial
    /// is not recorded and its claim is released).
    /// </summary>
    public static int RunWorker(SweepManifest manifest, ITrialEnvironment env, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor = null,
        TextWriter? log = null, CancellationToken cancel = default)
    {
        var store = new ResultsStore(manifest.Store);
        var tasks = new Dictionary<string, Vtab1kTask>();
        int ran = 0;
        try
        {
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                var finished = store.Records().Select(r => r.Key).ToHashSet();
                var open = manifest.Trials.Where(t => !finished.Contains(t.Key)).ToList();
                if (open.Count == 0) { store.PruneClaims(); return ran; }
                bool progressed = false;
                foreach (var trial in open)
                {
                    if (trial.Phase == "final" && !TuneFinished(manifest, trial, finished)) continue;
                    using var claim = store.TryClaim(trial.Key);
                    if (claim is null) continue;
                    var record = Run(manifest, trial, store, env, tasks, progressFor, cancel);
                    store.Append(record);
                    ran++; progressed = true;
                    log?.WriteLine(Describe(record));
                    break; // re-read the store: other workers may have finished trials meanwhile
                }
                if (!progressed) cancel.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(300));
            }
        }
        finally { foreach (var t in tasks.Values) t.Dispose(); }
    }

    /// <summary>Runs manifest entry <paramref name="index"/> (a slurm array task). Finished: returns the stored
    /// record. A final entry whose tune trials are not all finished is an error naming the missing indices.</summary>
    public static TrialRecord RunIndex(SweepManifest manifest, int index, ITrialEnvironment env,
        IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        if (index < 0 || index >= manifest.Trials.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the manifest has {manifest.Trials.Count} trials (indices 0..{manifest.Trials.Count - 1}).");
        var trial = manifest.Trials[index];
        var store = new ResultsStore(manifest.Store);
        if (store.Find(trial.Key) is { } done) return done;
        if (trial.Phase == "final")
        {
            var finished = store.Records().Select(r => r.Key).ToHashSet();
            var missing = manifest.Trials.Select((t, i) => (t, i)).Where(x => IsTuneOf(x.t, trial) && !finished.Contains(x.t.Key)).Select(x => x.i).ToList();
            if (missing.Count > 0)
                throw new InvalidOperationException($"Final trial {index} ({trial.Task}/{trial.Method}) needs tune trials {string.Join(",", missing)} to finish first.");
        }
        var tasks = new Dictionary<string, Vtab1kTask>();
        try
        {
            using var claim = store.TryClaim(trial.Key)
                ?? throw new InvalidOperationException($"Trial {index} ({trial.Key}) is being run by another live worker.");
            var record = Run(manifest, trial, store, env, tasks, _ => progress, cancel);
            return store.Append(record) ? record : store.Find(trial.Key)!;
        }
        finally { foreach (var t in tasks.Values) t.Dispose(); }
    }

    static TrialRecord Run(SweepManifest manifest, TrialConfig trial, ResultsStore store, ITrialEnvironment env,
        Dictionary<string, Vtab1kTask> tasks, Func<TrialConfig, IProgress<TrainProgress>?>? progressFor, CancellationToken cancel)
    {
        if (!tasks.TryGetValue(trial.Task, out var task)) tasks[trial.Task] = task = env.LoadTask(manifest, trial.Task);
        var factory = env.Factory(manifest, trial.Method);
        var options = Study.OptionsFor(manifest, task.Group);
        if (trial.Phase != "final") return Protocol.RunTrial(trial, task, factory, options, store, progressFor?.Invoke(trial), cancel);
        // In the manifest's (grid) order: the study's tie-break takes the last tied trial.
        var byKey = store.Records().GroupBy(r => r.Key).ToDictionary(g => g.Key, g => g.First());
        var tuning = manifest.Trials.Where(t => IsTuneOf(t, trial) && byKey.ContainsKey(t.Key)).Select(t => byKey[t.Key]).ToList();
        var final = Protocol.RunFinalTrial(task, trial.Method, tuning, factory, options, store, progressFor, cancel);
        // A manifest planned before finals carried their grid digest names the final by its old key: record it so.
        return final.Key == trial.Key ? final : final with { Key = trial.Key };
    }

    static bool IsTuneOf(TrialConfig t, TrialConfig final) => t.Phase == "tune" && t.Task == final.Task && t.Method == final.Method;

    static bool TuneFinished(SweepManifest m, TrialConfig final, HashSet<string> finished) =>
        m.Trials.Where(t => IsTuneOf(t, final)).All(t => finished.Contains(t.Key));

    public static string Describe(TrialRecord r) =>
        $"{r.Config.Task,-16} {r.Config.Method,-14} {r.Config.Phase,-5} lr={r.Config.Lr:0.#####} wd={r.Config.WeightDecay:0.#####} dp={r.Config.DropPath:0.##} {r.Config.HpText,-12} " +
        $"{r.Status,-8} top1 {(r.Top1Last is double t ? t.ToString("F1") : "-"),5} best {(r.Top1Best is double b ? b.ToString("F1") : "-"),5}  {r.WallSeconds,6:F1}s";

    /// <summary>
    /// Writes slurm job arrays for <paramref name="manifest"/>, saved at <paramref name="manifestPath"/>: tune.sbatch
    /// (the tune entries) and final.sbatch (the finals, submitted by submit.sh with afterany on the tune job).
    /// Each array task runs `peft trial --manifest FILE --index $SLURM_ARRAY_TASK_ID` into the shared store.
    /// Array indices are manifest indices, so the max index must stay below the cluster's MaxArraySize.
    /// </summary>
    public static SlurmExport ExportSlurm(SweepManifest manifest, string manifestPath, string outDir, SlurmOptions? slurm = null)
    {
        slurm ??= new SlurmOptions();
        int tune = manifest.Trials.Count(t => t.Phase != "final");
        int total = manifest.Trials.Count;
        if (manifest.Trials.Take(tune).Any(t => t.Phase == "final"))
            throw new InvalidDataException("Manifest order: every tune trial must come before the final trials.");
        if (total - 1 >= slurm.MaxArraySize)
            throw new ArgumentException($"The sweep has {total} trials; slurm array indices must stay below MaxArraySize {slurm.MaxArraySize}. " +
                "Raise --max-array-size to your cluster's value or split the sweep.");
        var dir = Path.GetFullPath(outDir);
        Directory.CreateDirectory(Path.Combine(dir, "logs"));
        var manifestFull = Path.GetFullPath(manifestPath);
        string Script(string name, int first, int last) => string.Join("\n", new[]
        {
            "#!/bin/bash",
            $"#SBATCH --job-name=peft-{name}",
            $"#SBATCH --array={first}-{last}" + (slurm.MaxParallel > 0 ? $"%{slurm.MaxParallel}" : ""),
            $"#SBATCH --cpus-per-task={slurm.CpusPerTask}",
            $"#SBATCH --time={slurm.Time}",
            $"#SBATCH --output={Path.Combine(dir, "logs", $"{name}-%A_%a.out")}",
        }.Concat(slurm.Partition is null ? Array.Empty<string>() : new[] { $"#SBATCH --partition={slurm.Partition}" })
         .Concat(slurm.ExtraDirectives.Select(d => "#SBATCH " + d))
         .Concat(new[]
        {
            "set -euo pipefail",
            $"export OMP_NUM_THREADS={slurm.CpusPerTask}",
            $"{slurm.PeftCommand} trial --manifest {Quote(manifestFull)} --index $SLURM_ARRAY_TASK_ID",
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
            "# Submits the tune array, then the final array once every tune task has ended (afterany: a failed tune",
            "# task leaves its trial unfinished, and the final trial then names it; rerun those indices).",
            "set -euo pipefail",
            $"cd {Quote(dir)}",
            "tune=$(sbatch --parsable tune.sbatch)",
            "sbatch --dependency=afterany:${tune%%;*} final.sbatch",
            "",
        }));
        return new SlurmExport(manifestFull, tunePath, finalPath, submitPath, tune, total - tune);
    }

    static string Quote(string s) => s.All(c => char.IsLetterOrDigit(c) || "/._-+=:,".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";

    static void WriteScript(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text, new UTF8Encoding(false));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>sbatch settings for <see cref="Sweep.ExportSlurm"/>.</summary>
public sealed record SlurmOptions
{
    public string PeftCommand { get; init; } = "peft";
    public int CpusPerTask { get; init; } = 4;
    public string Time { get; init; } = "04:00:00";
    public string? Partition { get; init; }
    /// <summary>At most this many array tasks at once (0 = no limit).</summary>
    public int MaxParallel { get; init; }
    public int MaxArraySize { get; init; } = 1001;
    public IReadOnlyList<string> ExtraDirectives { get; init; } = Array.Empty<string>();
}

public sealed record SlurmExport(string Manifest, string TuneScript, string FinalScript, string SubmitScript, int TuneTrials, int FinalTrials);
