using System.Diagnostics;
using PeftWorkbench.Data;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Bench;

/// <summary>One timed `peft sweep`: its worker plan, wall seconds end to end (process starts included), trials run,
/// and the trials' own wall seconds summed per task (what the per-group extrapolation weighs by).</summary>
public sealed record SweepTiming(WorkerPlan Plan, double Seconds, int Trials, IReadOnlyDictionary<string, double> TrialSecondsByTask,
    string LoadBefore, string LoadAfter)
{
    /// <summary>The wall time of the same sweep over <paramref name="tasksPerGroup"/> tasks of each group: each timed
    /// task stands for its group, weighed by its share of the trials' time.</summary>
    public double Extrapolate(Func<string, string> groupOf, IReadOnlyDictionary<string, int> tasksPerGroup)
    {
        double total = TrialSecondsByTask.Values.Sum();
        if (total <= 0) return double.NaN;
        var timedPerGroup = TrialSecondsByTask.Keys.GroupBy(groupOf).ToDictionary(g => g.Key, g => g.Count());
        return Seconds * TrialSecondsByTask.Sum(kv => kv.Value / total * tasksPerGroup.GetValueOrDefault(groupOf(kv.Key)) / timedPerGroup[groupOf(kv.Key)]);
    }
}

/// <summary>
/// `peft bench sweep`: the default sweep (all methods on one task per group) timed end to end as `peft sweep` child
/// processes, once per worker plan (1 worker x all cores' threads, and N workers x 1 thread), each into a fresh store,
/// in alternating order over rounds; then extrapolated to the whole suite and the whole study.
/// </summary>
public static class SweepBench
{
    public static SweepTiming Time(IReadOnlyList<string> cli, string suite, IReadOnlyList<string> tasks, IReadOnlyList<string> methods,
        string profile, WorkerPlan plan, string store, CancellationToken cancel = default, bool bf16 = false)
    {
        var psi = PeftCommandLine.StartInfo(cli, "sweep", "--suite", suite, "--tasks", string.Join(",", tasks), "--methods", string.Join(",", methods),
            "--profile", profile, "--workers", plan.Workers.ToString(), "--threads", plan.Threads.ToString(), "--out", store);
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        if (bf16) psi.ArgumentList.Add("--bf16");
        foreach (var (k, v) in plan.WorkerEnvironment()) psi.Environment[k] = v; // worker 1 is that process: its policy too
        var tail = new Queue<string>();
        void Keep(string? line) { if (line is null) return; lock (tail) { tail.Enqueue(line); if (tail.Count > 20) tail.Dequeue(); } }
        string before = LoadAverage();
        var clock = Stopwatch.StartNew();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => Keep(e.Data);
        p.ErrorDataReceived += (_, e) => Keep(e.Data);
        p.Start();
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        using (cancel.Register(() => { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }))
            p.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds;
        cancel.ThrowIfCancellationRequested();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{string.Join(" ", psi.ArgumentList.Prepend(psi.FileName))} exited {p.ExitCode}:\n{string.Join("\n", tail)}");
        var records = new ResultsStore(store).Records();
        return new SweepTiming(plan, seconds, records.Count,
            records.GroupBy(r => r.Config.Task).ToDictionary(g => g.Key, g => g.Sum(r => r.WallSeconds)), before, LoadAverage());
    }

    /// <summary>Tasks per group of the mini suite (the default sweep's 11 tasks).</summary>
    public static IReadOnlyDictionary<string, int> MiniTasksPerGroup() => Suite.Mini.Tasks.GroupBy(t => t.Group).ToDictionary(g => g.Key, g => g.Count());

    public static string GroupOf(string task) => Suite.Mini.Tasks.FirstOrDefault(t => t.Name == task)?.Group ?? "natural";

    /// <summary>The 1, 5 and 15 minute load averages, printed beside every benchmark figure ("?" off Linux).</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    /// <summary>The first mini task of each group (notebook 02's default) when <paramref name="tasks"/> is empty.</summary>
    public static List<string> TasksOrDefault(IReadOnlyList<string> tasks) =>
        tasks.Count > 0 ? tasks.ToList() : Suite.Groups.Select(g => Suite.Mini.Tasks.First(t => t.Group == g).Name).ToList();

