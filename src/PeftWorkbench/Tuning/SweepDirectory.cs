using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Training;
using PeftWorkbench.Vit;

namespace PeftWorkbench.Tuning;

/// <summary>What `peft sweep` plans: the suite, tasks and methods ("all" for every mini task / all 16 methods), the
/// protocol options, the backbone preset and checkpoint (null: the suite's default, "none": random init).</summary>
public sealed record SweepRequest(string Suite, IReadOnlyList<string> Tasks, IReadOnlyList<string> Methods, ProtocolOptions Options,
    string Preset = "mini", string? Checkpoint = null);

/// <summary>
/// A sweep directory: a results store with its manifest.json. `peft sweep` is a shell over these three calls: plan a new
/// sweep or resume the one there (<see cref="PlanOrResume"/>), run it with workers on this machine (<see cref="RunHere"/>),
/// and describe the store (<see cref="Report"/>, also `peft results`).
/// </summary>
public static class SweepDirectory
{
    public static string ManifestPath(string dir) => Path.Combine(Path.GetFullPath(dir), "manifest.json");

    /// <summary>The sweep in <paramref name="dir"/>: the manifest already there when <paramref name="request"/> names no
    /// tasks and no methods (resume); else a new plan, saved, or checked against the one there (a different sweep is refused).</summary>
    public static SweepManifest PlanOrResume(string dir, SweepRequest request, ITrialEnvironment env)
    {
        dir = Path.GetFullPath(dir);
        var path = ManifestPath(dir);
        if (request.Tasks.Count == 0 && request.Methods.Count == 0 && File.Exists(path)) return SweepManifest.Load(path);
        if (request.Tasks.Count == 0 || request.Methods.Count == 0) throw new ArgumentException("--tasks and --methods are required for a new sweep.");
        var methods = request.Methods is ["all"] ? Peft.MethodRegistry.All.Select(x => x.Id).ToList() : request.Methods.ToList();
        var tasks = request.Tasks is ["all"] && request.Suite == "mini" ? Suite.Mini.Tasks.Select(x => x.Name).ToList() : request.Tasks.ToList();
        var ckpt = Study.CheckpointFor(request.Checkpoint, request.Suite);
        var manifest = Sweep.Plan(dir, request.Suite, tasks, methods, request.Options, PeftFactory.BackboneFor(ckpt, VitConfig.Preset(request.Preset)), env, ckpt);
        if (!File.Exists(path)) { manifest.Save(path); return manifest; }
        var old = SweepManifest.Load(path);
        if (!old.Trials.Select(t => t.Key).SequenceEqual(manifest.Trials.Select(t => t.Key)))
            throw new InvalidOperationException($"{dir} holds a different sweep ({old.Trials.Count} trials); use another --out, or `peft sweep --out {dir}` to resume it.");
        return manifest;
    }

    /// <summary>Runs the sweep's open trials with <paramref name="plan"/>'s workers: this process is worker 1 (its torch
    /// threads pinned to the plan's), the others are `peft worker` children of <paramref name="cli"/>. Lines go to
    /// <paramref name="log"/>. Cancellation throws; finished trials stay in the store.</summary>
    public static LocalSweep RunHere(SweepManifest manifest, WorkerPlan plan, IReadOnlyList<string> cli, ITrialEnvironment env, TextWriter log, CancellationToken cancel = default)
    {
        var contents = new ResultsStore(manifest.Store).Read();
        if (contents.InvalidSummary() is string bad) log.WriteLine(bad);
        var finished = contents.Records.Select(x => x.Key).ToHashSet();
        int already = manifest.Trials.Count(t => finished.Contains(t.Key));
        plan = plan.Capped(manifest.Trials.Count - already);
        ThreadBudget.Pin(plan.Threads); // this process is worker 1 (its OpenMP policy was set when libtorch loaded)
        log.WriteLine($"sweep {manifest.Store}: {manifest.Trials.Count} trials" + (already > 0 ? $" ({already} already finished, skipped)" : "") +
            $", profile {manifest.Profile}, {plan.Describe()}");
        var clock = Stopwatch.StartNew();
        var path = ManifestPath(manifest.Store);
        var result = Sweep.RunLocal(manifest, plan.Workers, env, () => plan.StartWorker(cli, path), log, cancel);
        log.WriteLine($"done: {result.RanHere} trial(s) here, {result.Others.Count} other worker(s), {clock.Elapsed.TotalSeconds:F1} s");
        log.WriteLine($"  worker 1 (pid {Environment.ProcessId}, this process): ran {result.RanHere} trial(s)");
        foreach (var w in result.Others) log.WriteLine("  " + w.Describe());
        foreach (var line in Report(new ResultsStore(manifest.Store), manifest)) log.WriteLine(line);
        return result;
    }

    /// <summary>The store as lines: how many trials finished (of the manifest's) and are claimed, each record, then the
    /// final test top-1 per task and method with the selected hyperparameters.</summary>
    public static IEnumerable<string> Report(ResultsStore store, SweepManifest? manifest)
    {
        var contents = store.Read();
        var records = contents.Records;
        var claimed = store.Claimed();
        yield return $"{store.Dir}: {records.Count} finished" + (manifest is null ? "" : $" of {manifest.Trials.Count}") +
            (claimed.Count > 0 ? $", {claimed.Count} claimed (running, or left by a killed worker)" : "") +
            (records.Count > 0 ? " (already finished: a rerun or resubmission skips these)" : "");
        if (contents.InvalidSummary() is string bad) yield return "  " + bad;
        foreach (var rec in records) yield return "  " + Sweep.Describe(rec);
        var finals = records.Where(x => x.Config.Phase == "final").ToList();
        if (finals.Count == 0) yield break;
        yield return "";
        yield return $"  {"task",-16} {"method",-14} {"test last",9} {"test best",9} {"params",12}  selected";
        foreach (var f in finals.OrderBy(x => x.Config.Task).ThenBy(x => x.Config.TrainImages ?? int.MaxValue).ThenBy(x => x.Config.Method))
            yield return $"  {f.Config.Task + (f.Config.TrainImages is int n ? $" n={n}" : ""),-16} {f.Config.Method,-14} {F(f.Top1Last),9} {F(f.Top1Best),9} {f.TrainableParams,12:N0}  " +
                (f.Status == "ok" ? $"lr={f.Config.Lr} wd={f.Config.WeightDecay} dp={f.Config.DropPath} {f.Config.HpText}" : f.Status);
        static string F(double? v) => v is double d ? d.ToString("F2") : "-";
    }
}
