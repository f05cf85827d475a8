using System.Diagnostics;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Issue 24, item 3: workers started by a sweep (or a notebook kernel) end when their parent dies, however it
/// dies, instead of training on under PID 1.</summary>
public class WorkerLifetimeTests
{
    [Fact]
    public void WorkersEndWithinSecondsOfTheirParentsSigkillAndTheStoreResumes()
    {
        var dir = Temp.Dir();
        var (m, _) = SweepTests.Plan(dir); // 42 toy trials: far more than a worker finishes in the seconds allowed below
        using var sweep = PeftCli.StartPeft(new[] { "sweep", "--out", dir, "--workers", "2" });
        int child = SweepTests.FirstWorkerChild(sweep);
        Assert.Contains(ParentWatch.Flag, File.ReadAllText($"/proc/{child}/cmdline").Split('\0'));

        sweep.Kill(); // SIGKILL: no handler runs, RunLocal's finally never kills the children
        sweep.WaitForExit();
        var clock = Stopwatch.StartNew();
        // Reparented, the worker may stay a zombie where nothing reaps orphans (a container's PID 1): Z counts as ended.
        while (Alive(child) && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(50);
        Assert.False(Alive(child), $"worker {child} still runs {clock.Elapsed.TotalSeconds:F0} s after its parent's SIGKILL");
        // It stopped rather than finishing the sweep alone before it ended.
        Assert.True(new ResultsStore(dir).Records().Count() < m.Trials.Count, "the orphaned worker ran the whole sweep");

        // Nothing is lost or torn: a rerun takes over the dead processes' claims and completes every trial once.
        var rerun = PeftCli.Peft(new[] { "sweep", "--out", dir, "--workers", "1" }, TimeSpan.FromMinutes(5));
        Assert.True(rerun.Code == 0, rerun.Output);
        SweepTests.AssertCompleteAndUnique(m);
    }

    static bool Alive(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(')').Last().TrimStart()[0] is not ('Z' or 'X'); }
        catch (IOException) { return false; } // gone
    }
}
