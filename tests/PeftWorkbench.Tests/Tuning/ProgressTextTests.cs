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

    /// <summary>Issue 23: Study.RunAll's interrupt, in its worker phase as in its runs, is said by its line
    /// (<see cref="StoppableProgress.Run"/>, then <see cref="StoppableProgress.Each"/>), not by a catch of its own: its
    /// body holds no catch or filter (the using's finally only).</summary>
    [Fact]
    public void RunAllSaysItsInterruptThroughItsLineNotACatchOfItsOwn()
    {
        var body = typeof(Study).GetMethod(nameof(Study.RunAll))!.GetMethodBody()!;
        Assert.DoesNotContain(body.ExceptionHandlingClauses, c => c.Flags is System.Reflection.ExceptionHandlingClauseOptions.Clause or System.Reflection.ExceptionHandlingClauseOptions.Filter);
    }

    /// <summary>Issue 24, item 9: the line after a run says what trained and what was read back, computed (it said
    /// "finished trials read from the store" on a fresh store too).</summary>
    [Fact]
    public void ARunsTallySaysWhatTrainedNowAndWhatWasReadFromTheStore()
    {
        var store = Temp.Dir();
        StudyRun Go() => Study.Run("toy-3", "linear", "smoke", store: store, suite: "toy", checkpoint: "none", preset: "mini");
        var since = DateTime.UtcNow;
        using var fresh = Go();
        var first = RunTally.Of(new[] { fresh }, since);
        int trials = fresh.Tuning.Count + 1 + (fresh.Val is { } v && v.Key != fresh.Selected?.Key ? 1 : 0);
        Assert.Equal(new RunTally(trials, 0), first);
        Assert.Equal($"all {trials} trials trained now", first.ToString());
        since = DateTime.UtcNow;
        using var again = Go();
        Assert.Equal($"all {trials} trials read from the store", RunTally.Of(new[] { again }, since).ToString());
        // The same keys in another store (notebook 07 keeps one store per backbone) are other trials: both count.
        var other = Temp.Dir();
        using var elsewhere = Study.Run("toy-3", "linear", "smoke", store: other, suite: "toy", checkpoint: "none", preset: "mini");
        Assert.Equal($"{trials} trials trained now, {trials} read from the store", RunTally.Of(new[] { again, elsewhere }, since).ToString());
        Assert.Equal("2 curves trained now, 1 read from the store", new RunTally(2, 1, "curves").ToString());
    }

    /// <summary>Issue 24, item 2, for notebook 04's many-shot sweep and notebook 05's robustness run: an interrupted
    /// run ends its line with why it stopped, once.</summary>
    [Fact]
    public void InterruptedCapacityAndRobustnessRunsSayOnTheirLastLineThatTheyStopped()
    {
        foreach (var run in new Action<Action<string>, CancellationToken>[]
        {
            (show, cancel) => CapacitySweep.Run(new[] { "fashion-mnist" }, new[] { "linear" }, new[] { 4 }, "smoke", Temp.Dir(), progress: show, cancel: cancel),
            (show, cancel) => PeftWorkbench.Findings.ShiftRobustness.Run("smoke", new[] { "linear" }, store: Temp.Dir(), log: show, cancel: cancel),
        })
        {
            var lines = new List<string>();
            using var interrupt = new CancellationTokenSource();
            Assert.ThrowsAny<OperationCanceledException>(() => run(l => { lines.Add(l); interrupt.Cancel(); }, interrupt.Token));
            Assert.EndsWith(" -- stopped (interrupted): " + StoppableProgress.Kept, lines[^1]);
            Assert.Equal(lines.Count - 1, lines.Count(l => !l.Contains("stopped")));
        }
    }
}
