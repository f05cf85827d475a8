using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using PeftWorkbench.Tuning;
using Xunit.Abstractions;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>
/// `peft sweep --export slurm` as a user runs it, on a real single-node Slurm started here (Debian's slurmctld,
/// slurmd and munge through environment/slurm-local.sh, private config, ports and state; stopped by PID at the end):
/// the printed submit script runs the smoke sweep of two methods on one mini task, every trial lands once and the
/// store equals a local `peft sweep` of the same manifest; then one running task of a second sweep is scancelled,
/// the sweep resubmitted, and nothing is lost or duplicated. Needs root (slurmd runs jobs as their owners).
/// </summary>
public class SlurmClusterTests
{
    readonly ITestOutputHelper output;
    readonly Stopwatch clock = Stopwatch.StartNew();
    public SlurmClusterTests(ITestOutputHelper output) => this.output = output;

    void Log(string line) => output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {line}");

    static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [RootFact("it starts slurmctld, slurmd and munged")]
    public void TheExportedSweepRunsAsPrintedOnARealSlurmAndSurvivesAScancel()
    {
        var work = Temp.Dir();
        var cluster = Path.Combine(work, "cluster");
        var script = Path.Combine(PeftCli.Repo, "environment", "slurm-local.sh");
        var start = PeftCli.Run(PeftCli.Info("bash", new[] { script, "start", cluster }), TimeSpan.FromMinutes(3));
        Assert.True(start.Code == 0, "slurm-local.sh start failed:\n" + start.Output + Logs(cluster));
        Log("cluster up: " + start.Output.Trim().Split('\n')[^1]);
        var env = new Dictionary<string, string> { ["SLURM_CONF"] = Path.Combine(cluster, "slurm.conf") };
        try
        {
            // 1. The smoke sweep of two methods on one mini task, exported and submitted exactly as printed.
            var a = Path.Combine(work, "a");
            var sweep = new[] { "--suite", "mini", "--tasks", "digits", "--methods", "linear,bitfit", "--profile", "smoke" };
            var submit = Export(a, sweep, env);
            var jobs = Submit(submit, env);
            WaitFor(jobs, env, TimeSpan.FromMinutes(2));
            var manifest = SweepManifest.Load(Path.Combine(a, "manifest.json"));
            var slurmRecords = AssertEachTrialOnce(manifest);
            Log($"sweep a: {slurmRecords.Count} trials recorded once each: " + string.Join(", ", slurmRecords.Select(r => $"{r.Config.Method}/{r.Config.Phase} {r.Top1Last:F1}")));

            // 2. The same manifest swept locally: same keys, and (same seed, same machine, same threads) same top-1.
            var local = Path.Combine(work, "local");
            var run = PeftCli.Peft(new[] { "sweep", "--out", local }.Concat(sweep), TimeSpan.FromMinutes(2));
            Assert.True(run.Code == 0, run.Output);
            var localRecords = new ResultsStore(local).Records().ToDictionary(r => r.Key);
            Assert.Equal(slurmRecords.Select(r => r.Key).OrderBy(k => k), localRecords.Keys.OrderBy(k => k));
            foreach (var r in slurmRecords) Assert.True(r.Top1Last == localRecords[r.Key].Top1Last, $"{r.Key}: slurm {r.Top1Last} local {localRecords[r.Key].Top1Last}");
            Log("local sweep of the same manifest: same keys and top-1");

            // 3. A second sweep: scancel one running task, resubmit, nothing lost or duplicated.
            var b = Path.Combine(work, "b");
            var submitB = Export(b, new[] { "--suite", "mini", "--tasks", "cells", "--methods", "linear,bitfit", "--profile", "smoke" }, env);
            var manifestB = SweepManifest.Load(Path.Combine(b, "manifest.json"));
            var jobsB = Submit(submitB, env);
            var (index, holder) = WaitForAClaim(manifestB, TimeSpan.FromMinutes(2));
            var task = $"{jobsB.Tune}_{index}";
            Assert.Equal(0, PeftCli.Run(PeftCli.Info("scancel", new[] { task }, env), Minute).Code);
            Log($"scancelled array task {task} (trial {index}, {manifestB.Trials[index].Method}/{manifestB.Trials[index].Phase}, pid {holder}) while it ran");
            WaitFor(jobsB, env, TimeSpan.FromMinutes(2));
            var storeB = new ResultsStore(b);
            Assert.Null(storeB.Find(manifestB.Trials[index].Key));
            Assert.Empty(Directory.GetFiles(Path.Combine(b, "claims")));
            var cancelledLog = File.ReadAllText(Path.Combine(b, "slurm", "logs", $"tune-{jobsB.Tune}_{index}.out"));
            Assert.Contains($"[{index}] stopped by signal 15: nothing recorded, claim released", cancelledLog);
            Log($"after the scancel: {storeB.Records().Count} of {manifestB.Trials.Count} recorded, no claim left; the task's log: " +
                cancelledLog.Split('\n').First(l => l.Contains("stopped by signal")));
            var again = Submit(submitB, env);
            WaitFor(again, env, TimeSpan.FromMinutes(2));
            var recordsB = AssertEachTrialOnce(manifestB);
            var skipped = Directory.GetFiles(Path.Combine(b, "slurm", "logs"), $"*-{again.Tune}_*.out").Concat(Directory.GetFiles(Path.Combine(b, "slurm", "logs"), $"*-{again.Final}_*.out"))
                .Count(f => File.ReadAllText(f).Contains("already finished"));
            Assert.InRange(skipped, 1, manifestB.Trials.Count - 1);
            Log($"resubmitted: {recordsB.Count} trials recorded once each; {skipped} task(s) said 'already finished'");
        }
        finally
        {
            var stop = PeftCli.Run(PeftCli.Info("bash", new[] { script, "stop", cluster }), Minute);
            Log($"daemons stopped by PID (exit {stop.Code})");
        }
    }

