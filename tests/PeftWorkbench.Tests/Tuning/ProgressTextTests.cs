using PeftWorkbench.Display;
using PeftWorkbench.Tuning;

namespace PeftWorkbench.Tests.Tuning;

/// <summary>Issue 24, item 9: the sweep's progress line tells running trials apart.</summary>
public class ProgressTextTests
{
    [Fact]
    public void TwoWorkersOnOneMethodAndTaskShowTheirGridPoints()
    {
        var dir = Temp.Dir();
        var (m, _) = SweepTests.Plan(dir, tasks: 1);
        var store = new ResultsStore(dir);
        var twoTunes = m.Trials.Where(t => t.Phase == "tune" && t.Method == "full").Take(2).ToList();
        using var a = store.TryClaim(twoTunes[0].Key);
        using var b = store.TryClaim(twoTunes[1].Key);
        var line = Sweep.Progress(m, store, 2);
        var running = line[(line.IndexOf(": ", StringComparison.Ordinal) + 2)..].Split(", ");
        Assert.Equal(2, running.Length);
        Assert.Equal(2, running.Distinct().Count()); // was "toy-3 full tune, toy-3 full tune"
        Assert.Contains(running, r => r.Contains($"lr={twoTunes[0].Lr.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)}"));
        Assert.Equal("toy-3 full final", Sweep.RunningLabel(m.Trials.First(t => t.Phase == "final" && t.Method == "full")));
    }

    /// <summary>Issue 24, item 2: an interrupted run's line says it stopped and what is kept, instead of staying at the
    /// trial it was on; the store holds no half-run trial and no claim.</summary>
    [Fact]
    public void AnInterruptedStudyRunSaysOnItsLastLineThatItStopped()
    {
        var store = Temp.Dir();
        var lines = new List<string>();
        using var interrupt = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => Study.RunAll(new[] { "mnist" }, new[] { "linear" }, "smoke", store: store, workers: 1,
            progress: l => { lines.Add(l); interrupt.Cancel(); }, cancel: interrupt.Token));
        Assert.Equal("[1/1] mnist linear -- stopped (interrupted): " + StoppableProgress.Kept, lines[^1]);
        Assert.Equal(lines.Count - 1, lines.Count(l => !l.Contains("stopped"))); // said once
        var results = new ResultsStore(store);
        Assert.Empty(results.Records());
        Assert.Empty(results.Claimed());
    }
}
