using PeftWorkbench.Tuning;

namespace PeftWorkbench.Bench;

/// <summary>One (task, method) pair's final test top-1 in float32 and in bf16 (same seed, same protocol).</summary>
public sealed record Bf16Pair(string Task, string Method, double? Fp32, double? Bf16)
{
    public double? Diff => Fp32 is double a && Bf16 is double b ? b - a : null;
}

/// <summary>
/// The measurement behind the bf16 policy (issue 16, `peft bench bf16-accuracy`): the same sweep in float32 and in bf16
/// (each a `peft sweep` into its own store, since a trial key does not name the precision), final test top-1 per pair,
/// and the issue's criteria: bf16 may be on by default only where the mean difference stays within 0.3 points, no
/// pair loses more than 1.0, and bf16 trains faster (the two sweeps' wall times).
/// </summary>
public static class Bf16Accuracy
{
    public const double MeanBound = 0.3, WorstBound = 1.0;

    /// <summary>The final trials of both stores, paired by task and method, in <paramref name="tasks"/> x <paramref name="methods"/> order.</summary>
    public static IReadOnlyList<Bf16Pair> Compare(string fp32Store, string bf16Store, IReadOnlyList<string> tasks, IReadOnlyList<string> methods)
    {
        static Dictionary<(string, string), double?> Finals(string dir) => new ResultsStore(dir).Records().Where(r => r.Config.Phase == "final")
            .GroupBy(r => (r.Config.Task, r.Config.Method)).ToDictionary(g => g.Key, g => g.Last().Top1Last);
        var (a, b) = (Finals(fp32Store), Finals(bf16Store));
        return tasks.SelectMany(t => methods.Select(m => new Bf16Pair(t, m, a.GetValueOrDefault((t, m)), b.GetValueOrDefault((t, m))))).ToList();
    }

    /// <summary>`peft bench bf16-accuracy`: the sweep in float32, then in bf16, each a `peft sweep` (<paramref name="cli"/>)
    /// into <paramref name="root"/>/fp32 and /bf16 (rerun to resume), then the table with the verdict.</summary>
    public static void Run(IReadOnlyList<string> cli, IReadOnlyList<string> tasks, IReadOnlyList<string> methods, string profile, int? workers,
        string root, Action<string> log, CancellationToken cancel = default)
    {
        var taskList = SweepBench.TasksOrDefault(tasks);
        var methodList = (methods.Count > 0 ? methods : new[] { "linear", "full", "lora", "vpt_deep" }).Select(m => Peft.MethodRegistry.Get(m).Id).ToList();
        root = Path.GetFullPath(root);
        log($"bench bf16-accuracy: {methodList.Count} methods x {taskList.Count} tasks, profile {profile}, the shipped mini checkpoint; load {SweepBench.LoadAverage()}");
        var seconds = new Dictionary<bool, double>();
        foreach (var bf16 in new[] { false, true })
        {
            var plan = WorkerPlan.For(workers, null);
            var t = SweepBench.Time(cli, "mini", taskList, methodList, profile, plan, Path.Combine(root, bf16 ? "bf16" : "fp32"), cancel, bf16);
            seconds[bf16] = t.Seconds;
            log($"  {(bf16 ? "bf16" : "fp32")}: {t.Seconds:F1} s, {t.Trials} trials in the store, {plan.Describe()}, load {t.LoadBefore} -> {t.LoadAfter}");
        }
        var pairs = Compare(Path.Combine(root, "fp32"), Path.Combine(root, "bf16"), taskList, methodList);
        foreach (var line in Table(pairs, seconds[false], seconds[true])) log(line);
    }

    public static bool AccuracyHolds(IReadOnlyList<Bf16Pair> pairs) =>
        pairs.All(p => p.Diff is not null) && Math.Abs(pairs.Average(p => p.Diff!.Value)) <= MeanBound && pairs.Min(p => p.Diff!.Value) >= -WorstBound;

    public static IEnumerable<string> Table(IReadOnlyList<Bf16Pair> pairs, double fp32Seconds, double bf16Seconds)
    {
        yield return "| task | method | fp32 top-1 | bf16 top-1 | bf16 - fp32 |";
        yield return "|---|---|---:|---:|---:|";
        foreach (var p in pairs)
            yield return $"| {p.Task} | {p.Method} | {F(p.Fp32)} | {F(p.Bf16)} | {(p.Diff is double d ? d.ToString("+0.00;-0.00") : "-")} |";
        var diffs = pairs.Where(p => p.Diff is not null).Select(p => p.Diff!.Value).ToList();
        if (diffs.Count == 0) { yield return "no pair finished in both modes"; yield break; }
        bool holds = AccuracyHolds(pairs);
        yield return $"mean {diffs.Average():+0.00;-0.00} points (bound +-{MeanBound}), worst {diffs.Min():+0.00;-0.00} (bound -{WorstBound}) over {diffs.Count} of {pairs.Count} pairs: " +
            (holds ? "accuracy holds" : "accuracy does NOT hold");
        double speed = fp32Seconds / bf16Seconds;
        yield return $"sweep wall time: fp32 {fp32Seconds:F0} s, bf16 {bf16Seconds:F0} s (bf16 {speed:F2}x; valid only when both stores started empty)";
        yield return "policy by issue 16's criteria: " + (holds && speed > 1.05 ? "bf16 ON for this preset (faster, accuracy holds)"
            : !holds ? "bf16 OFF (accuracy)" : "bf16 OFF (no speed-up beyond 5 %)");
    }

    static string F(double? v) => v is double d ? d.ToString("F2") : "-";
}