    string Export(string dir, string[] sweep, Dictionary<string, string> env)
    {
        var export = PeftCli.Peft(new[] { "sweep", "--out", dir, "--export", "slurm" }.Concat(sweep), Minute, env);
        Assert.True(export.Code == 0, export.Output);
        var submit = Regex.Match(export.Output, @"(?m)^submit\s+bash (\S+)$");
        Assert.True(submit.Success, export.Output);
        Log("exported: " + export.Output.Trim().Replace("\n", " | "));
        return submit.Groups[1].Value;
    }

    (string Tune, string Final) Submit(string submitScript, Dictionary<string, string> env)
    {
        // As printed: `bash <store>/slurm/submit.sh`, from an unrelated folder.
        var psi = PeftCli.Info("bash", new[] { submitScript }, env);
        psi.WorkingDirectory = Path.GetTempPath();
        var run = PeftCli.Run(psi, Minute);
        Assert.True(run.Code == 0, run.Output);
        var ids = Regex.Match(run.Output, @"tune array (\d+), final array (\d+)");
        Assert.True(ids.Success, run.Output);
        Log(run.Output.Trim());
        return (ids.Groups[1].Value, ids.Groups[2].Value);
    }

    void WaitFor((string Tune, string Final) jobs, Dictionary<string, string> env, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var q = PeftCli.Run(PeftCli.Info("squeue", new[] { "-h", "-j", $"{jobs.Tune},{jobs.Final}", "-o", "%i %T %r" }, env), Minute);
            if (q.Code == 0 && q.Output.Trim().Length == 0) break;
            Assert.True(DateTime.UtcNow < deadline, $"jobs {jobs} still queued after {timeout.TotalSeconds} s:\n{q.Output}");
            Thread.Sleep(500);
        }
        Log($"jobs {jobs.Tune} and {jobs.Final} left the queue");
    }

    /// <summary>The first trial whose claim file appears (a task running it): its manifest index and the holder's pid.</summary>
    static (int Index, int Pid) WaitForAClaim(SweepManifest m, TimeSpan timeout)
    {
        var claims = Path.Combine(m.Store, "claims");
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            foreach (var f in Directory.Exists(claims) ? Directory.GetFiles(claims, "*.claim") : Array.Empty<string>())
            {
                try
                {
                    using var doc = JsonDocument.Parse(File.ReadAllText(f));
                    var key = doc.RootElement.GetProperty("Key").GetString();
                    int i = m.Trials.FindIndex(t => t.Key == key && t.Phase == "tune");
                    if (i >= 0) return (i, doc.RootElement.GetProperty("Pid").GetInt32());
                }
                catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException) { }
            }
            Thread.Sleep(50);
        }
        throw new TimeoutException("no tune trial was claimed");
    }

    static IReadOnlyList<TrialRecord> AssertEachTrialOnce(SweepManifest m)
    {
        var lines = File.ReadAllLines(Path.Combine(m.Store, "trials.jsonl")).Where(l => l.Length > 0).ToList();
        var read = new ResultsStore(m.Store).Read();
        Assert.Empty(read.Invalid);
        Assert.Equal(m.Trials.Count, lines.Count);
        Assert.Equal(m.Trials.Select(t => t.Key).OrderBy(k => k), read.Records.Select(r => r.Key).OrderBy(k => k));
        Assert.All(read.Records, r => Assert.True(r.Ok, $"{r.Key}: {r.Status} {r.Error}"));
        return read.Records;
    }

    static string Logs(string cluster) =>
        Directory.Exists(Path.Combine(cluster, "log"))
            ? string.Concat(Directory.GetFiles(Path.Combine(cluster, "log")).Select(f => $"\n--- {f}\n" + string.Join("\n", File.ReadLines(f).TakeLast(20))))
            : "";
}