    /// <summary>`peft bench sweep`: both plans (1 worker x all cores' threads, <paramref name="workers"/> x 1 thread) in
    /// alternating order for <paramref name="rounds"/> rounds, each a `peft sweep` (<paramref name="cli"/>) into a fresh
    /// store under a temp folder that goes afterwards; then the table.</summary>
    public static void Compare(IReadOnlyList<string> cli, IReadOnlyList<string> tasks, IReadOnlyList<string> methods, string profile,
        int? workers, int rounds, int studyPairs, Action<string> log, CancellationToken cancel = default)
    {
        var taskList = TasksOrDefault(tasks);
        var methodList = methods.Count == 0 || methods is ["all"] ? Peft.MethodRegistry.All.Select(m => m.Id).ToList() : methods.ToList();
        int n = workers ?? WorkerPlan.MachineCores;
        var plans = new[] { (Workers: 1, Threads: WorkerPlan.MachineCores), (Workers: n, Threads: 1) };
        log($"bench sweep: {methodList.Count} methods x {taskList.Count} tasks ({string.Join(", ", taskList)}), profile {profile}, {rounds} round(s); load {LoadAverage()}");
        var root = Path.Combine(Path.GetTempPath(), $"peft-bench-sweep-{Environment.ProcessId}");
        var runs = new List<SweepTiming>();
        try
        {
            for (int round = 0; round < rounds; round++)
                foreach (var (w, th) in round % 2 == 0 ? plans : plans.Reverse())
                {
                    var plan = WorkerPlan.For(w, th); // the wait policy by the load now
                    var t = Time(cli, "mini", taskList, methodList, profile, plan, Path.Combine(root, $"r{round}-w{plan.Workers}x{plan.Threads}"), cancel);
                    runs.Add(t);
                    log($"  {plan.Describe(),-52} {t.Seconds,8:F1} s  {t.Trials,4} trials  load {t.LoadBefore} -> {t.LoadAfter}");
                }
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, recursive: true); }
        foreach (var line in Table(runs, methodList.Count, studyPairs).SkipWhile(l => l.Length > 0)) log(line);
    }

    /// <summary>The figures as lines: each run, then medians per plan, the speed-up, and the extrapolations.</summary>
    public static IEnumerable<string> Table(IReadOnlyList<SweepTiming> runs, int methods, int studyPairs)
    {
        foreach (var r in runs)
            yield return $"  {r.Plan.Describe(),-52} {r.Seconds,8:F1} s  {r.Trials,4} trials  load {r.LoadBefore} -> {r.LoadAfter}";
        var byPlan = runs.GroupBy(r => (r.Plan.Workers, r.Plan.Threads)).Select(g => (Plan: g.First().Plan, Seconds: IoBench.Median(g.Select(r => r.Seconds)), Runs: g.ToList())).ToList();
        var perGroup = MiniTasksPerGroup();
        int suiteTasks = perGroup.Values.Sum();
        int timedPairs = runs[0].TrialSecondsByTask.Count * methods;
        yield return "";
        yield return $"  {"plan",-52} {"sweep",9} {"per pair",9} {"x speed",8} {$"{suiteTasks} tasks",10} {$"study ({studyPairs} pairs)",18}";
        double baseline = byPlan[0].Seconds;
        foreach (var (plan, seconds, rs) in byPlan)
        {
            double suite = IoBench.Median(rs.Select(r => r.Extrapolate(GroupOf, perGroup)));
            double study = seconds / timedPairs * studyPairs;
            yield return $"  {plan.Describe(),-52} {Minutes(seconds),9} {seconds / timedPairs,8:F1}s {baseline / seconds,7:F2}x {Minutes(suite),10} {Minutes(study),18}";
        }
        yield return $"  ({suiteTasks} tasks: the sweep of all {methods} methods over the mini suite, each timed task standing for its group by its share of trial time; " +
            $"study: {studyPairs} (task, method) pairs at this sweep's mean per pair. Target: both within 20 min.)";
    }

    static string Minutes(double s) => double.IsNaN(s) ? "-" : $"{(int)(s / 60)}:{(int)(s % 60):00}";
}
