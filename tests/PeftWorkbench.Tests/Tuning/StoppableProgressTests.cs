using PeftWorkbench.Display;

namespace PeftWorkbench.Tests.Tuning; // beside ProgressTextTests (a PeftWorkbench.Tests.Display namespace would hide PeftWorkbench.Display from the other tests)

/// <summary>Issue 23: a run nested in another (Regime's Study.RunAll per backbone and size) says "stopped" once, the line
/// knowing it rather than its caller matching the text.</summary>
public class StoppableProgressTests
{
    sealed class Item(string name) : IDisposable
    {
        public string Name => name;
        public bool Disposed { get; private set; }
        public void Dispose() => Disposed = true;
    }

    static int Stops(List<string> lines) => lines.Count(l => l.Contains("stopped", StringComparison.Ordinal));

    /// <summary>Regime's shape: an outer line's step (Regime: its own <see cref="StoppableProgress.Each"/> over backbones
    /// and sizes; here <see cref="StoppableProgress.Run"/>, the same mechanism) around an inner
    /// <see cref="StoppableProgress.Each"/> made over <see cref="StoppableProgress.Nested"/>; the Interrupt lands in the
    /// inner loop, which ends the line, and the outer line's own stop then says nothing.</summary>
    [Fact]
    public void AnInterruptedNestedRunSaysStoppedOnceOnTheOuterLine()
    {
        var lines = new List<string>();
        using var interrupt = new CancellationTokenSource();
        var made = new List<Item>();
        using var outer = new StoppableProgress(lines.Add);
        Assert.ThrowsAny<OperationCanceledException>(() => outer.Run(() =>
        {
            outer.Report("(1/2) mini, 50 images: starting");
            using var inner = new StoppableProgress(outer.Nested("(1/2) mini, 50 images: "));
            inner.Each(new[] { "a", "b", "c" }, s => s, (s, label) =>
            {
                if (s == "b") { interrupt.Cancel(); interrupt.Token.ThrowIfCancellationRequested(); }
                var item = new Item(s);
                made.Add(item);
                return item;
            }, interrupt.Token);
        }, interrupt.Token));
        Assert.Equal(new[]
        {
            "(1/2) mini, 50 images: starting",
            "(1/2) mini, 50 images: [1/3] a",
            "(1/2) mini, 50 images: [2/3] b",
            "(1/2) mini, 50 images: [2/3] b -- stopped (interrupted): " + StoppableProgress.Kept,
        }, lines);
        Assert.Equal(1, Stops(lines));
        Assert.True(Assert.Single(made).Disposed); // Each's all-or-none still holds
        outer.Stopped("the kernel ended"); // e.g. the process ending afterwards: the line already ended
        Assert.Equal(1, Stops(lines));
    }

    /// <summary>Issue 23: <see cref="StoppableProgress.Run"/> (one step, as Study.RunAll's worker phase) says an Interrupt
    /// on the line as <see cref="StoppableProgress.Each"/> does: once, after the line it stopped at, and not again when
    /// an Each that follows is interrupted too; a failure that is not the Interrupt leaves the line as it was.</summary>
    [Fact]
    public void RunSaysAnInterruptOnceAsEachDoes()
    {
        var lines = new List<string>();
        using var interrupt = new CancellationTokenSource();
        using var line = new StoppableProgress(lines.Add);
        Assert.Throws<InvalidOperationException>(() => line.Run(() => { line.Report("3 trial(s) to run"); throw new InvalidOperationException("workers failed"); }, interrupt.Token));
        Assert.Throws<OperationCanceledException>(() => line.Run(() => throw new OperationCanceledException(), interrupt.Token)); // not this run's Interrupt
        Assert.Equal(new[] { "3 trial(s) to run" }, lines);

        Assert.ThrowsAny<OperationCanceledException>(() => line.Run(() =>
        {
            line.Report("[0/3 trials] 2 worker(s)");
            interrupt.Cancel();
            interrupt.Token.ThrowIfCancellationRequested();
        }, interrupt.Token));
        Assert.ThrowsAny<OperationCanceledException>(() => line.Each(new[] { "a" }, s => s, (s, step) => 0, interrupt.Token));
        Assert.Equal("[0/3 trials] 2 worker(s) -- stopped (interrupted): " + StoppableProgress.Kept, lines[^1]);
        Assert.Equal(1, Stops(lines));
    }

    /// <summary>The other order: the outer line ends first (the process ends while the nested run is on), and the nested
    /// line's stop then says nothing.</summary>
    [Fact]
    public void ANestedLineSaysNothingOnceItsOuterLineEnded()
    {
        var lines = new List<string>();
        using var outer = new StoppableProgress(lines.Add);
        using var inner = new StoppableProgress(outer.Nested("(2/2) stronger, 800 images: "));
        inner.Report("[4/6] mnist lora");
        outer.Stopped("the kernel ended");
        inner.Stopped("the kernel ended");
        inner.Stopped("interrupted");
        Assert.Equal(new[]
        {
            "(2/2) stronger, 800 images: [4/6] mnist lora",
            "(2/2) stronger, 800 images: [4/6] mnist lora -- stopped (the kernel ended): " + StoppableProgress.Kept,
        }, lines);
    }

    /// <summary>A nested run that finishes (its line disposed) leaves the outer line open: a later Interrupt between two
    /// nested runs is still said, once.</summary>
    [Fact]
    public void AFinishedNestedRunLeavesTheOuterLineToSayItsOwnStop()
    {
        var lines = new List<string>();
        using var outer = new StoppableProgress(lines.Add);
        using (var first = new StoppableProgress(outer.Nested("(1/2) a: ")))
            first.Report("[1/1] done");
        outer.Report("(2/2) b: starting");
        outer.Stopped("interrupted");
        outer.Stopped("interrupted");
        Assert.Equal("(2/2) b: starting -- stopped (interrupted): " + StoppableProgress.Kept, lines[^1]);
        Assert.Equal(1, Stops(lines));
    }

    /// <summary>Issue 23: Each hands its callback the item's step (k, n, the bare label, and the "[k/n] label" line it
    /// shows), so a caller such as the counted robustness run puts "[k/n]" before its own lines without cutting it back
    /// out of the text; a label with brackets of its own stays whole.</summary>
    [Fact]
    public void EachHandsTheCallbackTheStepNotJustTheText()
    {
        var lines = new List<string>();
        using var line = new StoppableProgress(lines.Add);
        var steps = line.Each(new[] { "lora [r=8]", "vpt" }, s => s, (s, step) => { line.Report($"{step.Counter} {s}: done"); return step; }, CancellationToken.None);
        Assert.Equal(new[] { new StoppableProgress.Step(1, 2, "lora [r=8]"), new StoppableProgress.Step(2, 2, "vpt") }, steps);
        Assert.Equal(new[] { "[1/2] lora [r=8]", "[1/2] lora [r=8]: done", "[2/2] vpt", "[2/2] vpt: done" }, lines);
        Assert.Equal(lines[0], steps[0].Text);

        lines.Clear(); // not announced: only the run's own lines show
        line.Each(new[] { "a" }, s => s, (s, step) => { line.Report($"{step.Counter} {step.Label}: own"); return 0; }, CancellationToken.None, announce: false);
        Assert.Equal(new[] { "[1/1] a: own" }, lines);
    }

    [Fact]
    public void WithNoLineShownThereIsNoNestedLine()
    {
        using var outer = new StoppableProgress(null);
        Assert.Null(outer.Nested("(1/1) x: "));
        Assert.Null(outer.Line);
    }
}
